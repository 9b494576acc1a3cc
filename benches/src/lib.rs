//! Cascade's benchmarks. The criterion benches live in `benches/`; run `cargo bench -p benches`.
