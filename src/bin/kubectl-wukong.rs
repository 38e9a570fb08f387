//! `kubectl-wukong`: the kubectl plugin for Wukong day-2 operations.
//!
//! In: the command line and the user's kubeconfig. Out: the command run with
//! the user's own credentials (see [`wukong::plugin`]); an error is one line
//! on stderr and exit code 1. Installed by copying the binary onto `PATH`,
//! after which `kubectl wukong ...` runs it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = wukong::plugin::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(wukong::plugin::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
