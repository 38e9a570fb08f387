//! The resolve step: what the caches do not hold and must be read with a GET.
//!
//! In: the client and the Wukong. Out: [`Resolved`]: the value of every
//! password Secret its users reference (the operator caches only its own
//! Secrets). Fails only on API errors: a missing Secret or key is a fact the
//! validate step turns into a refusal.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::api::Wukong;

/// Errors of the resolve step.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Reading a password Secret failed for a reason other than its absence.
    #[error("failed to read Secret \"{namespace}/{name}\": {source}")]
    ReadSecret {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// What a password reference resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordLookup {
    /// The value of the key.
    Found(String),
    /// The Secret does not exist.
    SecretMissing,
    /// The Secret exists but has no such key.
    KeyMissing,
}

/// Everything read with GETs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Passwords by user index.
    pub passwords: BTreeMap<usize, PasswordLookup>,
}

/// Reads the password Secrets the Wukong's users reference.
pub async fn resolve(client: &Client, wukong: &Wukong) -> Result<Resolved, ResolveError> {
    let namespace = wukong.metadata.namespace.clone().unwrap_or_default();
    let mut resolved = Resolved::default();
    let users = wukong.spec.cloud_init.iter().flat_map(|cloud_init| cloud_init.users.iter());
    for (index, user) in users.enumerate() {
        if let Some(reference) = &user.password_secret_ref {
            let lookup = read_password(client, &namespace, &reference.name, &reference.key).await?;
            resolved.passwords.insert(index, lookup);
        }
    }
    Ok(resolved)
}

async fn read_password(client: &Client, namespace: &str, name: &str, key: &str) -> Result<PasswordLookup, ResolveError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api.get_opt(name).await.map_err(|source| ResolveError::ReadSecret {
        namespace: namespace.to_string(),
        name: name.to_string(),
        source,
    })?;
    let Some(secret) = secret else {
        return Ok(PasswordLookup::SecretMissing);
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).trim_end_matches('\n').to_string());
    Ok(value.map_or(PasswordLookup::KeyMissing, PasswordLookup::Found))
}
