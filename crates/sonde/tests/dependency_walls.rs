//! The walls between Sonde's crates, read from `cargo metadata`: dependencies point
//! down, so that a crate at the bottom can be used (and built) without the ones above.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Each workspace crate and the workspace crates it depends on to build (normal and
/// build dependencies, optional ones included: a feature may turn them on).
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
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
fn the_store_depends_on_the_model_alone() {
    // Prices are the caller's (a `CallPricer` given at open time): storing and querying
    // traces pulls in no price table.
    assert_eq!(
        depends_on("sonde-store"),
        BTreeSet::from(["sonde-model".to_owned()])
    );
}
