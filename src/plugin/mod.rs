//! The kubectl plugin: `kubectl wukong start|stop|restart|migrate|status`.
//!
//! In: the parsed command line ([`Cli`]) and a client with the user's own
//! credentials. Out: the Wukong patched with server-side apply under the field
//! manager `kubectl-wukong` (the run strategy, or a new restart or migration
//! token), then — with `--wait`, the default — its progress printed until the
//! status acknowledges it and the operation ends; or, for `status`, a summary
//! ([`show`]). Every failure is one [`PluginError`] line.

pub mod show;

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::api::{Migration, Phase, RunStrategy, Wukong};

/// The field manager of the plugin's patches.
pub const FIELD_MANAGER: &str = "kubectl-wukong";
/// How often the status is read while waiting.
const POLL: Duration = Duration::from_millis(500);

/// The command line.
#[derive(Parser, Debug)]
#[command(name = "kubectl-wukong", about = "Day-2 operations on Wukong VMs, with your own credentials")]
pub struct Cli {
    /// Namespace of the Wukong (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
    /// Wait until the operator acknowledges the request and it ends.
    #[arg(long, global = true, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// How long to wait, in seconds.
    #[arg(long, global = true, default_value_t = 300)]
    pub timeout: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The plugin's commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the VM (run strategy Always).
    Start {
        /// Name of the Wukong.
        name: String,
    },
    /// Stop the VM (run strategy Halted).
    Stop {
        /// Name of the Wukong.
        name: String,
    },
    /// Restart the running VM once.
    Restart {
        /// Name of the Wukong.
        name: String,
    },
    /// Live-migrate the running VM once.
    Migrate {
        /// Name of the Wukong.
        name: String,
        /// A label the target node must have, `key=value` (repeatable).
        #[arg(long = "node-selector", value_parser = parse_label)]
        node_selector: Vec<(String, String)>,
    },
    /// Show the phase, conditions, children and last operations.
    Status {
        /// Name of the Wukong.
        name: String,
    },
}

/// Errors of the plugin, each printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No kubeconfig or in-cluster configuration.
    #[error("failed to configure the client: {0}")]
    Client(#[source] kube::Error),
    /// The Wukong does not exist.
    #[error("Wukong \"{namespace}/{name}\" not found")]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The API server (RBAC or the admission policy) refused the request.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Any other API error.
    #[error("failed to {action} Wukong \"{namespace}/{name}\": {message}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API server's message.
        message: String,
    },
    /// The operation ended without success.
    #[error("{0}")]
    Unsuccessful(String),
    /// The status did not acknowledge the request in time.
    #[error("timed out after {seconds}s waiting for Wukong \"{namespace}/{name}\": {last}")]
    Timeout {
        /// The timeout.
        seconds: u64,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The last state seen.
        last: String,
    },
}

/// `key=value` of `--node-selector`.
fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("\"{text}\" is not key=value")),
    }
}

/// The fields the plugin applies (and so owns, as `kubectl-wukong`).
#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct SpecPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    run_strategy: Option<RunStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    restart_requested_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    migration: Option<Migration>,
}

/// A server-side apply body.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct ApplyBody<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: BTreeMap<&'static str, &'a str>,
    spec: SpecPatch,
}

/// What the command waits for.
enum Goal {
    /// The phase, once the status describes the patched generation.
    Phase(Phase, i64),
    /// The end of the restart with this token.
    Restart(String),
    /// The end of the migration with this token.
    Migration(String),
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<(), PluginError> {
    let client = Client::try_default().await.map_err(PluginError::Client)?;
    let namespace = cli.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
    let api: Api<Wukong> = Api::namespaced(client, &namespace);
    let token = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (name, spec, goal): (&str, SpecPatch, fn(String, i64) -> Goal) = match &cli.command {
        Command::Status { name } => {
            let wukong = get(&api, &namespace, name).await?;
            print!("{}", show::status_text(&wukong));
            return Ok(());
        }
        Command::Start { name } => {
            (name, SpecPatch { run_strategy: Some(RunStrategy::Always), ..SpecPatch::default() }, |_, generation| {
                Goal::Phase(Phase::Running, generation)
            })
        }
        Command::Stop { name } => (name, SpecPatch { run_strategy: Some(RunStrategy::Halted), ..SpecPatch::default() }, |_, generation| {
            Goal::Phase(Phase::Stopped, generation)
        }),
        Command::Restart { name } => {
            (name, SpecPatch { restart_requested_at: Some(token()), ..SpecPatch::default() }, |token, _| Goal::Restart(token))
        }
        Command::Migrate { name, node_selector } => {
            let migration = Migration { requested_at: token(), node_selector: node_selector.iter().cloned().collect() };
            (name, SpecPatch { migration: Some(migration), ..SpecPatch::default() }, |token, _| Goal::Migration(token))
        }
    };
    let token = spec.restart_requested_at.clone().or_else(|| spec.migration.as_ref().map(|migration| migration.requested_at.clone()));
    // Fail with "not found" rather than create a partial Wukong.
    get(&api, &namespace, name).await?;
    let body = ApplyBody {
        api_version: "vm.novasphere.dev/v1alpha1",
        kind: "Wukong",
        metadata: BTreeMap::from([("name", name), ("namespace", namespace.as_str())]),
        spec,
    };
    let patched = api
        .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(|error| api_error(error, "patch", &namespace, name))?;
    let goal = goal(token.clone().unwrap_or_default(), patched.metadata.generation.unwrap_or_default());
    match &token {
        Some(token) => println!("wukong {namespace}/{name}: requested \"{token}\""),
        None => println!("wukong {namespace}/{name}: run strategy set"),
    }
    if !cli.wait {
        return Ok(());
    }
    wait(&api, &namespace, name, &goal, cli.timeout).await
}

async fn get(api: &Api<Wukong>, namespace: &str, name: &str) -> Result<Wukong, PluginError> {
    api.get(name).await.map_err(|error| api_error(error, "read", namespace, name))
}

fn api_error(error: kube::Error, action: &'static str, namespace: &str, name: &str) -> PluginError {
    match error {
        kube::Error::Api(status) if status.code == 404 => {
            PluginError::NotFound { namespace: namespace.to_string(), name: name.to_string() }
        }
        kube::Error::Api(status) if status.code == 403 => PluginError::Forbidden(status.message.clone()),
        kube::Error::Api(status) => {
            PluginError::Api { action, namespace: namespace.to_string(), name: name.to_string(), message: status.message.clone() }
        }
        other => PluginError::Api { action, namespace: namespace.to_string(), name: name.to_string(), message: other.to_string() },
    }
}

/// Polls the Wukong, printing each new state, until `goal` is reached or ends badly.
async fn wait(api: &Api<Wukong>, namespace: &str, name: &str, goal: &Goal, timeout: u64) -> Result<(), PluginError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let mut last = String::new();
    loop {
        let wukong = get(api, namespace, name).await?;
        let (state, outcome) = progress(&wukong, goal);
        if state != last {
            println!("wukong {namespace}/{}: {state}", wukong.name_any());
            last = state;
        }
        if let Some(outcome) = outcome {
            return outcome.map_err(PluginError::Unsuccessful);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PluginError::Timeout { seconds: timeout, namespace: namespace.to_string(), name: name.to_string(), last });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The state toward `goal` in words, and the outcome once it is decided.
fn progress(wukong: &Wukong, goal: &Goal) -> (String, Option<Result<(), String>>) {
    let status = wukong.status.clone().unwrap_or_default();
    match goal {
        Goal::Phase(wanted, generation) => {
            let phase = status.phase.map_or("none", Phase::as_str);
            if status.observed_generation.unwrap_or_default() < *generation {
                return ("waiting for the operator".to_string(), None);
            }
            let state = format!("phase {phase}");
            match status.phase {
                Some(phase) if phase == *wanted => (state, Some(Ok(()))),
                Some(Phase::Error) => (state, Some(Err(format!("phase Error: {}", show::why_not_ready(wukong))))),
                _ => (state, None),
            }
        }
        Goal::Restart(token) => match status.restart.filter(|restart| restart.requested_at == *token) {
            None => ("waiting for the operator to acknowledge the restart".to_string(), None),
            Some(restart) => {
                let state = format!("restart {}: {}", restart.phase.as_str(), restart.message.clone().unwrap_or_default());
                let outcome = match restart.phase {
                    crate::api::OperationPhase::Succeeded => Some(Ok(())),
                    phase if phase.is_final() => Some(Err(format!("restart {}: {}", phase.as_str(), restart.message.unwrap_or_default()))),
                    _ => None,
                };
                (state, outcome)
            }
        },
        Goal::Migration(token) => match status.migration.filter(|migration| migration.requested_at == *token) {
            None => ("waiting for the operator to acknowledge the migration".to_string(), None),
            Some(migration) => {
                let state = format!("migration {}: {}", migration.phase, migration.message.clone().unwrap_or_default());
                let outcome = match migration.phase.as_str() {
                    "Succeeded" => Some(Ok(())),
                    _ if migration.is_final() => {
                        Some(Err(format!("migration {}: {}", migration.phase, migration.message.unwrap_or_default())))
                    }
                    _ => None,
                };
                (state, outcome)
            }
        },
    }
}
