//! Every event kind (`type` tag) lash-trace has published, the schema versions that
//! wrote it, and the trace level lash emits it at.

/// The newest `TRACE_SCHEMA_VERSION` this reader knows (lash-trace, August 2026).
pub const NEWEST_SCHEMA_VERSION: u32 = 7;

use sonde_model::Level;

/// One published kind: its `type` tag and the first and last schema versions that
/// wrote it.
#[derive(Debug, Clone, Copy)]
pub struct KnownKind {
    /// The `type` tag.
    pub tag: &'static str,
    /// The first `TRACE_SCHEMA_VERSION` that wrote it.
    pub since: u32,
    /// The last `TRACE_SCHEMA_VERSION` that wrote it.
    pub until: u32,
}

const fn kind(tag: &'static str, since: u32, until: u32) -> KnownKind {
    KnownKind { tag, since, until }
}

/// Every kind lash-trace has published, read from its history (schema 1, April 2026,
/// to schema 7, August 2026).
///
/// ```
/// let kinds = sonde_lash::KNOWN_KINDS;
/// assert!(kinds.iter().any(|k| k.tag == "language_execution" && k.since == 7));
/// ```
pub const KNOWN_KINDS: &[KnownKind] = &[
    kind("session_started", 1, 7),
    kind("turn_started", 1, 7),
    kind("prompt_built", 1, 7),
    kind("llm_call_started", 1, 7),
    kind("llm_call_completed", 1, 7),
    kind("llm_call_failed", 1, 7),
    kind("tool_call_started", 1, 7),
    kind("tool_call_completed", 1, 7),
    kind("mode_step", 1, 2),
    kind("token_usage", 1, 7),
    kind("turn_completed", 1, 7),
    kind("custom", 1, 7),
    kind("provider_stream_event", 2, 7),
    kind("runtime_stream_event", 2, 7),
    kind("protocol_step", 2, 7),
    kind("process_tracking", 2, 2),
    kind("lashlang_execution", 2, 6),
    kind("provider_request", 2, 7),
    kind("effect_envelope_diff", 2, 7),
    kind("rolling_history_compaction_needed", 2, 7),
    kind("rolling_history_compaction_started", 2, 7),
    kind("rolling_history_compaction_completed", 2, 7),
    kind("rolling_history_prompt_pruned", 2, 7),
    kind("session_execution_lease.frame_handoff_transferred", 2, 2),
    kind("journaled_effect_started", 3, 7),
    kind("journaled_effect_settled", 3, 7),
    kind("durable_wait_parked", 3, 7),
    kind("durable_wait_resolved", 3, 7),
    kind("durable_timer_started", 3, 7),
    kind("durable_timer_resolved", 3, 7),
    kind("durable_segment_boundary", 3, 7),
    kind("store_error_observed", 3, 7),
    kind("composition_changed", 5, 7),
    kind("provider_replay_dropped", 6, 7),
    kind("language_execution", 7, 7),
];

/// Whether lash has published this kind (in any version).
pub(crate) fn is_known(tag: &str) -> bool {
    KNOWN_KINDS.iter().any(|k| k.tag == tag)
}

/// The level lash emits `tag` at: provider wire bodies, stream events and envelope
/// diffs only when the host turned on lash's extended tracing; the rest always.
pub(crate) fn level_of(tag: &str) -> Level {
    match tag {
        "provider_request"
        | "provider_stream_event"
        | "runtime_stream_event"
        | "effect_envelope_diff" => Level::Extended,
        _ => Level::Standard,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_spans_published_versions() {
        for k in KNOWN_KINDS {
            assert!(1 <= k.since && k.since <= k.until, "{}", k.tag);
            assert!(k.until <= NEWEST_SCHEMA_VERSION, "{}", k.tag);
        }
        let mut tags: Vec<_> = KNOWN_KINDS.iter().map(|k| k.tag).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), KNOWN_KINDS.len(), "a kind is listed twice");
    }

    #[test]
    fn schema_seven_has_the_thirty_one_kinds_lash_pins() {
        // lash-trace's tests/schema.rs covers every TraceEvent variant of schema 7: 31.
        let seven = KNOWN_KINDS.iter().filter(|k| k.until == 7).count();
        assert_eq!(seven, 31);
    }
}
