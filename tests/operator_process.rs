//! The real `wukong run` process against the fake API server over HTTP on loopback.
//!
//! In: a fake cluster (namespace `default`, no StorageClass, no CRDs) served in process, its kubeconfig in a temp
//! file, and the `wukong` binary started with `KUBECONFIG` pointing at it. Out: proof that the real reflectors,
//! mappers, finalizer, status writes, metrics, readiness, cleanup and (with `--leader-elect`) the lease work: the
//! operator creates the children of `examples/empty-vm.yaml`, reports it Stopped, serves `/metrics` and `/readyz`,
//! and removes everything when the Wukong is deleted. Warnings and errors in the operator's log are printed.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

#[path = "support/operator.rs"]
mod operator;

use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use operator::{Scenario, http_get};
use wukong::controller::wukong_resource;

const WUKONG: (&str, &str) = ("vm.novasphere.dev/v1alpha1", "wukongs");
const VM: (&str, &str) = ("kubevirt.io/v1", "virtualmachines");
const CLAIMS: (&str, &str) = ("v1", "persistentvolumeclaims");
const CHILD_CLAIMS: [&str; 2] = ["empty-vm-data1", "empty-vm-data2"];

/// The steps of these tests.
impl Scenario {
    /// Creates the Wukong of `examples/empty-vm.yaml` and waits for its children, status and finalizer.
    async fn converge_empty_vm(&self) {
        let wukong: DynamicObject = wukong::yaml::from_str(include_str!("../examples/empty-vm.yaml")).unwrap();
        let wukongs: Api<DynamicObject> = Api::namespaced_with(self.fake.client(), "default", &wukong_resource());
        wukongs.create(&PostParams::default(), &wukong).await.unwrap();
        self.wait("the operator creates the VirtualMachine, the claims, the status and the finalizer", 30, async || {
            let wukong = self.get(WUKONG, "empty-vm")?;
            let children = self.get(VM, "empty-vm-vm").is_some() && CHILD_CLAIMS.iter().all(|claim| self.get(CLAIMS, claim).is_some());
            let finalized = wukong["metadata"]["finalizers"].as_array().is_some_and(|finalizers| !finalizers.is_empty());
            (children && finalized && wukong["status"]["phase"] == "Stopped").then_some(())
        })
        .await;
    }

    /// Checks `/readyz` and the operator's counters on `/metrics`.
    async fn check_endpoints(&self) {
        let (code, _) = http_get(self.metrics, "/readyz").await.expect("/readyz answers");
        assert_eq!(code, 200);
        let (code, metrics) = http_get(self.metrics, "/metrics").await.expect("/metrics answers");
        assert_eq!(code, 200);
        for name in ["wukong_reconciliations_total", "wukong_kube_requests_total"] {
            assert!(metrics.lines().any(|line| line.starts_with(name)), "{name} missing from /metrics:\n{metrics}");
        }
    }

    /// Deletes the Wukong and waits until it and its children are gone.
    async fn delete_empty_vm(&self) {
        let wukongs: Api<DynamicObject> = Api::namespaced_with(self.fake.client(), "default", &wukong_resource());
        wukongs.delete("empty-vm", &DeleteParams::default()).await.unwrap();
        self.wait("the Wukong and its children are gone", 30, async || {
            let left = self.get(WUKONG, "empty-vm").is_some()
                || self.get(VM, "empty-vm-vm").is_some()
                || CHILD_CLAIMS.iter().any(|claim| self.get(CLAIMS, claim).is_some());
            (!left).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn the_operator_converges_and_cleans_up_a_wukong_over_http() {
    let scenario = Scenario::start("operator-process", &[]).await;
    scenario.wait("/readyz answers 200", 20, async || http_get(scenario.metrics, "/readyz").await.filter(|(code, _)| *code == 200)).await;
    scenario.converge_empty_vm().await;
    scenario.check_endpoints().await;
    scenario.delete_empty_vm().await;
    // Logged right after the finalizer is removed, so possibly after the Wukong is seen gone.
    let finished = scenario
        .wait("the operator logs the finished cleanup", 10, async || {
            scenario.log().lines().find(|line| line.contains("cleanup finished")).map(str::to_owned)
        })
        .await;
    for field in ["reconcile{", "namespace=", "name=empty-vm", "trace_id="] {
        assert!(finished.contains(field), "the reconcile span carries {field}: {finished}");
    }
    let problems = scenario.stop().await;
    assert!(problems.iter().all(|line| !line.contains(" ERROR ")), "the operator logged errors: {problems:#?}");
}

#[tokio::test]
async fn the_operator_takes_the_leader_lease_then_reconciles() {
    let scenario = Scenario::start("operator-leader", &["--leader-elect", "--leader-elect-namespace", "default"]).await;
    let holder = scenario
        .wait("the Lease wukong-operator is held", 20, async || {
            let lease = scenario.fake.get("coordination.k8s.io/v1", "leases", Some("default"), "wukong-operator")?;
            lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
        })
        .await;
    assert!(holder.starts_with("wukong-"), "unexpected holder {holder}");
    scenario.converge_empty_vm().await;
    scenario.check_endpoints().await;
    scenario.delete_empty_vm().await;
    let problems = scenario.stop().await;
    assert!(problems.iter().all(|line| !line.contains(" ERROR ")), "the operator logged errors: {problems:#?}");
}
