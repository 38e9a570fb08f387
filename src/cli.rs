//! The `wukong` command line: `run`, `crd`, `render` and `validate`.
//!
//! In: arguments and files (or stdin). Out: YAML on stdout, problems on stderr
//! and the process exit code.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::render::{DocumentError, check, children_yaml, offline_notes, parse_documents};

/// Wukong: one Kubernetes object for a whole KubeVirt virtual machine.
#[derive(Parser, Debug)]
#[command(name = "wukong", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator against the cluster of KUBECONFIG, ~/.kube/config or the pod.
    Run(crate::operate::RunOptions),
    /// Print the Wukong CustomResourceDefinition as YAML.
    Crd,
    /// Print, offline, the exact children the operator would create, as YAML.
    Render {
        /// File with one or more Wukong documents; `-` reads stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// Check Wukong documents with the controller's own validation.
    Validate {
        /// File with one or more Wukong documents; `-` reads stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs the offline subcommands; `run` is handled by the caller (it needs a runtime).
pub fn run_offline(command: &Command) -> ExitCode {
    match command {
        Command::Crd => match crate::api::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: failed to serialise the CRD: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Render { files } => process(files, true),
        Command::Validate { files } => process(files, false),
        Command::Run(_) => ExitCode::FAILURE,
    }
}

fn read(file: &PathBuf) -> Result<String, String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|error| format!("failed to read stdin: {error}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|error| format!("failed to read \"{}\": {error}", file.display()))
}

fn process(files: &[PathBuf], print: bool) -> ExitCode {
    let mut output = String::new();
    let mut failed = false;
    let report = |file: &PathBuf, errors: &[DocumentError]| {
        for error in errors {
            for line in error.to_string().lines() {
                eprintln!("error: {}: {line}", file.display());
            }
        }
    };
    for file in files {
        let text = match read(file) {
            Ok(text) => text,
            Err(message) => {
                eprintln!("error: {message}");
                failed = true;
                continue;
            }
        };
        let wukongs = match parse_documents(&text) {
            Ok(wukongs) => wukongs,
            Err(errors) => {
                report(file, &errors);
                failed = true;
                continue;
            }
        };
        for (index, wukong) in wukongs.iter().enumerate() {
            match check(index + 1, wukong) {
                Ok(valid) if print => {
                    offline_notes(&valid).iter().for_each(|note| eprintln!("note: {note}"));
                    output.push_str(&children_yaml(&valid));
                }
                Ok(valid) => eprintln!("{}: Wukong {}/{} is valid", file.display(), valid.namespace, valid.name),
                Err(error) => {
                    report(file, std::slice::from_ref(&error));
                    failed = true;
                }
            }
        }
    }
    if failed {
        return ExitCode::FAILURE;
    }
    print!("{output}");
    ExitCode::SUCCESS
}
