//! The e2e phase `api-server-restart`: the operator resumes after its API server restarts.
//!
//! In: the suite's [`Env`], the controller's [`Health`], and `WUKONG_E2E_RESTART_COMMAND`, a shell command that
//! kills the API server, keeps it down, starts it again and returns once it is ready (e.g.
//! `/work/shared/realk8s/restart-apiserver.sh 15`); without it the suite prints [`skipped`] instead. Out: proof
//! that Wukongs created just before the kill (a burst caught mid-reconcile), Wukongs created right after the API
//! server is back, and Wukongs deleted right after, all converge within [`RESUME`] of "ready again"; that
//! `/readyz` said not ready while the watches failed and ready again after; and the measured time from "ready
//! again" to "all converged".

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wukong::api::Phase;
use wukong::operate::http::Health;

use super::{Check, E2e, Env, describe, wait_for, wukong_status};

/// The variable naming the restart command.
pub const RESTART_VAR: &str = "WUKONG_E2E_RESTART_COMMAND";
/// How long after the API server is ready again everything must have converged.
const RESUME: Duration = Duration::from_secs(30);
/// Wukongs converged before the restart; deleted right after it.
const OLD: [&str; 3] = ["restart-old-0", "restart-old-1", "restart-old-2"];
/// Wukongs created just before the kill.
const BURST: [&str; 5] = ["restart-burst-0", "restart-burst-1", "restart-burst-2", "restart-burst-3", "restart-burst-4"];
/// Wukongs created right after the API server is back.
const NEW: [&str; 3] = ["restart-new-0", "restart-new-1", "restart-new-2"];

const EMPTY_VM_YAML: &str = include_str!("../../examples/empty-vm.yaml");

/// The restart command, when [`RESTART_VAR`] sets one.
pub fn command() -> Option<String> {
    std::env::var(RESTART_VAR).ok().filter(|command| !command.trim().is_empty())
}

/// The line printed instead of the phase when no restart command is set.
pub fn skipped() -> String {
    format!("e2e: api-server-restart: skipped (set {RESTART_VAR} to a command that restarts the API server, e.g. restart-apiserver.sh 15)")
}

/// The phase, restarting the API server with `command`.
pub async fn phase_restart(env: &Env, health: &Health, command: &str) -> E2e {
    for name in OLD {
        create(env, name).await?;
    }
    wait_converged(env, &OLD, "the Wukongs made before the restart converge", super::TIMEOUT).await?;
    for name in BURST {
        create(env, name).await?;
    }
    println!("e2e:   created {} Wukongs; restarting the API server: {command}", BURST.len());
    let failing = restart(command, health).await?;
    let ready_at = Instant::now();
    println!("e2e:   watches reported failing during the outage: {}", failing.iter().cloned().collect::<Vec<_>>().join(", "));
    if !failing.contains("Wukong") {
        return Err(format!("the Wukong watch was never reported failing during the outage, only: {failing:?}"));
    }

    for name in NEW {
        create(env, name).await?;
    }
    for name in OLD {
        env.delete(&env.kinds.wukong, &env.namespace, name).await?;
    }
    println!("e2e:   created {} and deleted {} Wukongs right after the restart", NEW.len(), OLD.len());
    let converging: Vec<&str> = BURST.iter().chain(NEW.iter()).copied().collect();
    wait_resumed(env, &converging, RESUME.saturating_sub(ready_at.elapsed())).await?;
    let resumed = ready_at.elapsed();
    wait_for("/readyz to answer 200 again", RESUME.saturating_sub(ready_at.elapsed()), async || match health.readiness(Instant::now()) {
        Ok(()) => Ok(Check::Done(())),
        Err(why) => Ok(Check::Waiting(why)),
    })
    .await?;
    println!(
        "e2e:   resumed: from \"API server ready again\" to all {} converged and {} cleaned up in {:.1}s",
        converging.len(),
        OLD.len(),
        resumed.as_secs_f64()
    );
    Ok(())
}

/// Runs the restart `command` and returns once it has (the API server is ready again), with the watches `/readyz`
/// named failing meanwhile; fails unless `/readyz` said 503 at some point.
async fn restart(command: &str, health: &Health) -> E2e<BTreeSet<String>> {
    let mut restart = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("failed to run the restart command \"{command}\" ({RESTART_VAR}): {error}"))?;
    let killed_at = Instant::now();
    let mut unready = false;
    let mut failing = BTreeSet::new();
    let status = loop {
        if let Err(why) = health.readiness(Instant::now()) {
            if !unready {
                println!("e2e:   /readyz while the API server is down ({:.1}s): 503 {why}", killed_at.elapsed().as_secs_f64());
                unready = true;
            }
            failing.extend(health.watches.failing_longer_than(Duration::ZERO, Instant::now()).into_iter().map(|watch| watch.name));
        }
        tokio::select! {
            status = restart.wait() => break status.map_err(|error| format!("failed to wait for the restart command: {error}"))?,
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    };
    if !status.success() {
        return Err(format!("the restart command \"{command}\" failed: {status}"));
    }
    println!("e2e:   the API server is ready again ({:.1}s after the kill)", killed_at.elapsed().as_secs_f64());
    if !unready {
        return Err("/readyz never said 503 while the API server was down".to_owned());
    }
    Ok(failing)
}

/// Creates the empty-VM example as `name` in the run's namespace.
async fn create(env: &Env, name: &str) -> E2e {
    let mut wukong: Value = env.example(EMPTY_VM_YAML)?;
    wukong["metadata"]["name"] = json!(name);
    env.apply_yaml(&env.kinds.wukong, &wukong).await.map(|_| ())
}

/// What keeps the Wukong `name` from being converged (its VM, its finalizer, phase Stopped), if anything.
async fn unconverged(env: &Env, name: &str) -> E2e<Option<String>> {
    let Some(object) = env.get(&env.kinds.wukong, &env.namespace, name).await? else {
        return Ok(Some(format!("{name}: absent")));
    };
    let vm = env.get(&env.kinds.vm, &env.namespace, &format!("{name}-vm")).await?;
    let finalized = object.metadata.finalizers.as_ref().is_some_and(|finalizers| !finalizers.is_empty());
    let stopped = wukong_status(&object)?.is_some_and(|status| status.phase == Some(Phase::Stopped));
    Ok((vm.is_none() || !finalized || !stopped).then(|| format!("{name}: VM {}, {}", vm.is_some(), describe(&object))))
}

async fn wait_converged(env: &Env, names: &[&str], description: &str, timeout: Duration) -> E2e {
    wait_for(description, timeout, async || {
        let mut waiting = Vec::new();
        for name in names {
            waiting.extend(unconverged(env, name).await?);
        }
        Ok(if waiting.is_empty() { Check::Done(()) } else { Check::Waiting(waiting.join("; ")) })
    })
    .await
}

/// Waits until `converging` have converged and the [`OLD`] Wukongs are gone.
async fn wait_resumed(env: &Env, converging: &[&str], timeout: Duration) -> E2e {
    wait_for("the burst and the new Wukongs to converge and the deleted ones to be gone", timeout, async || {
        let mut waiting = Vec::new();
        for name in converging {
            waiting.extend(unconverged(env, name).await?);
        }
        for name in OLD {
            if let Some(object) = env.get(&env.kinds.wukong, &env.namespace, name).await? {
                waiting.push(format!("{name}: still there, finalizers {:?}", object.metadata.finalizers));
            }
        }
        Ok(if waiting.is_empty() { Check::Done(()) } else { Check::Waiting(waiting.join("; ")) })
    })
    .await
}
