//! Keeping data for as long as wanted: whole sessions whose last record is older than a
//! limit are deleted, one session per transaction, so that ingest never waits long
//! behind a prune; each deletion takes the session's calls out of the roll-ups, so the
//! analytics stay equal to what is stored. A store partitioned by time (PostgreSQL)
//! first drops whole the partitions that only expired sessions use
//! ([`RecordStore::drop_expired_partitions`](crate::store::RecordStore::drop_expired_partitions)),
//! with the sessions that lay wholly in them; what is left goes one session at a time.

use serde::Serialize;

use crate::Timestamp;
use crate::store::{ReadError, Scope, SessionFilter, TraceStore};

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Sessions deleted.
    pub sessions: u64,
    /// Their events (LLM calls, tool calls, ...).
    pub events: u64,
    /// Their LLM calls.
    pub llm_calls: u64,
    /// Time partitions dropped whole (PostgreSQL; their sessions are counted above).
    pub partitions: u64,
}

/// Deletes every session of `scope` whose last record is older than `cutoff`; a session
/// that started before it and is still active after it is kept whole.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = sonde::open("sqlite::memory:").await?;
/// let tracer = sonde::SessionTracer::new(store.clone())?;
/// sonde::demo::record(&tracer).await?;
/// let an_hour_ago = sonde::Timestamp::from_micros(sonde::Timestamp::now().as_micros() - 3_600_000_000);
/// let kept = sonde::retention::prune(store.as_ref(), &sonde::store::Scope::All, an_hour_ago).await?;
/// assert_eq!(kept.sessions, 0, "the demo session is recent");
/// let pruned = sonde::retention::prune(store.as_ref(), &sonde::store::Scope::All, sonde::Timestamp::now()).await?;
/// assert_eq!(pruned.sessions, 1);
/// # Ok(()) }
/// ```
pub async fn prune(
    store: &dyn TraceStore,
    scope: &Scope,
    cutoff: Timestamp,
) -> Result<Pruned, ReadError> {
    let mut pruned = Pruned::default();
    // Partitions hold every tenant's records: only a prune of all of them drops any.
    if *scope == Scope::All {
        let dropped = store.drop_expired_partitions(cutoff).await?;
        pruned.partitions = dropped.partitions;
        pruned.sessions = dropped.sessions;
        pruned.events = dropped.events;
        pruned.llm_calls = dropped.llm_calls;
    }
    let mut filter = SessionFilter {
        scope: scope.clone(),
        until: Some(cutoff),
        limit: SessionFilter::MAX_LIMIT,
        ..SessionFilter::default()
    };
    loop {
        let page = store.list_sessions(&filter).await?;
        for session in page.sessions.iter().filter(|s| s.last_at < cutoff) {
            // The session's own tenant, so that another tenant's session of the same id
            // (which may be recent) is kept.
            let own = match (&session.org, &session.workspace) {
                (Some(org), Some(workspace)) => Scope::tenant(org, workspace),
                _ => scope.clone(),
            };
            if store.delete_session(&session.session_id, &own).await? {
                pruned.sessions += 1;
                pruned.events += session.events;
                pruned.llm_calls += session.llm_calls;
            }
        }
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => return Ok(pruned),
        }
    }
}
