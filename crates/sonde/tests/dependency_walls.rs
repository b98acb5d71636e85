//! The walls between Sonde's crates, read from `cargo metadata`: dependencies point
//! down, so that a crate at the bottom can be used (and built) without the ones above.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Each workspace crate and the workspace crates it depends on to build (normal and
/// build dependencies, optional ones included: a feature may turn them on).
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    dependencies_where(|_| true)
}

/// Like [`workspace_dependencies`], keeping only the dependencies `keep` accepts (it
/// sees each dependency's entry in `cargo metadata`).
fn dependencies_where(keep: impl Fn(&Value) -> bool) -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let ours: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .filter(|d| keep(d))
                .filter_map(|d| d["name"].as_str())
                .filter(|name| ours.contains(*name))
                .map(str::to_owned)
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

fn depends_on(krate: &str) -> BTreeSet<String> {
    workspace_dependencies()
        .remove(krate)
        .unwrap_or_else(|| panic!("{krate} is not in the workspace"))
}

#[test]
fn the_model_depends_on_no_crate_of_ours() {
    assert_eq!(depends_on("sonde-model"), BTreeSet::new());
}

#[test]
fn the_otlp_mapping_and_exporter_depend_on_the_model_alone() {
    // The sink interface is the model's: exporting spans pulls in no store and no SQLite.
    assert_eq!(
        depends_on("sonde-otlp"),
        BTreeSet::from(["sonde-model".to_owned()])
    );
}

#[test]
fn pricing_depends_on_the_model_alone() {
    assert_eq!(
        depends_on("sonde-pricing"),
        BTreeSet::from(["sonde-model".to_owned()])
    );
}

#[test]
fn the_lash_reader_depends_on_the_model_alone() {
    // A source: lash traces in, records out; the CLI hands them to the writer.
    assert_eq!(
        depends_on("sonde-lash"),
        BTreeSet::from(["sonde-model".to_owned()])
    );
}

#[test]
fn the_proxy_logic_depends_on_the_model_alone() {
    // Routes, parsing and the recorded call: no server, no store, no HTTP client.
    assert_eq!(
        depends_on("sonde-proxy"),
        BTreeSet::from(["sonde-model".to_owned()])
    );
}

#[test]
fn the_store_depends_on_the_model_alone() {
    // Prices are the caller's (a `CallPricer` given at open time): storing and querying
    // traces pulls in no price table.
    assert_eq!(
        depends_on("sonde-store"),
        BTreeSet::from(["sonde-model".to_owned()])
    );
}

/// Sources make records (the tracer, the transcript sync); sinks keep or ship them (the
/// store, OTLP export, Langfuse). A source builds on the model alone: a sink it can
/// write to directly is an optional feature (the store, for seed 000's tracer over an
/// embedded store and for a sync that keeps its cursors in the store); every other
/// sink reaches a source through the model's `TraceSink`.
#[test]
fn no_source_depends_on_a_sink_but_through_a_feature() {
    let required = dependencies_where(|d| d["optional"].as_bool() != Some(true));
    let all = workspace_dependencies();
    for source in ["sonde-tracer", "sonde-sync"] {
        assert_eq!(
            required[source],
            BTreeSet::from(["sonde-model".to_owned()]),
            "{source} without its features"
        );
        assert_eq!(
            all[source],
            BTreeSet::from(["sonde-model".to_owned(), "sonde-store".to_owned()]),
            "{source} with every feature"
        );
    }
}

#[test]
fn sinks_depend_on_no_source() {
    let all = workspace_dependencies();
    for sink in ["sonde-store", "sonde-otlp", "sonde-langfuse"] {
        for source in ["sonde-tracer", "sonde-sync", "sonde-lash"] {
            assert!(!all[sink].contains(source), "{sink} depends on {source}");
        }
    }
}

/// SQL belongs to the store: the CLI asks the store (and `sonde::schema`) and holds
/// none. The only SQL in its sources is the user's own, in `sonde query`'s examples.
#[test]
fn the_cli_holds_no_sql() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sonde-cli/src");
    let statements = [
        "SELECT ",
        "INSERT INTO",
        "DELETE FROM",
        "CREATE TABLE",
        "UPDATE ",
    ];
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let sql = statements.iter().any(|s| line.contains(s));
            let example = line.contains("sonde query") || line.contains("One SELECT");
            if sql && !example {
                found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "SQL in the CLI:\n{}", found.join("\n"));
}
