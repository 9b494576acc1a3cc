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

use clap::Parser;

use scenario::{Args, Scenario};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenario = Scenario::from_args(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(seconds) = args.soak {
        let report = runtime.block_on(soak::soak(
            &args,
            &scenario,
            std::time::Duration::from_secs(seconds),
        ))?;
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        if args.json {
            eprint!("{}", report.table());
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.table());
        }
        anyhow::ensure!(report.problems.is_empty(), "the soak failed");
        return Ok(());
    }
    let report = runtime.block_on(run::run(&args, &scenario))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if args.json {
        eprint!("{}", report.table());
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
