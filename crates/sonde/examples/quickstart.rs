//! The demo session ([`sonde::demo::record`]: two timesteps, LLM calls with tokens and
//! cost, a tool call, messages both ways, an outcome reward and an event reward),
//! written through a tracer with a store and a sink: to a SQLite database and to a
//! JSONL file beside it. `sonde demo` records the same session.
//!
//! ```text
//! cargo run --example quickstart -- sqlite:///tmp/q.db
//! sonde --db sqlite:///tmp/q.db sessions
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use sonde::store::StoreUrl;
use sonde::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            std::env::temp_dir().join("sonde-quickstart.db").display()
        )
    });
    let store_url = StoreUrl::parse(&url)?;
    let jsonl = match &store_url {
        StoreUrl::Sqlite(path) => path.with_extension("jsonl"),
        _ => std::env::temp_dir().join("sonde-quickstart.jsonl"),
    };
    let tracer = SessionTracer::builder()
        .store(store_url.open_with(Some(sonde::shipped_prices())).await?)
        .sink(Arc::new(JsonlSink::create(&jsonl)?))
        .build()?;

    let trace = sonde::demo::record(&tracer).await?;
    let session_id = &trace.session_id;

    println!(
        "session {session_id}: {} steps, {} events, {} messages",
        trace.steps.len(),
        trace.events.len(),
        trace.messages.len()
    );
    println!("stored in {url}");
    println!("records in {}", jsonl.display());
    println!("see it with: sonde --db {url} show {session_id}");
    Ok(())
}
