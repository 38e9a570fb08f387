//! The offline renderer behind `wukong render` and `wukong validate`.
//!
//! In: YAML text holding one or more Wukong documents. Out: the parsed Wukongs,
//! every problem with each (parse errors with their field path, then
//! validation problems), and the children as deterministic multi-document YAML
//! in apply order — exactly the objects the controller applies, without owner
//! references (no UID is known offline) and, for pool networks, without an
//! address unless one is given for review.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::api::{GROUP, IpMode, Wukong};
use crate::children::{BuildInputs, ChildKind, EachKind, LeasedAddress, for_each_kind, plan};
use crate::validate::{ValidWukong, validate};
use crate::yaml;

/// A problem with one input document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentError {
    /// 1-based position of the document in the input.
    pub document: usize,
    /// `namespace/name` of the Wukong, when it could be read.
    pub wukong: Option<String>,
    /// What is wrong: one line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for DocumentError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = match &self.wukong {
            Some(name) => format!("document {} (Wukong {name})", self.document),
            None => format!("document {}", self.document),
        };
        // One line per problem: line breaks quoted from the input are escaped.
        let lines: Vec<String> =
            self.problems.iter().map(|problem| format!("{subject}: {}", problem.replace('\r', "\\r").replace('\n', "\\n"))).collect();
        write!(formatter, "{}", lines.join("\n"))
    }
}

/// Reads every Wukong from YAML text. Empty documents are skipped; anything
/// that is not a Wukong is an error. Input with no Wukong at all is an error.
pub fn parse_documents(input: &str) -> Result<Vec<Wukong>, Vec<DocumentError>> {
    let mut wukongs = Vec::new();
    let mut errors = Vec::new();
    for (index, document) in yaml::documents(input).iter().enumerate() {
        let number = index + 1;
        let value = match document.parse::<serde_json::Value>() {
            Ok(serde_json::Value::Null) => continue,
            Ok(value) => value,
            Err(error) => {
                errors.push(DocumentError { document: number, wukong: None, problems: vec![format!("failed to parse YAML: {error}")] });
                break;
            }
        };
        match parse_wukong(value, || location(document)) {
            Ok(wukong) => wukongs.push(wukong),
            Err(problem) => errors.push(DocumentError { document: number, wukong: None, problems: vec![problem] }),
        }
    }
    if wukongs.is_empty() && errors.is_empty() {
        errors.push(DocumentError { document: 0, wukong: None, problems: vec!["the input holds no Wukong document".to_string()] });
    }
    if errors.is_empty() { Ok(wukongs) } else { Err(errors) }
}

fn parse_wukong(value: serde_json::Value, location: impl FnOnce() -> Option<(String, yaml::Location)>) -> Result<Wukong, String> {
    let serde_json::Value::Object(mapping) = &value else {
        return Err("is not a YAML mapping (expected a Wukong object)".to_string());
    };
    let text = |key: &str| mapping.get(key).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let expected = format!("{GROUP}/v1alpha1");
    if kind != "Wukong" || api_version != expected {
        return Err(format!(
            "apiVersion \"{api_version}\", kind \"{kind}\" is not a Wukong (expected apiVersion \"{expected}\", kind \"Wukong\")"
        ));
    }
    serde_path_to_error::deserialize::<_, Wukong>(value).map_err(|error| {
        let path = error.path().to_string();
        let mut message = error.into_inner().to_string();
        // Only where the parse from the text fails at the same field.
        if let Some((at, location)) = location()
            && at == path
        {
            message = format!("{message} at line {} column {}", location.line(), location.column());
        }
        if path == "." { message } else { format!("{path}: {message}") }
    })
}

/// Where the typed parse of a document fails in the text, with the field path:
/// the same parse straight from the text, because a `Value` carries no positions.
fn location(document: &yaml::Document) -> Option<(String, yaml::Location)> {
    let (path, error) = document.parse_with_path::<Wukong>().err()?;
    Some((path, error.location()?))
}

/// Validates a parsed Wukong, naming it in the error.
pub fn check(document: usize, wukong: &Wukong) -> Result<ValidWukong, DocumentError> {
    validate(wukong).map_err(|problems| DocumentError {
        document,
        wukong: Some(format!(
            "{}/{}",
            wukong.metadata.namespace.as_deref().unwrap_or(crate::validate::DEFAULT_NAMESPACE),
            wukong.metadata.name.as_deref().unwrap_or_default()
        )),
        problems: problems.0.iter().map(ToString::to_string).collect(),
    })
}

/// Notes for the user about what offline rendering cannot know (passwords,
/// and pool addresses not given with `--address`, named in `given`).
pub fn offline_notes(wukong: &ValidWukong, given: &BTreeMap<String, LeasedAddress>) -> Vec<String> {
    let mut notes = pool_notes(wukong, given);
    notes.extend(password_notes(wukong));
    notes
}

fn pool_notes(wukong: &ValidWukong, given: &BTreeMap<String, LeasedAddress>) -> Vec<String> {
    let networks = wukong.spec.networks.iter().enumerate();
    networks
        .filter_map(|(index, network)| {
            let config = network.ip_config.as_ref().filter(|config| config.mode == IpMode::Pool)?;
            if given.contains_key(&network.name) {
                return None;
            }
            Some(format!(
                "Wukong {}/{}: spec.networks[{index}] (\"{}\"): the address is allocated at run time from IPPool \"{}\"; the rendered network data has none (--address {}=ADDRESS/PREFIX renders one for review)",
                wukong.namespace,
                wukong.name,
                network.name,
                config.pool.as_deref().unwrap_or_default(),
                network.name
            ))
        })
        .collect()
}

/// Parses `--address NETWORK=ADDRESS/PREFIX` values.
pub fn parse_addresses(values: &[String]) -> Result<BTreeMap<String, LeasedAddress>, String> {
    let mut addresses = BTreeMap::new();
    for value in values {
        let parsed = value.split_once('=').and_then(|(network, cidr)| Some((network, cidr.parse::<ipnet::IpNet>().ok()?)));
        let Some((network, cidr)) = parsed else {
            return Err(format!("failed to read --address \"{value}\": expected NETWORK=ADDRESS/PREFIX like \"mgmt=192.168.100.10/24\""));
        };
        let leased = LeasedAddress { address: cidr.addr(), prefix_len: cidr.prefix_len(), gateway: None, dns: Vec::new() };
        addresses.insert(network.to_string(), leased);
    }
    Ok(addresses)
}

fn password_notes(wukong: &ValidWukong) -> Vec<String> {
    let users = wukong.spec.cloud_init.iter().flat_map(|cloud_init| cloud_init.users.iter());
    users
        .enumerate()
        .filter_map(|(index, user)| {
            user.password_secret_ref.as_ref().map(|reference| {
                format!(
                    "Wukong {}/{}: spec.cloudInit.users[{index}].passwordSecretRef: the password is read from Secret \"{}\" key \"{}\" by the operator; the rendered cloud-init keeps the user's password locked",
                    wukong.namespace, wukong.name, reference.name, reference.key
                )
            })
        })
        .collect()
}

/// Renders every Wukong of the input to multi-document YAML, or returns every problem.
pub fn render(input: &str) -> Result<String, Vec<DocumentError>> {
    let wukongs = parse_documents(input)?;
    let mut errors = Vec::new();
    let mut output = String::new();
    for (index, wukong) in wukongs.iter().enumerate() {
        match check(index + 1, wukong) {
            Ok(valid) => output.push_str(&children_yaml(&valid)),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() { Ok(output) } else { Err(errors) }
}

/// The children of a valid Wukong as YAML documents in apply order, each
/// starting with `---`: every registered kind, built from the Wukong's plan.
/// Offline no password is known, so users' passwords stay locked.
pub fn children_yaml(wukong: &ValidWukong) -> String {
    children_yaml_with(wukong, &BTreeMap::new())
}

/// [`children_yaml`] with pool addresses given for review (`--address`).
pub fn children_yaml_with(wukong: &ValidWukong, addresses: &BTreeMap<String, LeasedAddress>) -> String {
    let plan = plan(wukong);
    let inputs = BuildInputs { addresses: addresses.clone(), ..BuildInputs::default() };
    let mut render = Render { wukong, plan: &plan, inputs, output: String::new() };
    for_each_kind(&mut render);
    render.output
}

/// Appends each kind's built objects as YAML documents.
struct Render<'a> {
    wukong: &'a ValidWukong,
    plan: &'a crate::children::Plan,
    inputs: BuildInputs,
    output: String,
}

impl EachKind for Render<'_> {
    fn kind<K: ChildKind>(&mut self) {
        for object in K::build(self.wukong, self.plan, &self.inputs) {
            self.output.push_str(&format!("---\n{}", object.to_yaml()));
        }
    }
}

/// Serialises any child to YAML.
trait ErasedSerialize {
    fn to_yaml(&self) -> String;
}

impl<T: Serialize> ErasedSerialize for T {
    fn to_yaml(&self) -> String {
        // Serialising these typed objects (strings, numbers, maps with string keys) cannot fail.
        yaml::to_string(self).unwrap_or_default()
    }
}
