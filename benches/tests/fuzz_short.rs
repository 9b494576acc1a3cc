//! Short mode of `cascade-fuzz`, run by `cargo test`: every target for a few hundred to a few
//! thousand inputs (seed corpus, structured generation, mutation) under the allocation and
//! time bounds, and a check that the harness does report panics and unbounded allocations.
//! The long runs are recorded in docs/security.md#fuzzing.

use std::time::Duration;

use benches::fuzz::alloc::CountingAlloc;
use benches::fuzz::mutate::Rng;
use benches::fuzz::{self, Failure, Options, Target};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Inputs per target: the two router targets (a router and a Chromium offer answered per
/// input) cost about a millisecond each in the test profile.
fn inputs(target: &str) -> u64 {
    match target {
        "sdp-apply" | "peer-datagram" => 1000,
        "sdp" => 1500,
        _ => 4000,
    }
}

#[test]
fn every_target_survives_its_short_run() {
    // A seed per run of the test binary, printed, so CI explores new inputs every time;
    // FUZZ_SEED replays one.
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        });
    eprintln!("fuzz short mode: seed {seed} (replay with FUZZ_SEED={seed})");
    let mut failed = vec![];
    for target in fuzz::all() {
        let opts = Options {
            iterations: inputs(target.name),
            seed,
            // Debug builds are slow: only a real hang should trip the time bound.
            time_limit: Duration::from_secs(5),
            artifacts: Some(std::env::temp_dir().join("cascade-fuzz-artifacts")),
            ..Options::default()
        };
        let summary = fuzz::run(target, &opts);
        eprintln!("{}", summary.line());
        assert!(summary.inputs == opts.iterations);
        for f in &summary.findings {
            failed.push(format!(
                "{} seed {seed} iteration {}: {:?}",
                target.name, f.iteration, f.failure
            ));
        }
    }
    assert!(failed.is_empty(), "findings:\n{}", failed.join("\n"));
}

#[test]
fn every_target_has_a_seed_corpus() {
    for target in fuzz::all() {
        let corpus = fuzz::load_corpus(&fuzz::default_corpus_dir(), target.name);
        assert!(!corpus.is_empty(), "no seed corpus for {}", target.name);
    }
}

fn trap(input: &[u8]) {
    if input.starts_with(b"boom") {
        panic!("trap sprung");
    }
    if input.starts_with(b"big") {
        std::hint::black_box(vec![0u8; 32 << 20]);
    }
}

fn trap_input(rng: &mut Rng) -> Vec<u8> {
    rng.pick(&[&b"boom"[..], b"big", b"fine"]).to_vec()
}

#[test]
fn the_harness_reports_panics_and_allocations() {
    static TRAP: Target = Target {
        name: "trap",
        about: "self-test",
        run: trap,
        max_len: 16,
        tokens: &[],
        generate: trap_input,
    };
    let opts = Options {
        iterations: 200,
        corpus_dir: std::env::temp_dir().join("cascade-fuzz-no-corpus"),
        ..Options::default()
    };
    let summary = fuzz::run(&TRAP, &opts);
    let kinds: Vec<_> = summary.findings.iter().map(|f| &f.failure).collect();
    assert!(
        kinds
            .iter()
            .any(|f| matches!(f, Failure::Panic(m) if m.contains("trap sprung"))),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|f| matches!(f, Failure::Allocation(n) if *n >= 32 << 20)),
        "{kinds:?}"
    );
    // Replaying the first finding's iteration reproduces its input.
    let first = &summary.findings[0];
    assert_eq!(
        fuzz::make_input(&TRAP, &[], 1, first.iteration),
        first.input
    );
}
