//! `cascade-load`: a load tester for a running Cascade server. See `cascade-load --help` and
//! docs/benchmarks.md.

mod client;
mod cpu;
mod http;
mod media;
mod report;
mod run;
mod scenario;
mod soak;
mod stats;
mod token;

use std::time::Duration;

use clap::Parser;
use serde::Serialize;

use scenario::{Args, Scenario};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenario = Scenario::from_args(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(seconds) = args.soak {
        let soak = soak::soak(&args, &scenario, Duration::from_secs(seconds));
        let report = runtime.block_on(soak)?;
        print(runtime, &report, report.table(), args.json)?;
        anyhow::ensure!(report.problems.is_empty(), "the soak failed");
    } else {
        let report = runtime.block_on(run::run(&args, &scenario))?;
        print(runtime, &report, report.table(), args.json)?;
    }
    Ok(())
}

/// Stops the runtime, then prints `table`, or with `json` the report as JSON on stdout and
/// `table` on stderr.
fn print(
    runtime: tokio::runtime::Runtime,
    report: &impl Serialize,
    table: String,
    json: bool,
) -> anyhow::Result<()> {
    runtime.shutdown_timeout(Duration::from_secs(1));
    if json {
        eprint!("{table}");
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{table}");
    }
    Ok(())
}
