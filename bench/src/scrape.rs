//! Reading the operator's `/metrics`.
//!
//! In: an `http://host:port/path` URL. Out: the request counters by verb and
//! kind and the resident memory, parsed from the Prometheus text format.

use std::collections::BTreeMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One scrape of the operator's metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// `wukong_kube_requests_total` by (verb, kind).
    pub requests: BTreeMap<(String, String), f64>,
    /// `process_resident_memory_bytes`.
    pub resident_bytes: Option<f64>,
    /// `process_cpu_seconds_total`.
    pub cpu_seconds: Option<f64>,
}

const READ_VERBS: &[&str] = &["get", "list"];

impl Sample {
    /// Reads (get, list; watches left out) since `before`. Writes are counted
    /// in [`crate::writes`].
    pub fn reads_since(&self, before: &Sample) -> f64 {
        self.requests
            .iter()
            .filter(|((verb, _), _)| READ_VERBS.contains(&verb.as_str()))
            // A fold from +0.0: an empty `sum` of floats is -0.0.
            .fold(0.0, |total, (key, value)| total + value - before.requests.get(key).copied().unwrap_or(0.0))
    }
}

/// Parses the Prometheus text format for the series the benchmark uses.
pub fn parse(text: &str) -> Sample {
    let mut sample = Sample::default();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        if series == "process_resident_memory_bytes" {
            sample.resident_bytes = Some(value);
        } else if series == "process_cpu_seconds_total" {
            sample.cpu_seconds = Some(value);
        } else if let Some(labels) = series.strip_prefix("wukong_kube_requests_total{").and_then(|rest| rest.strip_suffix('}')) {
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                    .map(|value| value.trim_end_matches('"').to_string())
            };
            if let (Some(verb), Some(kind)) = (label("verb"), label("kind")) {
                sample.requests.insert((verb, kind), value);
            }
        }
    }
    sample
}

/// Errors of a scrape.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The URL is not `http://host:port/path`.
    #[error("failed to use metrics URL \"{0}\": only http://host:port/path is supported")]
    Url(String),
    /// The request failed.
    #[error("failed to scrape \"{url}\": {source}")]
    Io {
        /// The URL.
        url: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The answer was not 200.
    #[error("failed to scrape \"{url}\": the answer was \"{status}\"")]
    Status {
        /// The URL.
        url: String,
        /// The status line.
        status: String,
    },
}

/// Fetches and parses the metrics at `url`.
pub async fn scrape(url: &str) -> Result<Sample, ScrapeError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| ScrapeError::Url(url.to_string()))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(host, path)| (host, format!("/{path}")));
    let io = |source| ScrapeError::Io { url: url.to_string(), source };
    let mut stream = tokio::net::TcpStream::connect(host).await.map_err(io)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(io)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    if !status.contains(" 200") {
        return Err(ScrapeError::Status { url: url.to_string(), status });
    }
    Ok(parse(body))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_request_counters_and_memory() {
        let text = "# HELP x\nwukong_kube_requests_total{kind=\"virtualmachines\",verb=\"patch\"} 12\n\
                    wukong_kube_requests_total{kind=\"events\",verb=\"create\"} 5\n\
                    wukong_kube_requests_total{kind=\"secrets\",verb=\"get\"} 3\n\
                    process_resident_memory_bytes 4.2e7\nprocess_cpu_seconds_total 1.5\n";
        let sample = parse(text);
        let empty = super::Sample::default();
        assert_eq!(sample.requests.get(&("patch".to_string(), "virtualmachines".to_string())), Some(&12.0));
        assert_eq!(sample.requests.get(&("create".to_string(), "events".to_string())), Some(&5.0));
        assert_eq!(sample.reads_since(&empty), 3.0);
        assert_eq!(sample.resident_bytes, Some(4.2e7));
        assert_eq!(sample.cpu_seconds, Some(1.5));
    }
}
