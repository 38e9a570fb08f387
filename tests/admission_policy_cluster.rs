//! The migration admission policy on a real API server, with impersonated
//! users both ways: a Wukong editor without the right to create
//! VirtualMachineInstanceMigrations cannot set or change `spec.migration`
//! (the message says why), one with it can, and other changes and removing
//! the request stay allowed.
//!
//! Runs only when `WUKONG_E2E_KUBECONFIG` names a cluster-admin kubeconfig of
//! a Kubernetes 1.30+ API server (e.g. `/work/shared/realk8s/start.sh`), and
//! prints that it skipped otherwise. It installs our CRD and the policy, works
//! in a namespace of its own, and deletes the namespace and the policy at the end.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expectation is a failed test")]

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};
use wukong::api::Wukong;

const POLICY: &str = include_str!("../config/policy/migration_policy.yaml");

async fn client(path: &str, user: Option<&str>) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("the kubeconfig reads");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("a config");
    config.auth_info.impersonate = user.map(str::to_string);
    Client::try_from(config).expect("a client")
}

fn role(namespace: &str, name: &str, group: &str, resource: &str, verbs: &[&str]) -> Role {
    Role {
        metadata: ObjectMeta { name: Some(name.to_string()), namespace: Some(namespace.to_string()), ..ObjectMeta::default() },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![group.to_string()]),
            resources: Some(vec![resource.to_string()]),
            verbs: verbs.iter().map(|verb| (*verb).to_string()).collect(),
            ..PolicyRule::default()
        }]),
    }
}

fn binding(namespace: &str, role: &str, users: &[&str]) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta { name: Some(role.to_string()), namespace: Some(namespace.to_string()), ..ObjectMeta::default() },
        role_ref: RoleRef { api_group: "rbac.authorization.k8s.io".to_string(), kind: "Role".to_string(), name: role.to_string() },
        subjects: Some(
            users
                .iter()
                .map(|user| Subject {
                    api_group: Some("rbac.authorization.k8s.io".to_string()),
                    kind: "User".to_string(),
                    name: (*user).to_string(),
                    ..Subject::default()
                })
                .collect(),
        ),
    }
}

/// A merge patch of the Wukong's spec as `api`'s user; the API error's status code and message on refusal.
async fn patch_spec(api: &Api<Wukong>, spec: Value) -> Result<(), (u16, String)> {
    match api.patch("vm1", &PatchParams::default(), &Patch::Merge(&json!({"spec": spec}))).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err((status.code, status.message.clone())),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn only_users_who_may_migrate_set_or_change_the_migration() {
    let Ok(path) = std::env::var("WUKONG_E2E_KUBECONFIG") else {
        println!("skipped: WUKONG_E2E_KUBECONFIG is not set");
        return;
    };
    let admin = client(&path, None).await;
    let apply = PatchParams::apply("wukong-policy-test").force();
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    crds.patch("wukongs.vm.novasphere.dev", &apply, &Patch::Apply(wukong::api::crd())).await.expect("the CRD");
    let documents: Vec<Value> = wukong::yaml::documents(POLICY).iter().map(|document| document.parse().expect("YAML")).collect();
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(documents[0].clone()).expect("the policy");
    let policy_binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(documents[1].clone()).expect("the binding");
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(admin.clone());
    let policy_name = policy.metadata.name.clone().expect("named");
    policies.patch(&policy_name, &apply, &Patch::Apply(&policy)).await.expect("the policy");
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(admin.clone());
    let binding_name = policy_binding.metadata.name.clone().expect("named");
    bindings.patch(&binding_name, &apply, &Patch::Apply(&policy_binding)).await.expect("the binding");

    let namespace = format!("wukong-policy-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let fresh = Namespace { metadata: ObjectMeta { name: Some(namespace.clone()), ..ObjectMeta::default() }, ..Namespace::default() };
    namespaces.create(&PostParams::default(), &fresh).await.expect("the namespace");
    let roles: Api<Role> = Api::namespaced(admin.clone(), &namespace);
    let role_bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &namespace);
    let post = PostParams::default();
    let verbs = ["get", "list", "watch", "create", "update", "patch", "delete"];
    roles.create(&post, &role(&namespace, "wukong-editor", "vm.novasphere.dev", "wukongs", &verbs)).await.unwrap();
    role_bindings.create(&post, &binding(&namespace, "wukong-editor", &["alice", "bob"])).await.unwrap();
    roles.create(&post, &role(&namespace, "migrate", "kubevirt.io", "virtualmachineinstancemigrations", &["create"])).await.unwrap();
    role_bindings.create(&post, &binding(&namespace, "migrate", &["bob"])).await.unwrap();

    let alice: Api<Wukong> = Api::namespaced(client(&path, Some("alice")).await, &namespace);
    let bob: Api<Wukong> = Api::namespaced(client(&path, Some("bob")).await, &namespace);
    let wukong: Wukong = serde_json::from_value(json!({
        "apiVersion": "vm.novasphere.dev/v1alpha1", "kind": "Wukong",
        "metadata": {"name": "vm1", "namespace": namespace}, "spec": {"cpu": 1, "memory": "1Gi"},
    }))
    .unwrap();
    // The CRD and the policy take a moment to be served and enforced: the first
    // refusal of alice's request is what the test waits for.
    let mut refusal = None;
    for _ in 0..120 {
        if alice.get_opt("vm1").await.ok().flatten().is_none() {
            let _ = alice.create(&post, &wukong).await;
        }
        if let Err((code, message)) = patch_spec(&alice, json!({"migration": {"requestedAt": "t1"}})).await
            && message.contains("ValidatingAdmissionPolicy")
        {
            refusal = Some((code, message));
            break;
        }
        let _ = patch_spec(&bob, json!({"migration": null})).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (code, message) = refusal.expect("alice is refused once the policy is enforced");
    assert_eq!(code, 403);
    assert!(
        message.contains(&format!("needs the right to create virtualmachineinstancemigrations.kubevirt.io in namespace {namespace}"))
            && message.contains("user alice"),
        "{message}"
    );

    patch_spec(&bob, json!({"migration": {"requestedAt": "t1"}})).await.expect("bob may migrate");
    patch_spec(&alice, json!({"cpu": 2})).await.expect("other changes stay allowed (the migration is unchanged)");
    let changed = patch_spec(&alice, json!({"migration": {"requestedAt": "t2"}})).await;
    assert_eq!(changed.map_err(|(code, _)| code), Err(403), "a new token is refused");
    let moved = patch_spec(&alice, json!({"migration": {"nodeSelector": {"zone": "b"}}})).await;
    assert_eq!(moved.map_err(|(code, _)| code), Err(403), "a new node selector is refused");
    patch_spec(&alice, json!({"migration": null})).await.expect("removing the request stays allowed");

    namespaces.delete(&namespace, &DeleteParams::default()).await.expect("delete the namespace");
    bindings.delete(&binding_name, &DeleteParams::default()).await.expect("delete the binding");
    policies.delete(&policy_name, &DeleteParams::default()).await.expect("delete the policy");
}
