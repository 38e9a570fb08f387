//! The deployment artefacts and their agreement with the code.
//!
//! In: the manifests under `config/`, the Helm chart under `charts/wukong/`,
//! the declared permissions (`wukong::controller::permissions`) and a full
//! reconcile lifecycle against the in-memory API server. Out: failures when a
//! CRD copy drifts from `wukong crd`, when a role grants more or less than the
//! declared permissions, when the declared permissions grant more or less than
//! the controller's watches and requests need, when a kustomization names a
//! missing file, or when the Deployment loses its hardening, probes or
//! leader election.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a failed expect is a failed test, also in the helpers")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::fake_api::{FakeApi, Request};
use common::fixtures::{DATA_PVC, operator_lease};
use common::harness::Harness;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Resource;
use kube::runtime::reflector::Store;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use wukong::children::{ChildKind, EachKind, for_each_kind};
use wukong::controller::context::Stores;
use wukong::controller::permissions::{LEADER_ELECTION, Permission, cluster};
use wukong::controller::wukong_resource;
use wukong_models::datavolume::DataVolume;
use wukong_models::virtualmachine::VirtualMachine;

/// The operator's namespace in `config/`.
const NAMESPACE: &str = "wukong-system";
/// The operator's ServiceAccount in `config/`.
const SERVICE_ACCOUNT: &str = "wukong-operator";
/// The leader Lease; fixed by the operator.
const LEASE: &str = "wukong-operator";
/// The image the manifests deploy.
const IMAGE: &str = "ghcr.io/novasphere/wukong";

/// RBAC rules folded per (apiGroup, resource) into their verbs.
type Rules = BTreeMap<(String, String), BTreeSet<String>>;

/// One access as RBAC authorises it: (apiGroup, resource[/subresource], verb).
type Access = (String, String, String);

fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative)).unwrap_or_else(|error| panic!("failed to read {relative}: {error}"))
}

/// The YAML documents of `text`, empty ones left out.
fn documents(text: &str, origin: &str) -> Vec<Value> {
    wukong::yaml::documents(text)
        .iter()
        .map(|document| document.parse::<Value>().unwrap_or_else(|error| panic!("{origin}: invalid YAML: {error}")))
        .filter(|document| !document.is_null())
        .collect()
}

/// The only document of a manifest file, checked to be of `kind`.
fn manifest(relative: &str, kind: &str) -> Value {
    let mut found = documents(&read(relative), relative);
    assert_eq!(found.len(), 1, "{relative} holds one object");
    let object = found.remove(0);
    assert_eq!(object["kind"], kind, "{relative} holds a {kind}");
    object
}

/// A Helm template read the way a test can: lines that are only a template
/// action (`{{- if ... }}`, `{{- include ... | nindent 4 }}`) are dropped, and
/// every inline action becomes `X`. Whatever is compared after this must not
/// depend on template logic.
fn untemplated(relative: &str) -> Value {
    let text = read(relative);
    let action = regex::Regex::new(r"\{\{.*?\}\}").expect("regex");
    let kept: Vec<String> = text
        .lines()
        .filter(|line| {
            let trimmed = line.trim();
            !(trimmed.starts_with("{{") && trimmed.ends_with("}}"))
        })
        .map(|line| action.replace_all(line, "X").into_owned())
        .collect();
    let mut found = documents(&kept.join("\n"), relative);
    assert_eq!(found.len(), 1, "{relative} holds one object");
    found.remove(0)
}

/// Parses `value` as `K` and checks that nothing was lost on the way: a
/// misspelt or misplaced field (which the API server would reject or drop)
/// does not survive the round trip.
fn strict<K: DeserializeOwned + Serialize>(value: &Value, origin: &str) -> K {
    let typed: K = serde_json::from_value(value.clone()).unwrap_or_else(|error| panic!("{origin}: {error}"));
    let back = serde_json::to_value(&typed).expect("serialise");
    assert_eq!(&back, value, "{origin}: fields the Kubernetes type does not know (left: as understood, right: as written)");
    typed
}

fn expected_rules(permissions: &[Permission]) -> Rules {
    let mut rules = Rules::new();
    for permission in permissions {
        let verbs = rules.entry((permission.group.to_string(), permission.resource.to_string())).or_default();
        verbs.extend(permission.verbs.iter().map(|verb| (*verb).to_string()));
    }
    rules
}

fn strings(value: &Value, field: &str, origin: &str) -> Vec<String> {
    match value.get(field) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            items.iter().map(|item| item.as_str().unwrap_or_else(|| panic!("{origin}: {field} holds {item}")).to_string()).collect()
        }
        Some(other) => panic!("{origin}: {field} is {other}, not a list"),
    }
}

/// Folds a role's rules; no wildcard, no non-resource URL, and names only
/// where `allowed_names` says (never on create, list or watch, which names
/// cannot limit).
fn role_rules(role: &Value, allowed_names: &[&str], origin: &str) -> Rules {
    let mut rules = Rules::new();
    for rule in role["rules"].as_array().unwrap_or_else(|| panic!("{origin}: no rules")) {
        assert!(rule.get("nonResourceURLs").is_none(), "{origin}: non-resource URLs in {rule}");
        let groups = strings(rule, "apiGroups", origin);
        let resources = strings(rule, "resources", origin);
        let verbs = strings(rule, "verbs", origin);
        let names = strings(rule, "resourceNames", origin);
        for word in groups.iter().chain(&resources).chain(&verbs) {
            assert!(!word.contains('*'), "{origin}: wildcard in {rule}");
        }
        assert!(!groups.is_empty() && !resources.is_empty() && !verbs.is_empty(), "{origin}: incomplete rule {rule}");
        if !names.is_empty() {
            assert!(names.iter().all(|name| allowed_names.contains(&name.as_str())), "{origin}: resourceNames {names:?} in {rule}");
            assert!(
                verbs.iter().all(|verb| !matches!(verb.as_str(), "create" | "list" | "watch")),
                "{origin}: {verbs:?} cannot be limited by name"
            );
        }
        for group in &groups {
            for resource in &resources {
                rules.entry((group.clone(), resource.clone())).or_default().extend(verbs.iter().cloned());
            }
        }
    }
    rules
}

fn assert_rules(role: &Value, permissions: &[Permission], allowed_names: &[&str], origin: &str) {
    let granted = role_rules(role, allowed_names, origin);
    let wanted = expected_rules(permissions);
    let mut problems = Vec::new();
    for (key, verbs) in &wanted {
        let have = granted.get(key).cloned().unwrap_or_default();
        let missing: Vec<_> = verbs.difference(&have).collect();
        if !missing.is_empty() {
            problems.push(format!("missing {missing:?} on {key:?}"));
        }
    }
    for (key, verbs) in &granted {
        let want = wanted.get(key).cloned().unwrap_or_default();
        let excess: Vec<_> = verbs.difference(&want).collect();
        if !excess.is_empty() {
            problems.push(format!("excess {excess:?} on {key:?}"));
        }
    }
    assert!(problems.is_empty(), "{origin} differs from wukong::controller::permissions: {problems:#?}");
}

#[test]
fn config_roles_grant_exactly_the_declared_permissions() {
    let cluster_role = manifest("config/rbac/cluster_role.yaml", "ClusterRole");
    assert_rules(&cluster_role, &cluster(), &[], "config/rbac/cluster_role.yaml");
    let lease_role = manifest("config/rbac/leader_election_role.yaml", "Role");
    assert_rules(&lease_role, LEADER_ELECTION, &[LEASE], "config/rbac/leader_election_role.yaml");
    assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
}

#[test]
fn chart_roles_grant_exactly_the_declared_permissions() {
    let cluster_role = untemplated("charts/wukong/templates/clusterrole.yaml");
    assert_eq!(cluster_role["kind"], "ClusterRole");
    assert_rules(&cluster_role, &cluster(), &[], "charts/wukong/templates/clusterrole.yaml");
    let lease_role = untemplated("charts/wukong/templates/role.yaml");
    assert_eq!(lease_role["kind"], "Role");
    assert_rules(&lease_role, LEADER_ELECTION, &[LEASE], "charts/wukong/templates/role.yaml");
    // The rules are compared as written; the chart's and config's must also be
    // the same text, comments aside, so that a reviewer sees one table.
    let config = manifest("config/rbac/cluster_role.yaml", "ClusterRole");
    assert_eq!(cluster_role["rules"], config["rules"], "the chart's ClusterRole rules equal config/rbac/cluster_role.yaml");
    let config = manifest("config/rbac/leader_election_role.yaml", "Role");
    assert_eq!(lease_role["rules"], config["rules"], "the chart's lease Role rules equal config/rbac/leader_election_role.yaml");
}

#[test]
fn both_crd_copies_equal_wukong_crd() {
    let generated = wukong::api::crd_yaml().expect("crd yaml");
    for copy in ["config/crd/wukongs.vm.novasphere.dev.yaml", "charts/wukong/crds/wukongs.vm.novasphere.dev.yaml"] {
        assert!(read(copy) == generated, "{copy} differs from `wukong crd`; regenerate it with `wukong crd > {copy}`");
    }
    for (file, crd) in wukong::api::crds() {
        let generated = wukong::yaml::to_string(&crd).expect("crd yaml");
        for folder in ["config/crd", "charts/wukong/crds"] {
            let copy = format!("{folder}/{file}");
            assert!(read(&copy) == generated, "{copy} differs from `wukong crd`; regenerate it with `wukong crd <kind> > {copy}`");
        }
    }
}

/// Every kustomization under `config/` names files and directories that exist
/// (a directory must itself hold a kustomization), and every manifest in a
/// kustomization's directory is listed by it.
#[test]
fn kustomizations_name_existing_resources_and_list_every_manifest() {
    let mut kustomizations = Vec::new();
    let mut pending = vec![path("config")];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).expect("read config directory") {
            let entry = entry.expect("directory entry").path();
            if entry.is_dir() {
                pending.push(entry);
            } else if entry.file_name().is_some_and(|name| name == "kustomization.yaml") {
                kustomizations.push(entry);
            }
        }
    }
    kustomizations.sort();
    let names: Vec<String> = kustomizations
        .iter()
        .map(|file| file.parent().and_then(Path::file_name).unwrap_or_default().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["crd", "default", "manager", "policy", "rbac"]);

    for file in &kustomizations {
        let shown = file.display().to_string();
        let kustomization: Value = wukong::yaml::from_str(&std::fs::read_to_string(file).expect("read")).expect("kustomization yaml");
        assert_eq!(kustomization["kind"], "Kustomization", "{shown}");
        let directory = file.parent().expect("parent");
        let resources = strings(&kustomization, "resources", &shown);
        assert!(!resources.is_empty(), "{shown} lists no resources");
        for resource in &resources {
            let target = directory.join(resource);
            assert!(target.exists(), "{shown}: resource {resource} does not exist");
            if target.is_dir() {
                assert!(target.join("kustomization.yaml").is_file(), "{shown}: directory {resource} holds no kustomization.yaml");
            }
        }
        for entry in std::fs::read_dir(directory).expect("read directory") {
            let entry = entry.expect("entry").path();
            let name = entry.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if entry.is_file() && name.ends_with(".yaml") && name != "kustomization.yaml" {
                assert!(resources.contains(&name), "{shown} does not list {name}");
            }
        }
    }
    let default: Value = wukong::yaml::from_str(&read("config/default/kustomization.yaml")).expect("yaml");
    assert_eq!(default["namespace"], NAMESPACE);
    assert_eq!(strings(&default, "resources", "config/default"), ["../crd", "../policy", "../rbac", "../manager"]);
}

/// The checks every operator container must pass, from `config/` or the chart.
fn assert_hardened_container(container: &Value, origin: &str) {
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true, "{origin}: readOnlyRootFilesystem");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{origin}: allowPrivilegeEscalation");
    assert_eq!(security["runAsNonRoot"], true, "{origin}: runAsNonRoot");
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]), "{origin}: capabilities");
    assert!(security["capabilities"]["add"].is_null(), "{origin}: no capability is added");
    assert_ne!(security["privileged"], true, "{origin}: privileged");
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(container["resources"][bound][resource].is_string(), "{origin}: resources.{bound}.{resource}");
        }
    }
}

fn assert_probes_and_args(container: &Value, origin: &str) {
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz", "{origin}: liveness");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz", "{origin}: readiness");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "metrics", "{origin}: {probe} port");
    }
    assert_eq!(
        container["ports"],
        json!([{"name": "metrics", "containerPort": container["ports"][0]["containerPort"], "protocol": "TCP"}])
    );
    let args = strings(container, "args", origin);
    assert_eq!(args.first().map(String::as_str), Some("run"), "{origin}: args {args:?}");
    assert!(args.iter().any(|arg| arg == "--leader-elect"), "{origin}: args {args:?}");
    assert!(args.iter().any(|arg| arg.starts_with("--metrics-addr=0.0.0.0:")), "{origin}: args {args:?}");
    assert!(args.iter().any(|arg| arg == "--log-format=json" || arg == "--log-format=X"), "{origin}: args {args:?}");
    for flag in ["--readiness-grace-seconds=", "--liveness-grace-seconds="] {
        assert!(args.iter().any(|arg| arg.starts_with(flag)), "{origin}: {flag} in args {args:?}");
    }
    for variable in ["POD_NAME", "POD_NAMESPACE"] {
        let env = container["env"].as_array().and_then(|env| env.iter().find(|item| item["name"] == variable));
        let field = env.map(|env| &env["valueFrom"]["fieldRef"]["fieldPath"]);
        let wanted = if variable == "POD_NAME" { "metadata.name" } else { "metadata.namespace" };
        assert_eq!(field, Some(&json!(wanted)), "{origin}: {variable} from the downward API");
    }
}

#[test]
fn config_deployment_is_hardened_probed_and_leader_elected() {
    let origin = "config/manager/deployment.yaml";
    let value = manifest(origin, "Deployment");
    let deployment: Deployment = strict(&value, origin);
    let spec = deployment.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(NAMESPACE));
    let pod = &value["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], SERVICE_ACCOUNT);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532, "the distroless nonroot user");
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    assert_hardened_container(container, origin);
    assert_probes_and_args(container, origin);
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert!(strings(container, "args", origin).contains(&"--metrics-addr=0.0.0.0:8080".to_string()));
    let typed: &Container = &spec.template.spec.as_ref().expect("pod spec").containers[0];
    assert_eq!(typed.image.as_deref(), Some(format!("{IMAGE}:{}", env!("CARGO_PKG_VERSION")).as_str()));

    // The selector picks the pod template; the Service and the budget pick the same pods.
    let selector = spec.selector.match_labels.clone().expect("matchLabels");
    let pod_labels = spec.template.metadata.as_ref().and_then(|metadata| metadata.labels.clone()).expect("pod labels");
    assert!(selector.iter().all(|(key, value)| pod_labels.get(key) == Some(value)), "the selector matches the pod labels");
    let service: Service = strict(&manifest("config/manager/service.yaml", "Service"), "config/manager/service.yaml");
    let service_spec = service.spec.expect("service spec");
    assert_eq!(service_spec.selector, Some(selector.clone()));
    let port = &service_spec.ports.expect("ports")[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("metrics"), 8080));
    let budget: PodDisruptionBudget = strict(&manifest("config/manager/pdb.yaml", "PodDisruptionBudget"), "config/manager/pdb.yaml");
    let budget_spec = budget.spec.expect("pdb spec");
    assert_eq!(budget_spec.min_available, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1)));
    assert_eq!(budget_spec.selector.and_then(|selector| selector.match_labels), Some(selector));

    let kustomization: Value = wukong::yaml::from_str(&read("config/manager/kustomization.yaml")).expect("yaml");
    assert_eq!(kustomization["images"], json!([{"name": IMAGE, "newTag": env!("CARGO_PKG_VERSION")}]));
}

#[test]
fn config_objects_are_well_formed_and_bound_together() {
    let namespace: Namespace = strict(&manifest("config/manager/namespace.yaml", "Namespace"), "namespace.yaml");
    assert_eq!(namespace.metadata.name.as_deref(), Some(NAMESPACE));
    let account: ServiceAccount = strict(&manifest("config/rbac/service_account.yaml", "ServiceAccount"), "service_account.yaml");
    assert_eq!((account.metadata.name.as_deref(), account.metadata.namespace.as_deref()), (Some(SERVICE_ACCOUNT), Some(NAMESPACE)));
    let cluster_role: ClusterRole = strict(&manifest("config/rbac/cluster_role.yaml", "ClusterRole"), "cluster_role.yaml");
    let role: Role = strict(&manifest("config/rbac/leader_election_role.yaml", "Role"), "leader_election_role.yaml");

    let binding: ClusterRoleBinding =
        strict(&manifest("config/rbac/cluster_role_binding.yaml", "ClusterRoleBinding"), "cluster_role_binding.yaml");
    assert_eq!((binding.role_ref.kind.as_str(), Some(&binding.role_ref.name)), ("ClusterRole", cluster_role.metadata.name.as_ref()));
    let subjects = binding.subjects.expect("subjects");
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str(), subjects[0].namespace.as_deref()),
        ("ServiceAccount", SERVICE_ACCOUNT, Some(NAMESPACE))
    );

    let binding: RoleBinding =
        strict(&manifest("config/rbac/leader_election_role_binding.yaml", "RoleBinding"), "leader_election_role_binding.yaml");
    assert_eq!(binding.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!((binding.role_ref.kind.as_str(), Some(&binding.role_ref.name)), ("Role", role.metadata.name.as_ref()));
    let subjects = binding.subjects.expect("subjects");
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str(), subjects[0].namespace.as_deref()),
        ("ServiceAccount", SERVICE_ACCOUNT, Some(NAMESPACE))
    );
}

#[test]
fn chart_is_hardened_probed_and_leader_elected_by_default() {
    let chart: Value = wukong::yaml::from_str(&read("charts/wukong/Chart.yaml")).expect("Chart.yaml");
    assert_eq!((chart["apiVersion"].as_str(), chart["name"].as_str()), (Some("v2"), Some("wukong")));
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"), "the chart's appVersion is the crate's version");
    let values: Value = wukong::yaml::from_str(&read("charts/wukong/values.yaml")).expect("values.yaml");
    assert_eq!(values["replicaCount"], 2);
    assert_eq!(values["leaderElection"]["enabled"], true);
    assert_eq!(values["image"]["repository"], IMAGE);
    assert_eq!(values["metrics"]["port"], 8080);
    assert_eq!(values["logFormat"], "json");
    assert_eq!(values["rbac"]["create"], true);
    let config_args =
        strings(&manifest("config/manager/deployment.yaml", "Deployment")["spec"]["template"]["spec"]["containers"][0], "args", "config");
    for (key, flag) in [("readinessGraceSeconds", "--readiness-grace-seconds"), ("livenessGraceSeconds", "--liveness-grace-seconds")] {
        let value = values["health"][key].as_u64().map(|seconds| format!("{flag}={seconds}"));
        assert!(
            value.as_ref().is_some_and(|value| config_args.contains(value)),
            "values.health.{key} {value:?} equals config/manager's {config_args:?}"
        );
    }

    // The chart's defaults are the manifests' settings.
    let config = manifest("config/manager/deployment.yaml", "Deployment");
    let pod = &config["spec"]["template"]["spec"];
    assert_eq!(values["podSecurityContext"], pod["securityContext"], "values.podSecurityContext equals config/manager");
    assert_eq!(values["securityContext"], pod["containers"][0]["securityContext"], "values.securityContext equals config/manager");
    assert_eq!(values["resources"], pod["containers"][0]["resources"], "values.resources equals config/manager");

    // The template puts those values where they belong and keeps the rest literal.
    let origin = "charts/wukong/templates/deployment.yaml";
    let text = read(origin);
    for (needle, why) in [
        ("replicas: {{ .Values.replicaCount }}", "replicas from values"),
        ("securityContext:\n        {{- toYaml .Values.podSecurityContext | nindent 8 }}", "the pod security context"),
        ("securityContext:\n            {{- toYaml .Values.securityContext | nindent 12 }}", "the container security context"),
        ("resources:\n            {{- toYaml .Values.resources | nindent 12 }}", "the resources"),
        ("{{- if .Values.leaderElection.enabled }}\n            - --leader-elect\n", "--leader-elect when enabled"),
        ("{{- fail ", "refusing several replicas without leader election"),
    ] {
        assert!(text.contains(needle), "{origin}: {why} (expected {needle:?})");
    }
    let deployment = untemplated(origin);
    assert_eq!(deployment["kind"], "Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_probes_and_args(container, origin);
    let mut rendered = container.clone();
    rendered["securityContext"] = values["securityContext"].clone();
    rendered["resources"] = values["resources"].clone();
    assert_hardened_container(&rendered, "charts/wukong (default values)");
}

// ----------------------------------------------------------------------------
// The permissions derived from the code: its watches and its requests.
// ----------------------------------------------------------------------------

fn watched<K: Resource<DynamicType = ()> + Clone + 'static>(_store: &Store<K>) -> (String, String) {
    (K::group(&()).into_owned(), K::plural(&()).into_owned())
}

/// The resources the controller keeps watch caches of: its fixed ones
/// (destructured without `..`, so a new one fails to compile here until it is
/// listed) and every registered child kind.
fn watched_resources(stores: &Stores) -> BTreeSet<(String, String)> {
    let Stores { wukongs: _, instances, storage_classes, children: _, pools, leases, lease_holders: _ } = stores;
    let wukong = wukong_resource();
    let mut resources =
        BTreeSet::from([(wukong.group, wukong.plural), watched(instances), watched(storage_classes), watched(pools), watched(leases)]);
    struct Kinds<'a>(&'a mut BTreeSet<(String, String)>);
    impl EachKind for Kinds<'_> {
        fn kind<K: ChildKind>(&mut self) {
            self.0.insert((K::group(&()).into_owned(), K::plural(&()).into_owned()));
        }
    }
    for_each_kind(&mut Kinds(&mut resources));
    resources
}

/// The API path of a stored object.
fn object_path(object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    let plural = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, kind)).plural;
    let prefix = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    let namespace = object["metadata"]["namespace"].as_str().map(|namespace| format!("/namespaces/{namespace}")).unwrap_or_default();
    format!("{prefix}{namespace}/{plural}/{}", object["metadata"]["name"].as_str().unwrap_or_default())
}

/// Every object the fake holds of the kinds the operator writes.
fn existing(api: &FakeApi) -> BTreeSet<String> {
    let wukong = wukong_resource();
    struct Kinds(Vec<(String, String)>);
    impl EachKind for Kinds {
        fn kind<K: ChildKind>(&mut self) {
            self.0.push((K::api_version(&()).into_owned(), K::plural(&()).into_owned()));
        }
    }
    let mut kinds = Kinds(vec![(wukong.api_version.clone(), wukong.plural.clone())]);
    for_each_kind(&mut kinds);
    kinds.0.iter().flat_map(|(api_version, plural)| api.list(api_version, plural)).map(|object| object_path(&object)).collect()
}

/// (apiGroup, resource[/subresource]) and whether the path names one object.
fn resource_of(path: &str) -> (String, String, bool) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => panic!("not an API path: {path}"),
    };
    let rest = match rest {
        ["namespaces", _namespace, tail @ ..] if !tail.is_empty() => tail,
        _ => rest,
    };
    match rest {
        [plural] => (group.to_string(), (*plural).to_string(), false),
        [plural, _name] => (group.to_string(), (*plural).to_string(), true),
        [plural, _name, subresource] => (group.to_string(), format!("{plural}/{subresource}"), true),
        _ => panic!("not a resource path: {path}"),
    }
}

/// What RBAC authorises for one request. Besides the request's own verb: a
/// server-side apply that creates its object is also authorised as `create`;
/// an owner reference with blockOwnerDeletion needs `update` on the owner's
/// `finalizers` (OwnerReferencesPermissionEnforcement); a DataVolume cloning a
/// claim of another namespace needs `create` on `datavolumes/source` there
/// (CDI's clone authorisation).
fn accesses(request: &Request, existed_before: &BTreeSet<String>) -> Vec<Access> {
    let (group, resource, named) = resource_of(&request.path);
    let verb = match (request.verb.as_str(), named) {
        ("get", false) => "list",
        (verb, _) => verb,
    };
    let mut found = vec![(group.clone(), resource.clone(), verb.to_string())];
    let body = request.body.clone().unwrap_or(Value::Null);
    let is_apply = request.content_type.as_deref() == Some("application/apply-patch+yaml");
    if request.verb == "patch" && is_apply && !resource.contains('/') && !existed_before.contains(&request.path) {
        found.push((group.clone(), resource.clone(), "create".to_string()));
    }
    if matches!(request.verb.as_str(), "create" | "patch" | "update") {
        for owner in body["metadata"]["ownerReferences"].as_array().into_iter().flatten() {
            if owner["blockOwnerDeletion"] == true {
                let api_version = owner["apiVersion"].as_str().unwrap_or_default();
                let owner_group = api_version.split_once('/').map_or("", |(group, _)| group);
                let kind = owner["kind"].as_str().unwrap_or_default();
                let plural = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(owner_group, "v1", kind)).plural;
                found.push((owner_group.to_string(), format!("{plural}/finalizers"), "update".to_string()));
            }
        }
        if (group.as_str(), resource.as_str()) == ("cdi.kubevirt.io", "datavolumes") {
            let own_namespace = request.path.split('/').skip_while(|segment| *segment != "namespaces").nth(1).unwrap_or_default();
            let source = &body["spec"]["source"]["pvc"];
            if source["namespace"].as_str().is_some_and(|namespace| namespace != own_namespace) {
                found.push(("cdi.kubevirt.io".to_string(), "datavolumes/source".to_string(), "create".to_string()));
            }
        }
    }
    found
}

/// The accesses of a whole run, each with the first request that needed it.
#[derive(Default)]
struct Used {
    accesses: BTreeMap<Access, String>,
}

impl Used {
    /// One reconcile pass with its requests recorded; returns whether it wrote anything.
    async fn pass(&mut self, harness: &Harness, namespace: &str, name: &str) -> bool {
        let before = existing(&harness.api);
        harness.api.clear_requests();
        if let Err(error) = harness.reconcile(namespace, name).await {
            panic!("reconcile of {namespace}/{name} failed: {error}");
        }
        let requests = self.record(harness, &before);
        requests.iter().any(|request| request.verb != "get" && request.verb != "list" && !request.path.contains("/events"))
    }

    /// One reconcile pass that fails (a fault injected), with its requests recorded.
    async fn failing_pass(&mut self, harness: &Harness, namespace: &str, name: &str) {
        let before = existing(&harness.api);
        harness.api.clear_requests();
        assert!(harness.reconcile(namespace, name).await.is_err(), "the pass of {namespace}/{name} fails");
        self.record(harness, &before);
    }

    /// Records the accesses of the requests since they were last cleared; returns the requests.
    fn record(&mut self, harness: &Harness, before: &BTreeSet<String>) -> Vec<Request> {
        let requests = harness.api.requests();
        for request in &requests {
            for access in accesses(request, before) {
                self.accesses.entry(access).or_insert_with(|| format!("{} {}", request.verb, request.path));
            }
        }
        requests
    }

    /// One pass of the IPPool controller over pool `name`.
    async fn pool_pass(&mut self, harness: &Harness, name: &str) {
        let before = existing(&harness.api);
        harness.api.clear_requests();
        if let Err(error) = harness.reconcile_pool(name).await {
            panic!("reconcile of IPPool {name} failed: {error}");
        }
        self.record(harness, &before);
    }

    /// One sweep of leases whose Wukong is gone.
    async fn sweep(&mut self, harness: &Harness) -> Vec<String> {
        let before = existing(&harness.api);
        harness.api.clear_requests();
        let released = harness.sweep().await;
        self.record(harness, &before);
        released
    }

    /// Reconciles until a pass writes nothing or the Wukong is gone.
    async fn converge(&mut self, harness: &Harness, namespace: &str, name: &str) {
        for _ in 0..8 {
            if harness.wukong(namespace, name).is_none() || !self.pass(harness, namespace, name).await {
                return;
            }
        }
        panic!("{namespace}/{name} did not converge in 8 passes: {:?}", harness.write_summary());
    }
}

const ADMIN_PASSWORD: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: admin-password, namespace: telco}
type: Opaque
data: {hash: JDYkcm91bmRzPTQwOTYkd3Vrb25nJFl4MFBrWWJRMk45YUgx}
"#;

/// The lowest address of the sample pool, held by another Wukong (and not
/// in the cache yet: the create finds it taken and reads it).
const TAKEN_LEASE: &str = r#"
apiVersion: vm.novasphere.dev/v1alpha1
kind: IPLease
metadata:
  name: vlan100.192-168-100-10
spec:
  pool: vlan100
  address: 192.168.100.10
  mode: pool
  holder: {namespace: staging, name: other, uid: other-uid, network: mgmt, creationTimestamp: "2026-11-22T09:00:00Z"}
"#;

const BACKUP_PVC: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: backup-disk-pvc
  namespace: backups
  annotations: {vm.novasphere.dev/clone-to-namespaces: default}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 30Gi}}
status: {phase: Bound, capacity: {storage: 30Gi}}
"#;

/// Runs the examples through their whole life and returns every access the
/// controller needed: create and converge three Wukongs (an existing claim, a
/// password Secret, a granted cross-namespace clone), remove a disk, delete them.
async fn lifecycle() -> BTreeMap<Access, String> {
    let harness = Harness::new();
    let mut used = Used::default();

    harness.create(DATA_PVC);
    harness.create_wukong(include_str!("../examples/web-server-01.yaml"));
    used.converge(&harness, "prod", "web-server-01").await;
    assert_eq!(harness.condition("prod", "web-server-01", "Valid").status, "True");

    harness.create(ADMIN_PASSWORD);
    harness.create_wukong(include_str!("../examples/sriov-vm.yaml"));
    used.converge(&harness, "telco", "dpdk-router").await;
    assert_eq!(harness.condition("telco", "dpdk-router", "Valid").status, "True");

    harness.create(BACKUP_PVC);
    harness.create_wukong(include_str!("../examples/restored-vm.yaml"));
    used.converge(&harness, "default", "restored-vm").await;
    assert_eq!(harness.condition("default", "restored-vm", "Valid").status, "True");
    let clone: DataVolume = harness.api.get_typed(Some("default"), "restored-vm-system").expect("the clone DataVolume");
    let source = serde_json::to_value(&clone.spec).expect("json")["source"]["pvc"].clone();
    assert_eq!(source, json!({"name": "backup-disk-pvc", "namespace": "backups"}));

    // A pool address: the lowest free one is someone else's (a create that
    // finds it taken reads it), the pool gets its finalizer and status, and a
    // switch to DHCP marks the lease for release after the running instance.
    harness.create(include_str!("../config/samples/ippool-vlan100.yaml"));
    harness.create(TAKEN_LEASE);
    harness.create_wukong(include_str!("../examples/pool-vm.yaml"));
    used.converge(&harness, "prod", "pool-vm").await;
    assert_eq!(harness.condition("prod", "pool-vm", "Valid").status, "True");
    used.pool_pass(&harness, "vlan100").await;
    used.pool_pass(&harness, "vlan100").await;
    let vm: VirtualMachine = harness.api.get_typed(Some("prod"), "pool-vm-vm").expect("the pool VM");
    let labels = vm.spec.template.metadata.clone().unwrap_or_default()["labels"].clone();
    harness.api.insert(json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": "pool-vm-vm", "namespace": "prod", "uid": "pool-vm-instance", "labels": labels},
        "spec": {"domain": {"devices": {}}}, "status": {"phase": "Running"},
    }));
    harness.edit_spec("prod", "pool-vm", |spec| spec["networks"][0]["ipConfig"] = json!({"mode": "dhcp"}));
    used.converge(&harness, "prod", "pool-vm").await;
    harness.edit("kubevirt.io/v1", "virtualmachineinstances", Some("prod"), "pool-vm-vm", |instance| {
        instance["metadata"]["uid"] = json!("restarted");
        instance["status"]["interfaces"] = json!([{"name": "mgmt", "ipAddress": "192.168.100.99"}]);
    });
    used.converge(&harness, "prod", "pool-vm").await;
    harness.delete_wukong("prod", "pool-vm").await;
    used.converge(&harness, "prod", "pool-vm").await;

    // A restart of the running VM: the restart subresource (404 here: no
    // virt-api), then the instance deleted.
    let vm: VirtualMachine = harness.api.get_typed(Some("prod"), "web-server-01-vm").expect("the VM");
    let labels = vm.spec.template.metadata.clone().unwrap_or_default()["labels"].clone();
    let instance = json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {
            "name": "web-server-01-vm", "namespace": "prod", "labels": labels,
            // Owned by the VM, as KubeVirt does: it goes with the VM.
            "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "web-server-01-vm",
                                 "uid": vm.metadata.uid, "controller": true}],
        },
        "spec": {"domain": {"devices": {}}},
        "status": {"phase": "Running", "nodeName": "node-a"},
    });
    harness.api.insert(instance.clone());
    harness.edit_spec("prod", "web-server-01", |spec| spec["restartRequestedAt"] = json!("lifecycle"));
    for _ in 0..2 {
        used.pass(&harness, "prod", "web-server-01").await;
    }
    assert!(harness.api.get("kubevirt.io/v1", "virtualmachineinstances", Some("prod"), "web-server-01-vm").is_none(), "restarted");
    harness.api.insert(instance); // KubeVirt starts the new instance.
    used.converge(&harness, "prod", "web-server-01").await;

    // A live migration: acknowledged, created, finished (removed later, with the cache disk's edit).
    harness.edit_spec("prod", "web-server-01", |spec| spec["migration"] = json!({"requestedAt": "lifecycle"}));
    used.converge(&harness, "prod", "web-server-01").await;
    let migration = wukong::naming::migration_name("web-server-01", "lifecycle");
    harness.edit("kubevirt.io/v1", "virtualmachineinstancemigrations", Some("prod"), &migration, |object| {
        object["status"] = json!({"phase": "Succeeded"});
    });
    used.converge(&harness, "prod", "web-server-01").await;

    // Remove the cache disk: its claim goes.
    harness.edit_spec("prod", "web-server-01", |spec| {
        spec["disks"].as_array_mut().expect("disks").retain(|disk| disk["name"] != "cache");
    });
    used.converge(&harness, "prod", "web-server-01").await;
    assert!(harness.api.get("v1", "persistentvolumeclaims", Some("prod"), "web-server-01-cache").is_none(), "the cache claim is removed");
    let finished = harness.api.get("kubevirt.io/v1", "virtualmachineinstancemigrations", Some("prod"), &migration);
    assert!(finished.is_none(), "the finished migration is removed");

    // A failure that comes back after a recovery: its second Event extends the first one's series (a patch).
    let password = |request: &Request| request.verb == "get" && request.path.ends_with("/secrets/admin-password");
    for _ in 0..2 {
        harness.api.fail_next(password, 500, "InternalError");
        used.failing_pass(&harness, "telco", "dpdk-router").await;
        used.converge(&harness, "telco", "dpdk-router").await;
    }

    for (namespace, name) in [("prod", "web-server-01"), ("telco", "dpdk-router"), ("default", "restored-vm")] {
        harness.delete_wukong(namespace, name).await;
        used.converge(&harness, namespace, name).await;
        assert!(harness.wukong(namespace, name).is_none(), "{namespace}/{name} is gone after cleanup");
    }
    assert!(harness.api.get("v1", "persistentvolumeclaims", Some("prod"), "data-pvc").is_some(), "an existing claim is never deleted");

    // The sweep: a lease whose Wukong went without its cleanup (the finalizer removed by hand) is released
    // once a GET confirms the holder is gone.
    harness.api.insert(operator_lease("vlan-100.192.168.100.99", "192.168.100.99", "gone", "gone-uid"));
    harness.sync();
    assert_eq!(used.sweep(&harness).await.len(), 1, "the lease of a gone Wukong is swept");
    let retained = harness.api.get("v1", "persistentvolumeclaims", Some("default"), "restored-vm-data");
    assert!(retained.is_some(), "the Retain disk's claim is released, not deleted");

    // The watch caches: list and watch on every watched resource.
    for (group, resource) in watched_resources(&harness.context.stores) {
        for verb in ["list", "watch"] {
            used.accesses.insert((group.clone(), resource.clone(), verb.to_string()), "watch cache".to_string());
        }
    }
    used.accesses
}

fn allows(permissions: &[Permission], (group, resource, verb): &Access) -> bool {
    permissions
        .iter()
        .any(|permission| permission.group == group && permission.resource == resource && permission.verbs.contains(&verb.as_str()))
}

#[tokio::test]
async fn declared_permissions_are_exactly_what_the_controller_uses() {
    let used = lifecycle().await;
    let missing: Vec<String> = used
        .iter()
        .filter(|(access, _)| !allows(&cluster(), access))
        .map(|((group, resource, verb), request)| format!("{verb} {group}/{resource} (first needed by {request})"))
        .collect();
    assert!(missing.is_empty(), "the controller needs access that permissions::cluster() does not declare: {missing:#?}");

    let mut unused = Vec::new();
    for permission in &cluster() {
        for verb in permission.verbs {
            let access = (permission.group.to_string(), permission.resource.to_string(), (*verb).to_string());
            if !used.contains_key(&access) {
                unused.push(format!("{verb} {}/{}", permission.group, permission.resource));
            }
        }
    }
    assert!(unused.is_empty(), "permissions::cluster() declares access the controller never needed in a full lifecycle: {unused:#?}");
}
