//! The `wukong` command line: `run`, `crd`, `render` and `validate`.
//!
//! In: arguments and files (or stdin). Out: YAML on stdout, problems on stderr
//! and the process exit code.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::children::LeasedAddress;
use crate::render::{DocumentError, check, children_yaml_with, offline_notes, parse_addresses, parse_documents};

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
    /// Print a CustomResourceDefinition as YAML: Wukong's, or IPPool's or IPLease's.
    Crd {
        /// Which CRD: `wukong` (the default), `ippool` or `iplease`.
        #[arg(default_value = "wukong", value_parser = ["wukong", "ippool", "iplease"])]
        kind: String,
    },
    /// Print, offline, the exact children the operator would create, as YAML.
    Render {
        /// File with one or more Wukong documents; `-` reads stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// An address for a pool network, to review the network data it
        /// gets (the operator leases the real one): `NETWORK=ADDRESS/PREFIX`,
        /// e.g. `mgmt=192.168.100.10/24`. Repeatable.
        #[arg(long = "address", value_name = "NETWORK=ADDRESS/PREFIX")]
        addresses: Vec<String>,
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
        Command::Crd { kind } => {
            match crate::api::crd_yaml_of(&format!("{kind}s.{}.yaml", crate::api::GROUP)).unwrap_or_else(crate::api::crd_yaml) {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: failed to serialise the CRD: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Render { files, addresses } => match parse_addresses(addresses) {
            Ok(addresses) => process(files, Some(&addresses)),
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Validate { files } => process(files, None),
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

/// Renders (with the given pool addresses) or, without them, validates.
fn process(files: &[PathBuf], render: Option<&BTreeMap<String, LeasedAddress>>) -> ExitCode {
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
            match (check(index + 1, wukong), render) {
                (Ok(valid), Some(addresses)) => {
                    offline_notes(&valid, addresses).iter().for_each(|note| eprintln!("note: {note}"));
                    output.push_str(&children_yaml_with(&valid, addresses));
                }
                (Ok(valid), None) => eprintln!("{}: Wukong {}/{} is valid", file.display(), valid.namespace, valid.name),
                (Err(error), _) => {
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
