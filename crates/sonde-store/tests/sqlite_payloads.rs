//! SQLite keeps large payloads compressed; records and SQL read them as JSON.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use sonde_model::*;
use sonde_store::{Scope, StoreUrl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_are_compressed_and_read_back_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreUrl::parse(&format!("sqlite://{}/p.db", dir.path().display()))
        .unwrap()
        .open()
        .await
        .unwrap();
    let output = "     1→fn main() {}\n".repeat(500);
    let big = Record::new(
        Context::session("s"),
        Body::Event(Event::Runtime(RuntimeAction {
            tool_name: Some("Read".into()),
            result: Some(json!(output)),
            ..Default::default()
        })),
    );
    let small = Record::new(
        Context::session("s"),
        Body::Event(Event::Runtime(RuntimeAction {
            tool_name: Some("Ls".into()),
            ..Default::default()
        })),
    );
    store.write(&[big.clone(), small.clone()]).await.unwrap();
    let session = store.get_session("s", &Scope::All).await.unwrap().unwrap();
    assert_eq!(session.to_records().len(), 2);
    assert!(session.to_records().contains(&big));
    let rows = store
        .query(
            "SELECT typeof(payload) AS t, length(payload) AS stored,
                    json_extract(sonde_payload(payload), '$.tool_name') AS tool
             FROM events ORDER BY tool",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.rows[0][2], "Ls");
    assert_eq!(rows.rows[0][0], "text");
    assert_eq!(rows.rows[1][2], "Read");
    assert_eq!(rows.rows[1][0], "blob");
    assert!(rows.rows[1][1].as_i64().unwrap() < (output.len() / 4) as i64);
}
