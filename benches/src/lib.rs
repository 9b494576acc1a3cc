//! Cascade's benchmarks. The criterion benches live in `benches/`; run `cargo bench -p benches`.
//! The `fuzz` module is the `cascade-fuzz` harness.

pub mod fuzz;
