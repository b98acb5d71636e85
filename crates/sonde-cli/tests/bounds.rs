//! What `sonde import` reads is bounded: a line longer than 64 MiB (a file with no
//! newlines, say) is skipped and named by its line, never held whole; the other lines
//! are imported.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;

fn started(id: &str) -> String {
    format!(
        r#"{{"schema_version":1,"id":"{id}","timestamp":"2026-01-01T00:00:00Z","context":{{"session_id":"s-{id}"}},"kind":"session_started","payload":{{}}}}"#
    )
}

#[test]
fn a_line_over_the_bound_is_named_and_skipped_and_the_others_are_imported() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    writeln!(file, "{}", started("a")).unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..(sonde::sync::MAX_LINE_BYTES / chunk.len() + 1) {
        file.write_all(&chunk).unwrap();
    }
    writeln!(file).unwrap();
    writeln!(file, "{}", started("b")).unwrap();
    drop(file);
    let db = format!("sqlite://{}", dir.path().join("t.db").display());

    let out = common::sonde_on(&db)
        .args(["import", input.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}:2: a line longer than 64 MiB was skipped",
            input.display()
        )),
        "{err}"
    );
    let count = common::sonde_on(&db)
        .args(["query", "SELECT count(*) AS n FROM sessions", "--json"])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&count.stdout).unwrap();
    assert_eq!(rows[0]["n"], 2);
}
