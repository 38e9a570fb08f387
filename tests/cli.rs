//! The `wukong` binary as a user runs it: exit codes, stdout and stderr of
//! `render`, `validate` and `crd`.

// Tests fail by panicking: expect/unwrap with a message is the point here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn example(name: &str) -> PathBuf {
    Path::new(MANIFEST).join("examples").join(name)
}

fn golden(name: &str) -> String {
    std::fs::read_to_string(Path::new(MANIFEST).join("tests/golden").join(name)).expect("golden file")
}

/// Runs `wukong` with arguments and optional stdin.
fn wukong(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wukong"))
        .args(args)
        .current_dir(MANIFEST)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wukong starts");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or_default().as_bytes()).expect("stdin is written");
    drop(input);
    child.wait_with_output().expect("wukong finishes")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, content: &str) -> Self {
        let path = std::env::temp_dir().join(format!("wukong-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, content).expect("temp file is written");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn render_prints_the_golden_children() {
    let output = wukong(&["render", "-f", "examples/web-server-01.yaml"], None);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), golden("web-server-01.yaml"));
    assert_eq!(stderr(&output), "");
}

#[test]
fn render_reads_stdin_for_dash() {
    let input = std::fs::read_to_string(example("web-server-01.yaml")).expect("example");
    let output = wukong(&["render", "-f", "-"], Some(&input));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), golden("web-server-01.yaml"));
}

#[test]
fn render_of_several_files_prints_them_in_order_with_notes_on_stderr() {
    let output = wukong(&["render", "-f", "examples/sriov-vm.yaml", "--filename", "examples/dhcp-vm.yaml"], None);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), golden("sriov-vm.yaml") + &golden("dhcp-vm.yaml"));
    // The offline render cannot read the password Secret and says so, on stderr only.
    let notes = stderr(&output);
    assert!(notes.starts_with("note: Wukong telco/dpdk-router: spec.cloudInit.users[0].passwordSecretRef:"), "{notes}");
    assert_eq!(notes.lines().count(), 1, "{notes}");
}

const BAD: &str = r#"apiVersion: vm.novasphere.dev/v1alpha1
kind: Wukong
metadata: {name: bad-vm, namespace: lab}
spec:
  cpu: 0
  memory: 8GB
  networks:
    - {name: mgmt, type: vlan}
  disks:
    - {name: system, image: "s3://bucket/disk.img"}
"#;

#[test]
fn validate_reports_every_problem_on_stderr_and_fails() {
    let file = TempFile::new("bad.yaml", BAD);
    let output = wukong(&["validate", "-f", file.path()], None);
    assert!(!output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "");
    let prefix = format!("error: {}: document 1 (Wukong lab/bad-vm): ", file.path());
    let expected: Vec<String> = [
        "spec.cpu: \"0\" must be between 1 and 1024 cores",
        "spec.memory: \"8GB\" is not a quantity (unknown suffix \"GB\")",
        "spec.networks[0].vlanId: is required for a vlan network",
        "spec.disks[0].size: an image disk needs the size of the volume to import into",
        "spec.disks[0].image: \"s3://bucket/disk.img\" must start with docker://, http:// or https://",
    ]
    .iter()
    .map(|problem| format!("{prefix}{problem}"))
    .collect();
    assert_eq!(stderr(&output).lines().collect::<Vec<_>>(), expected);
}

#[test]
fn validate_of_a_valid_file_says_so_and_prints_nothing_on_stdout() {
    let output = wukong(&["validate", "-f", "examples/web-server-01.yaml"], None);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "");
    assert_eq!(stderr(&output), "examples/web-server-01.yaml: Wukong prod/web-server-01 is valid\n");
}

#[test]
fn render_prints_nothing_when_any_file_is_bad() {
    let file = TempFile::new("bad-render.yaml", BAD);
    let output = wukong(&["render", "-f", "examples/web-server-01.yaml", "-f", file.path()], None);
    assert!(!output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "", "a partial render must not be printed");
    assert!(stderr(&output).contains("spec.networks[0].vlanId: is required for a vlan network"), "{}", stderr(&output));
}

#[test]
fn parse_errors_name_the_file_document_path_and_line() {
    let file = TempFile::new("typo.yaml", &BAD.replace("cpu: 0", "cpu: 2\n  storageClass: fast"));
    let output = wukong(&["validate", "-f", file.path()], None);
    assert!(!output.status.success());
    let shown = stderr(&output);
    assert!(shown.starts_with(&format!("error: {}: document 1: spec.storageClass: unknown field `storageClass`", file.path())), "{shown}");
    assert!(shown.trim_end().ends_with("at line 6 column 3"), "{shown}");
}

#[test]
fn render_of_a_missing_file_is_a_clear_error() {
    let output = wukong(&["render", "-f", "no/such/wukong.yaml"], None);
    assert!(!output.status.success());
    assert_eq!(stdout(&output), "");
    let shown = stderr(&output);
    assert!(shown.starts_with("error: failed to read \"no/such/wukong.yaml\": "), "{shown}");
    assert_eq!(shown.lines().count(), 1, "{shown}");
}

#[test]
fn render_of_an_empty_stdin_fails() {
    let output = wukong(&["render", "-f", "-"], Some(""));
    assert!(!output.status.success());
    assert_eq!(stdout(&output), "");
    assert!(stderr(&output).contains("the input holds no Wukong document"), "{}", stderr(&output));
}

#[test]
fn render_without_a_file_is_a_usage_error() {
    let output = wukong(&["render"], None);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(stderr(&output).contains("--filename"), "{}", stderr(&output));
}

#[test]
fn crd_prints_the_wukong_crd() {
    let output = wukong(&["crd"], None);
    assert!(output.status.success(), "{output:?}");
    let crd: CustomResourceDefinition = wukong::yaml::from_str(&stdout(&output)).expect("stdout is a CustomResourceDefinition");
    assert_eq!(crd.metadata.name.as_deref(), Some("wukongs.vm.novasphere.dev"));
    assert_eq!(crd.spec.names.kind, "Wukong");
    assert!(crd.spec.versions.iter().any(|version| version.name == "v1alpha1" && version.storage && version.served));
    assert_eq!(crd, wukong::api::crd());
}

#[test]
fn render_of_a_pool_network_says_the_address_comes_at_run_time_and_renders_a_given_one() {
    let file = example("pool-vm.yaml");
    let output = wukong(&["render", "-f", file.to_str().expect("path")], None);
    assert!(output.status.success());
    assert!(stderr(&output).contains("allocated at run time from IPPool \"vlan100\""), "{}", stderr(&output));
    assert_eq!(stdout(&output), golden("pool-vm.yaml"));

    let output = wukong(&["render", "-f", file.to_str().expect("path"), "--address", "mgmt=192.168.100.77/24"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("allocated at run time"), "{}", stderr(&output));
    assert_ne!(stdout(&output), golden("pool-vm.yaml"), "the given address changes the network data");

    let output = wukong(&["render", "-f", file.to_str().expect("path"), "--address", "mgmt"], None);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("expected NETWORK=ADDRESS/PREFIX"), "{}", stderr(&output));
}

#[test]
fn crd_prints_the_pool_and_lease_crds_on_request() {
    for (kind, name) in [("ippool", "ippools.vm.novasphere.dev"), ("iplease", "ipleases.vm.novasphere.dev")] {
        let output = wukong(&["crd", kind], None);
        assert!(output.status.success());
        assert!(stdout(&output).contains(&format!("name: {name}")), "{kind}");
        assert!(stdout(&output).contains("scope: Cluster"), "{kind}");
    }
}
