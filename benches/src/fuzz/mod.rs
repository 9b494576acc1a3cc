//! `cascade-fuzz`: a stable-Rust fuzz harness for every parser a remote party reaches.
//!
//! Each iteration derives its own random generator from `(seed, iteration)`, builds an input
//! (a corpus entry or a structurally generated one, then byte-mutated) and runs the target
//! with the counting allocator armed and a watchdog timing it. A panic, a peak allocation
//! above the bound or a run above the time bound is a finding: its seed and iteration are
//! printed (replay with `--seed S --iteration I`) and its input saved.

pub mod alloc;
pub mod generate;
pub mod mutate;
pub mod targets;

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mutate::{Rng, mutate};
pub use targets::{Target, all, by_name};

/// Default peak allocation bound of one input.
pub const ALLOC_LIMIT: usize = 16 << 20;
/// Default time bound of one input.
pub const TIME_LIMIT: Duration = Duration::from_secs(1);
/// Distinct findings kept per run (the count of all findings is reported).
const MAX_KEPT: usize = 20;

/// The seed corpus shipped with the sources.
pub fn default_corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

/// How to run one target.
#[derive(Debug, Clone)]
pub struct Options {
    /// Inputs to run.
    pub iterations: u64,
    /// First iteration (a replay runs exactly one).
    pub first: u64,
    /// Run seed.
    pub seed: u64,
    /// Peak allocation bound of one input, in bytes.
    pub alloc_limit: usize,
    /// Time bound of one input; ten times it (at least 10 s) aborts the process as a hang.
    pub time_limit: Duration,
    /// Folder holding `<target>/` seed folders.
    pub corpus_dir: PathBuf,
    /// Where inputs of findings are saved (not saved if `None`).
    pub artifacts: Option<PathBuf>,
    /// Print a progress line to stderr every 10 s.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            iterations: 1000,
            first: 0,
            seed: 1,
            alloc_limit: ALLOC_LIMIT,
            time_limit: TIME_LIMIT,
            corpus_dir: default_corpus_dir(),
            artifacts: None,
            progress: false,
        }
    }
}

/// What went wrong with one input.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The target panicked (message with location).
    Panic(String),
    /// The input held more than the bound at once (bytes).
    Allocation(usize),
    /// The input took longer than the bound.
    Slow(Duration),
}

impl Failure {
    /// Findings with the same key are one bug.
    fn key(&self) -> String {
        match self {
            Failure::Panic(m) => m.lines().next().unwrap_or_default().to_owned(),
            Failure::Allocation(_) => "allocation".into(),
            Failure::Slow(_) => "slow".into(),
        }
    }
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Iteration that found it (replay with the run's seed).
    pub iteration: u64,
    /// What happened.
    pub failure: Failure,
    /// The input.
    pub input: Vec<u8>,
}

/// The outcome of running one target.
#[derive(Debug)]
pub struct Summary {
    /// Target name.
    pub target: &'static str,
    /// Seed of the run.
    pub seed: u64,
    /// Inputs run.
    pub inputs: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Largest peak allocation of one input.
    pub max_alloc: usize,
    /// Slowest input.
    pub slowest: Duration,
    /// Findings, one per distinct failure.
    pub findings: Vec<Finding>,
    /// All failing inputs, duplicates included.
    pub failures: u64,
}

/// Reads `<dir>/<target>/*` (missing folder: empty corpus).
pub fn load_corpus(dir: &Path, target: &str) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
        return vec![];
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// The input of `iteration` in a run with `seed`: a quarter structurally generated, the rest
/// from the corpus; nine in ten then mutated.
pub fn make_input(target: &Target, corpus: &[Vec<u8>], seed: u64, iteration: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed, iteration);
    let mut data = if corpus.is_empty() || rng.one_in(4) {
        (target.generate)(&mut rng)
    } else {
        rng.pick(corpus).clone()
    };
    if !rng.one_in(10) {
        mutate(&mut rng, &mut data, corpus, target.tokens, target.max_len);
    }
    data.truncate(target.max_len);
    data
}

thread_local! {
    /// Set while this thread runs a fuzz input: its panics are recorded, not printed.
    static FUZZING: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook recording panics of fuzzing threads; others print as usual.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let recorded = FUZZING.with(|f| {
                let mut f = f.borrow_mut();
                if f.is_some() {
                    *f = Some(info.to_string());
                    true
                } else {
                    false
                }
            });
            if !recorded {
                previous(info);
            }
        }));
    });
}

/// Runs one input: `None` if it passed the bounds.
pub fn run_one(
    target: &Target,
    input: &[u8],
    opts: &Options,
) -> (Option<Failure>, usize, Duration) {
    install_panic_hook();
    FUZZING.with(|f| *f.borrow_mut() = Some(String::new()));
    let started = Instant::now();
    alloc::arm();
    let result = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    let peak = alloc::disarm();
    let took = started.elapsed();
    let message = FUZZING.with(|f| f.borrow_mut().take()).unwrap_or_default();
    let failure = if result.is_err() {
        Some(Failure::Panic(message))
    } else if peak > opts.alloc_limit {
        Some(Failure::Allocation(peak))
    } else if took > opts.time_limit {
        Some(Failure::Slow(took))
    } else {
        None
    };
    (failure, peak, took)
}

/// Aborts the process if one input runs ten times over the time bound (at least 10 s).
struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Start of the running input in microseconds since the watchdog's epoch (0: idle).
static RUNNING_SINCE: AtomicU64 = AtomicU64::new(0);

impl Watchdog {
    fn start(target: &'static str, seed: u64, limit: Duration, epoch: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let hang = (limit * 10).max(Duration::from_secs(10));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let since = RUNNING_SINCE.load(Ordering::Relaxed);
                let now = epoch.elapsed().as_micros() as u64;
                if since != 0 && now.saturating_sub(since) > hang.as_micros() as u64 {
                    let iteration = alloc::ITERATION.load(Ordering::Relaxed);
                    eprintln!(
                        "cascade-fuzz: HANG: target {target} seed {seed} iteration {iteration} \
                         runs over {hang:?}; replay: cascade-fuzz --target {target} --seed {seed} \
                         --iteration {iteration}"
                    );
                    std::process::abort();
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `opts.iterations` inputs of `target`.
pub fn run(target: &'static Target, opts: &Options) -> Summary {
    let corpus = load_corpus(&opts.corpus_dir, target.name);
    let epoch = Instant::now();
    let _watchdog = Watchdog::start(target.name, opts.seed, opts.time_limit, epoch);
    let mut summary = Summary {
        target: target.name,
        seed: opts.seed,
        inputs: 0,
        elapsed: Duration::ZERO,
        max_alloc: 0,
        slowest: Duration::ZERO,
        findings: vec![],
        failures: 0,
    };
    let mut last_progress = Instant::now();
    for iteration in opts.first..opts.first.saturating_add(opts.iterations) {
        let input = make_input(target, &corpus, opts.seed, iteration);
        alloc::ITERATION.store(iteration, Ordering::Relaxed);
        RUNNING_SINCE.store(epoch.elapsed().as_micros().max(1) as u64, Ordering::Relaxed);
        let (failure, peak, took) = run_one(target, &input, opts);
        RUNNING_SINCE.store(0, Ordering::Relaxed);
        summary.inputs += 1;
        summary.max_alloc = summary.max_alloc.max(peak);
        summary.slowest = summary.slowest.max(took);
        if let Some(failure) = failure {
            summary.failures += 1;
            let new = !summary
                .findings
                .iter()
                .any(|f| f.failure.key() == failure.key());
            if new && summary.findings.len() < MAX_KEPT {
                report_finding(target, opts, iteration, &failure, &input);
                summary.findings.push(Finding {
                    iteration,
                    failure,
                    input,
                });
            }
        }
        if opts.progress && last_progress.elapsed() > Duration::from_secs(10) {
            last_progress = Instant::now();
            eprintln!(
                "cascade-fuzz: {} {} inputs in {:.0} s, {} failing",
                target.name,
                summary.inputs,
                epoch.elapsed().as_secs_f64(),
                summary.failures
            );
        }
    }
    summary.elapsed = epoch.elapsed();
    summary
}

fn report_finding(
    target: &Target,
    opts: &Options,
    iteration: u64,
    failure: &Failure,
    input: &[u8],
) {
    let seed = opts.seed;
    eprintln!(
        "cascade-fuzz: FINDING in {} (seed {seed}, iteration {iteration}): {failure:?}\n  \
         replay: cascade-fuzz --target {} --seed {seed} --iteration {iteration}",
        target.name, target.name
    );
    if let Some(dir) = &opts.artifacts {
        let path = dir.join(format!("{}-seed{seed}-iter{iteration}.bin", target.name));
        match std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, input)) {
            Ok(()) => eprintln!("  input saved to {}", path.display()),
            Err(e) => eprintln!("  cannot save the input to {}: {e}", path.display()),
        }
    }
}

impl Summary {
    /// One line: target, inputs, time, rate, peaks, findings.
    pub fn line(&self) -> String {
        format!(
            "{:<14} seed {:<20} {:>11} inputs {:>9.1} s {:>9.0}/s  max alloc {:>7} KiB  slowest {:>8.2} ms  findings {} ({} failing inputs)",
            self.target,
            self.seed,
            self.inputs,
            self.elapsed.as_secs_f64(),
            self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.max_alloc / 1024,
            self.slowest.as_secs_f64() * 1e3,
            self.findings.len(),
            self.failures
        )
    }
}
