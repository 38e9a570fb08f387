//! `wukong-bench`: measures how fast and how cheaply Wukong converges a fleet.

use std::process::ExitCode;

use clap::Parser;
use wukong_bench::BenchOptions;

#[tokio::main]
async fn main() -> ExitCode {
    let options = BenchOptions::parse();
    let in_memory = if options.in_memory {
        match wukong_bench::run::start_in_memory().await {
            Ok(in_memory) => Some(in_memory),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let config = match &in_memory {
        Some(in_memory) => in_memory.config.clone(),
        None => match kube::Config::infer().await {
            Ok(config) => config,
            Err(error) => {
                eprintln!("error: failed to build a Kubernetes client configuration from KUBECONFIG or ~/.kube/config: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let kubeconfig = in_memory.as_ref().map(|in_memory| in_memory.kubeconfig.path());
    match wukong_bench::run::run(config, &options, kubeconfig).await {
        Ok(report) => {
            print!("{}", report.table());
            if let Some(path) = &options.out {
                let json = serde_json::to_string_pretty(&report).unwrap_or_default();
                if let Err(error) = std::fs::write(path, json + "\n") {
                    eprintln!("error: failed to write \"{}\": {error}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if report.unconverged > 0 || report.leftover_children > 0 || report.missing_children > 0 || !report.quiet {
                eprintln!(
                    "error: {} Wukongs did not converge, {} children were missing, {} were left behind, the operator {}",
                    report.unconverged,
                    report.missing_children,
                    report.leftover_children,
                    if report.quiet { "went quiet" } else { "never went quiet" }
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
