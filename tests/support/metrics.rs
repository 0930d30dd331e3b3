//! `/metrics` as a scraper reads it: linted by `promtool check metrics` (Debian's `prometheus`
//! package, Prometheus's own parser) and parsed by the official Python client's parser
//! (`prometheus_client.parser`, pinned by `.ci/run`).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde::Deserialize;

/// One sample as the parser reads it.
#[derive(Debug, Deserialize)]
struct Sample {
    /// The family's type: counter, gauge, histogram…
    kind: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One scrape: the text, linted by promtool, and its samples.
pub struct Metrics {
    pub text: String,
    samples: Vec<Sample>,
}

/// Reads the text with `prometheus_client.parser` and prints each sample as JSON.
const PARSE: &str = "import json, sys
from prometheus_client.parser import text_string_to_metric_families
print(json.dumps([
    {'kind': f.type, 'name': s.name, 'labels': s.labels, 'value': s.value}
    for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples
]))";

impl Metrics {
    pub async fn scrape(client: &reqwest::Client, url: &str) -> Metrics {
        let response = client.get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4"),
        );
        let text = response.text().await.unwrap();
        promtool_accepts(&text);
        let parsed = run_with_stdin(Command::new("python3").args(["-c", PARSE]), &text);
        let samples = serde_json::from_slice(&parsed).expect("the parser's JSON");
        Metrics { text, samples }
    }

    /// The value of `name` with exactly `labels` (0 when there is no such series).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|sample| sample.name == name && sample.labels == wanted)
            .map(|sample| sample.value)
            .unwrap_or(0.0)
    }

    /// How many observations the histogram `name` holds (its `_count`), after checking that
    /// it is a histogram with buckets, not a summary.
    pub fn observations(&self, name: &str) -> f64 {
        let buckets = self
            .samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket") && s.kind == "histogram")
            .count();
        assert!(
            buckets > 1,
            "{name} is a histogram with buckets:\n{}",
            self.text
        );
        self.value(&format!("{name}_count"), &[])
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// Runs `command` with `input` on its stdin; its stdout, once it succeeded.
fn run_with_stdin(command: &mut Command, input: &str) -> Vec<u8> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} runs (.ci/run installs it): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}{}\n{input}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// `promtool check metrics` reads the text from stdin and fails on what Prometheus would
/// refuse or its linter flags.
fn promtool_accepts(text: &str) {
    run_with_stdin(Command::new("promtool").args(["check", "metrics"]), text);
}
