//! Validation of `spec.cloudInit`.
//!
//! In: the cloud-init section. Out: problems for user names, SSH keys, password
//! references and user data that cannot be merged with the declared users.

use std::collections::BTreeSet;

use super::Collector;
use super::names::is_dns_subdomain;
use crate::api::CloudInit;

/// Key types an `authorized_keys` line may start with.
const KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-ed25519",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

pub(crate) fn check(collector: &mut Collector, cloud_init: &CloudInit) {
    let mut names = BTreeSet::new();
    for (index, user) in cloud_init.users.iter().enumerate() {
        let path = format!("spec.cloudInit.users[{index}]");
        let valid_name = !user.name.is_empty()
            && user.name.len() <= 32
            && user.name.bytes().next().is_some_and(|byte| byte.is_ascii_lowercase() || byte == b'_')
            && user.name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-');
        if !valid_name {
            collector.push(
                format!("{path}.name"),
                format!("\"{}\" is not a Linux user name (lowercase letters, digits, '_' and '-', at most 32)", user.name),
            );
        } else if !names.insert(user.name.as_str()) {
            collector.push(format!("{path}.name"), format!("\"{}\" is declared twice", user.name));
        }
        for (key_index, key) in user.ssh_authorized_keys.iter().enumerate() {
            if let Err(message) = check_key(key) {
                collector.push(format!("{path}.sshAuthorizedKeys[{key_index}]"), message);
            }
        }
        if let Some(reference) = &user.password_secret_ref {
            if !is_dns_subdomain(&reference.name) {
                collector.push(format!("{path}.passwordSecretRef.name"), format!("\"{}\" is not a valid Secret name", reference.name));
            }
            if reference.key.is_empty() || !reference.key.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte)) {
                collector.push(format!("{path}.passwordSecretRef.key"), format!("\"{}\" is not a valid Secret key", reference.key));
            }
        }
    }
    if let Some(user_data) = &cloud_init.user_data {
        check_user_data(collector, user_data, !cloud_init.users.is_empty());
    }
}

fn check_key(key: &str) -> Result<(), String> {
    let shown: String = key.chars().take(24).collect();
    if key.contains(['\n', '\r']) {
        return Err(format!("\"{shown}...\" spans several lines; give one key per entry"));
    }
    let mut fields = key.split_whitespace();
    let kind = fields.next().unwrap_or_default();
    let body = fields.next().unwrap_or_default();
    if !KEY_TYPES.contains(&kind) || body.is_empty() {
        return Err(format!("\"{shown}\" is not an OpenSSH public key (\"ssh-ed25519 AAAA... comment\")"));
    }
    Ok(())
}

fn check_user_data(collector: &mut Collector, user_data: &str, has_users: bool) {
    let field = "spec.cloudInit.userData";
    if user_data.starts_with("#cloud-config") {
        match crate::yaml::from_str::<crate::yaml::Value>(user_data) {
            Ok(crate::yaml::Value::Mapping(mapping)) => {
                if let Some(users) = mapping.get("users")
                    && !users.is_sequence()
                {
                    collector.push(field, "its \"users\" must be a list to merge spec.cloudInit.users into it");
                }
            }
            Ok(crate::yaml::Value::Null) => {}
            Ok(_) => collector.push(field, "a #cloud-config document must be a YAML mapping"),
            Err(error) => collector.push(field, format!("is not valid YAML: {error}")),
        }
    } else if has_users {
        // User data may hold secrets: name only its kind, never quote it (this text reaches Events and status).
        let kind = if user_data.starts_with("#!") {
            "a script"
        } else if user_data.starts_with("Content-Type") {
            "MIME multipart"
        } else {
            "not #cloud-config"
        };
        collector.push(field, format!("users can only be merged into a #cloud-config document; this one is {kind}"));
    }
}
