//! One spool folder, several writers: two `sonde import` runs into one SQLite database
//! at once each keep their own spool lane, store everything and exit 0.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;

const RECORDS: usize = 100_000;

fn sonde(db: &str, spool: &Path) -> Command {
    let mut c = common::sonde_on(db);
    c.env("SONDE_SPOOL", spool);
    c
}

fn count(db: &str, spool: &Path) -> u64 {
    let out = sonde(db, spool)
        .args([
            "query",
            "SELECT count(DISTINCT id) AS n FROM events",
            "--json",
        ])
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    rows[0]["n"].as_u64().unwrap()
}

#[test]
fn two_imports_at_once_into_one_database_store_everything_and_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let spool = dir.path().join("spool");
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    common::write_llm_records(&a, "a", "a", RECORDS);
    common::write_llm_records(&b, "b", "b", RECORDS);
    // A small queue makes both spool much of what they read, into the same folder.
    let import = |input: &Path| {
        sonde(&db, &spool)
            .args([
                "import",
                "--queue-capacity",
                "2000",
                input.to_str().unwrap(),
            ])
            .spawn()
            .unwrap()
    };
    let (mut one, mut two) = (import(&a), import(&b));
    let (one, two) = (one.wait().unwrap(), two.wait().unwrap());
    let stored = count(&db, &spool);
    assert_eq!(stored, 2 * RECORDS as u64, "stored {stored}");
    assert!(one.success() && two.success(), "{one:?} {two:?}");
}
