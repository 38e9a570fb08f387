//! The `wukong` binary: parses the command line and dispatches.

use std::process::ExitCode;

use clap::Parser;
use wukong::cli::{Cli, Command, run_offline};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(options) => wukong::operate::main(options),
        command => run_offline(&command),
    }
}
