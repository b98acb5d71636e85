//! SQLite keeps payloads compressed — a session's payloads of one write together, in
//! blocks — and records and SQL read them back as JSON, through duplicates,
//! replacements and deletions.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use sonde_model::*;
use sonde_store::{RecordStore, Scope, SqlQuery, SqliteStore};

fn tool_call(session: &str, id: &str, tool: &str, output: &str) -> Record {
    Record {
        id: id.into(),
        timestamp: Timestamp::from_micros(1_772_409_600_000_000),
        context: Context::session(session),
        body: Body::Event(Event::Runtime(RuntimeAction {
            tool_name: Some(tool.into()),
            result: (!output.is_empty()).then(|| json!(output)),
            ..Default::default()
        })),
    }
}

/// Each stored payload's storage class, length and tool name, as SQL reads them.
async fn stored(store: &SqliteStore) -> Vec<(String, i64, String)> {
    store
        .query(
            "SELECT typeof(payload), length(payload),
                    json_extract(sonde_payload(payload), '$.tool_name') AS tool
             FROM events ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_i64().unwrap(),
                r[2].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn blocks(store: &SqliteStore) -> Vec<(String, i64)> {
    store
        .query(
            "SELECT session_id, live FROM payload_blocks ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_i64().unwrap()))
        .collect()
}

async fn records(store: &SqliteStore, session: &str) -> Vec<Record> {
    let mut records = store
        .get_session(session, &Scope::All)
        .await
        .unwrap()
        .map(|s| s.to_records())
        .unwrap_or_default();
    records.retain(|r| r.kind() == "runtime_event");
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_payloads_share_a_compressed_block_and_read_back_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("p.db")).await.unwrap();
    let output = "     1→fn main() {}\n".repeat(500);
    let together = vec![
        tool_call("s", "a1", "Read", &output),
        tool_call("s", "a2", "Ls", ""),
        tool_call("s", "a3", "Grep", &output.replace("main", "test")),
    ];
    let alone_large = tool_call("t", "b1", "Read", &output);
    let alone_small = tool_call("u", "c1", "Ls", "");
    store.write(&together).await.unwrap();
    store
        .write(std::slice::from_ref(&alone_large))
        .await
        .unwrap();
    store
        .write(std::slice::from_ref(&alone_small))
        .await
        .unwrap();

    // One block for the session written together; 20-byte references point into it.
    assert_eq!(blocks(&store).await, vec![("s".to_owned(), 3)]);
    let rows = stored(&store).await;
    let refs: Vec<_> = rows[..3].iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(refs, vec![("blob", 20); 3]);
    assert_eq!(
        rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(),
        ["Read", "Ls", "Grep", "Read", "Ls"]
    );
    // Alone, a large payload is its own frame and a small one stays text.
    assert_eq!(rows[3].0, "blob");
    assert!(rows[3].1 < (output.len() / 4) as i64, "{rows:?}");
    assert_eq!(rows[4].0, "text");
    let block_bytes = store
        .query("SELECT length(data) FROM payload_blocks", &[])
        .await
        .unwrap()
        .rows[0][0]
        .as_i64()
        .unwrap();
    assert!(
        block_bytes < rows[3].1 * 2,
        "two similar outputs compress as one"
    );

    assert_eq!(records(&store, "s").await, together);
    assert_eq!(records(&store, "t").await, vec![alone_large]);
    assert_eq!(records(&store, "u").await, vec![alone_small]);
    // The whole payload through SQL, from the block.
    let whole = store
        .query(
            "SELECT sonde_payload(payload) FROM events WHERE id = 'a3'",
            &[],
        )
        .await
        .unwrap();
    let whole: Value = serde_json::from_str(whole.rows[0][0].as_str().unwrap()).unwrap();
    assert_eq!(whole["result"], json!(output.replace("main", "test")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_go_when_their_last_row_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("p.db")).await.unwrap();
    let output = "cargo test: 1 passed; 0 failed\n".repeat(60);
    let first: Vec<Record> = (0..4)
        .map(|i| tool_call("s", &format!("a{i}"), "Bash", &output))
        .collect();
    store.write(&first).await.unwrap();
    assert_eq!(blocks(&store).await, vec![("s".to_owned(), 4)]);

    // Written again: all duplicates, so the new block is not kept.
    let again = store.write(&first).await.unwrap();
    assert_eq!(again.duplicates, 4);
    assert_eq!(blocks(&store).await, vec![("s".to_owned(), 4)]);
    // Two old and two new: the new block counts the two it holds.
    let mut mixed = first[2..].to_vec();
    mixed.extend((4..6).map(|i| tool_call("s", &format!("a{i}"), "Bash", &output)));
    store.write(&mixed).await.unwrap();
    assert_eq!(
        blocks(&store).await,
        vec![("s".to_owned(), 4), ("s".to_owned(), 2)]
    );

    // Replacing two rows of the first block takes them out of its count, and their new
    // versions into a block of their own.
    let replaced: Vec<Record> = (0..2)
        .map(|i| tool_call("s", &format!("a{i}"), "Edit", &output))
        .collect();
    store.replace(&replaced).await.unwrap();
    assert_eq!(
        blocks(&store).await,
        vec![
            ("s".to_owned(), 2),
            ("s".to_owned(), 2),
            ("s".to_owned(), 2)
        ]
    );
    let tools: Vec<String> = stored(&store).await.into_iter().map(|r| r.2).collect();
    assert_eq!(tools, ["Edit", "Edit", "Bash", "Bash", "Bash", "Bash"]);
    // Replacing the other two: the first block has no row left and goes.
    let replaced: Vec<Record> = (2..4)
        .map(|i| tool_call("s", &format!("a{i}"), "Write", &output))
        .collect();
    store.replace(&replaced).await.unwrap();
    assert_eq!(blocks(&store).await.len(), 3);
    assert!(blocks(&store).await.iter().all(|b| b.1 == 2));
    let tools: Vec<String> = stored(&store).await.into_iter().map(|r| r.2).collect();
    assert_eq!(tools, ["Edit", "Edit", "Write", "Write", "Bash", "Bash"]);

    // Another session's block stays when this one is deleted.
    store
        .write(&[
            tool_call("t", "t1", "Bash", &output),
            tool_call("t", "t2", "Bash", &output),
        ])
        .await
        .unwrap();
    assert!(store.delete_session("s", &Scope::All).await.unwrap());
    assert_eq!(blocks(&store).await, vec![("t".to_owned(), 2)]);
    assert_eq!(records(&store, "t").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_in_memory_compresses_payloads_one_by_one() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let output = "     1→fn main() {}\n".repeat(500);
    let together = vec![
        tool_call("s", "a1", "Read", &output),
        tool_call("s", "a2", "Read", &output),
    ];
    store.write(&together).await.unwrap();
    assert!(blocks(&store).await.is_empty());
    assert_eq!(records(&store, "s").await, together);
    let rows = stored(&store).await;
    assert!(rows.iter().all(|r| r.0 == "blob" && r.1 > 20), "{rows:?}");
}
