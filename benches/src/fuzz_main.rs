//! `cascade-fuzz`: runs the fuzz targets of `benches::fuzz` (see docs/security.md#fuzzing).

use std::path::PathBuf;
use std::time::Duration;

use benches::fuzz::{self, Options, alloc::CountingAlloc};
use clap::Parser;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Fuzzes Cascade's remotely reachable parsers with mutated corpus inputs and structurally
/// generated ones. Exits non-zero if any input panics, allocates over the bound or runs over
/// the time bound.
#[derive(Debug, Parser)]
#[command(name = "cascade-fuzz")]
struct Args {
    /// Target to run (repeatable); all if none. `--list` names them.
    #[arg(long)]
    target: Vec<String>,
    /// Inputs per target.
    #[arg(long, default_value_t = 100_000)]
    iterations: u64,
    /// Run seed: every iteration is replayable from the seed and its number.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run only this iteration (replay a finding) and write its input to --save.
    #[arg(long)]
    iteration: Option<u64>,
    /// Where a replayed input is written.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Peak allocation bound of one input, in MiB.
    #[arg(long, default_value_t = 16)]
    alloc_limit_mib: usize,
    /// Time bound of one input, in milliseconds (ten times it aborts as a hang).
    #[arg(long, default_value_t = 1000)]
    time_limit_ms: u64,
    /// Seed corpus folder (one subfolder per target).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Where the inputs of findings are saved.
    #[arg(long, default_value = "fuzz-artifacts")]
    artifacts: PathBuf,
    /// List the targets and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.list {
        for t in fuzz::all() {
            println!("{:<14} {}", t.name, t.about);
        }
        return Ok(());
    }
    let targets: Vec<_> = if args.target.is_empty() {
        fuzz::all().iter().collect()
    } else {
        args.target
            .iter()
            .map(|n| fuzz::by_name(n).ok_or_else(|| anyhow::anyhow!("no target {n:?} (--list)")))
            .collect::<anyhow::Result<_>>()?
    };
    let opts = Options {
        iterations: if args.iteration.is_some() {
            1
        } else {
            args.iterations
        },
        first: args.iteration.unwrap_or(0),
        seed: args.seed,
        alloc_limit: args.alloc_limit_mib << 20,
        time_limit: Duration::from_millis(args.time_limit_ms),
        corpus_dir: args.corpus.unwrap_or_else(fuzz::default_corpus_dir),
        artifacts: Some(args.artifacts),
        progress: true,
    };
    let mut failing = 0;
    for target in targets {
        if let (Some(i), Some(path)) = (args.iteration, &args.save) {
            let corpus = fuzz::load_corpus(&opts.corpus_dir, target.name);
            std::fs::write(path, fuzz::make_input(target, &corpus, args.seed, i))?;
        }
        let summary = fuzz::run(target, &opts);
        println!("{}", summary.line());
        failing += summary.failures;
    }
    anyhow::ensure!(failing == 0, "{failing} failing inputs");
    Ok(())
}
