//! Name grammars: DNS labels and subdomains, label keys and values.
//!
//! In: strings. Out: whether they follow the Kubernetes grammar.

/// An RFC 1123 label: at most 63 lowercase letters, digits and '-', starting and
/// ending with a letter or digit.
pub fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// An RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(value: &str) -> bool {
    !value.is_empty() && value.len() <= 253 && value.split('.').all(is_dns_label)
}

/// The name part of a qualified name (label keys, label values): at most 63
/// alphanumerics, '-', '_' or '.', starting and ending alphanumeric.
pub fn is_qualified_name_part(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
        && value.bytes().next().is_some_and(|byte| byte.is_ascii_alphanumeric())
        && value.bytes().last().is_some_and(|byte| byte.is_ascii_alphanumeric())
}

/// A label key: an optional DNS subdomain prefix and '/', then a name part.
pub fn is_label_key(value: &str) -> bool {
    match value.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(value),
    }
}

/// A label value: empty, or a name part.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_qualified_name_part(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(is_dns_label("web-server-01"));
        assert!(!is_dns_label("Web"));
        assert!(!is_dns_label("-web"));
        assert!(!is_dns_label("web-"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_label(&"a".repeat(63)));
        assert!(is_dns_subdomain("data.pvc-1"));
        assert!(!is_dns_subdomain("data..pvc"));
        assert!(is_label_key("node-role/vm"));
        assert!(is_label_key("kubernetes.io/hostname"));
        assert!(!is_label_key("/vm"));
        assert!(!is_label_key("a/b/c"));
        assert!(is_label_value(""));
        assert!(is_label_value("true"));
        assert!(!is_label_value("has space"));
    }
}
