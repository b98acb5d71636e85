//! Records as rows: what is written for each record, and how rows become records again.

use rusqlite::types::Value as Sql;
use sonde_model::{Body, Context, Event, Record, Timestamp};

use crate::ReadError;

/// The table a record kind lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    Lifecycle,
    Events,
    Messages,
    OutcomeRewards,
    EventRewards,
}

impl Table {
    pub(super) const ALL: [Table; 5] = [
        Table::Lifecycle,
        Table::Events,
        Table::Messages,
        Table::OutcomeRewards,
        Table::EventRewards,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Table::Lifecycle => "lifecycle",
            Table::Events => "events",
            Table::Messages => "messages",
            Table::OutcomeRewards => "outcome_rewards",
            Table::EventRewards => "event_rewards",
        }
    }

    /// The table's own columns after the shared ones.
    fn extra_columns(self) -> &'static [&'static str] {
        match self {
            Table::Lifecycle => &[],
            Table::Events => &[
                "event_type",
                "status",
                "provider",
                "model",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
                "reasoning_tokens",
                "total_tokens",
                "cost_usd",
                "latency_ms",
                "ttft_ms",
                "response_status",
                "request_path",
                "api_key_hash",
                "gateway_key_id",
                "tool_name",
            ],
            Table::Messages => &["message_type", "from_role", "to_role"],
            Table::OutcomeRewards => &["objective_key", "total_reward"],
            Table::EventRewards => &["event_id", "value"],
        }
    }

    /// `INSERT OR IGNORE INTO table (...) VALUES (?1, ...)`.
    pub(super) fn insert_sql(self) -> String {
        let columns: Vec<&str> = SHARED_COLUMNS
            .iter()
            .chain(self.extra_columns())
            .copied()
            .collect();
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT OR IGNORE INTO {} ({}) VALUES ({})",
            self.name(),
            columns.join(", "),
            placeholders.join(", ")
        )
    }

    /// Selects the shared columns of one session's rows.
    pub(super) fn select_session_sql(self) -> String {
        format!(
            "SELECT {} FROM {} WHERE session_id = ?1",
            SHARED_COLUMNS.join(", "),
            self.name()
        )
    }
}

/// Columns every record table has, in this order.
pub(super) const SHARED_COLUMNS: [&str; 11] = [
    "id",
    "kind",
    "ts",
    "session_id",
    "step_id",
    "org",
    "workspace",
    "trace_id",
    "span_id",
    "parent_span_id",
    "payload",
];

/// A record turned into column values, ready to insert off the caller's thread.
pub(super) struct Row {
    pub table: Table,
    pub values: Vec<Sql>,
    /// What the derived tables (sessions, steps) learn from this record.
    pub effect: Effect,
}

/// How a new record changes the derived `sessions` and `steps` tables.
pub(super) struct Effect {
    pub session_id: String,
    pub org: Option<String>,
    pub workspace: Option<String>,
    pub id: String,
    pub ts: i64,
    pub is_event: bool,
    pub is_llm: bool,
    pub is_message: bool,
    pub total_tokens: i64,
    pub cost_usd: Option<f64>,
    pub lifecycle: Option<Lifecycle>,
}

/// Derived-table updates of lifecycle records.
pub(super) enum Lifecycle {
    SessionStarted {
        metadata: String,
    },
    SessionEnded,
    StepStarted {
        step_id: String,
        step_index: i64,
        turn_number: Option<i64>,
        metadata: String,
    },
    StepEnded {
        step_id: String,
    },
}

fn text(value: &Option<String>) -> Sql {
    value.clone().map_or(Sql::Null, Sql::Text)
}

fn real(value: Option<f64>) -> Sql {
    value.filter(|v| v.is_finite()).map_or(Sql::Null, Sql::Real)
}

fn int(value: u64) -> Sql {
    Sql::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}

impl Row {
    pub(super) fn from_record(record: &Record) -> Row {
        let ctx = &record.context;
        let payload = record.body.payload_json();
        let mut values = vec![
            Sql::Text(record.id.clone()),
            Sql::Text(record.kind().to_owned()),
            Sql::Integer(record.timestamp.as_micros()),
            Sql::Text(ctx.session_id.clone()),
            text(&ctx.step_id),
            text(&ctx.org),
            text(&ctx.workspace),
            text(&ctx.trace_id),
            text(&ctx.span_id),
            text(&ctx.parent_span_id),
            Sql::Text(payload),
        ];
        let mut effect = Effect {
            session_id: ctx.session_id.clone(),
            org: ctx.org.clone(),
            workspace: ctx.workspace.clone(),
            id: record.id.clone(),
            ts: record.timestamp.as_micros(),
            is_event: false,
            is_llm: false,
            is_message: false,
            total_tokens: 0,
            cost_usd: None,
            lifecycle: None,
        };
        let metadata_json = |m: &sonde_model::Metadata| {
            serde_json::to_string(m).unwrap_or_else(|_| "{}".to_owned())
        };
        let step_id = ctx.step_id.clone().unwrap_or_default();
        let table = match &record.body {
            Body::SessionStarted(p) => {
                effect.lifecycle = Some(Lifecycle::SessionStarted {
                    metadata: metadata_json(&p.metadata),
                });
                Table::Lifecycle
            }
            Body::SessionEnded(_) => {
                effect.lifecycle = Some(Lifecycle::SessionEnded);
                Table::Lifecycle
            }
            Body::StepStarted(p) => {
                effect.lifecycle = Some(Lifecycle::StepStarted {
                    step_id,
                    step_index: i64::from(p.step_index),
                    turn_number: p.turn_number,
                    metadata: metadata_json(&p.metadata),
                });
                Table::Lifecycle
            }
            Body::StepEnded(_) => {
                effect.lifecycle = Some(Lifecycle::StepEnded { step_id });
                Table::Lifecycle
            }
            Body::Event(event) => {
                effect.is_event = true;
                let status = Sql::Text(event.status().as_str().to_owned());
                let event_type = Sql::Text(event.event_type().to_owned());
                match event {
                    Event::Llm(call) => {
                        effect.is_llm = true;
                        effect.total_tokens =
                            i64::try_from(call.total_tokens()).unwrap_or(i64::MAX);
                        effect.cost_usd = call.cost_usd.filter(|c| c.is_finite());
                        values.extend([
                            event_type,
                            status,
                            text(&call.provider),
                            Sql::Text(call.model_name.clone()),
                            int(call.input_tokens),
                            int(call.output_tokens),
                            int(call.cache_read_tokens),
                            int(call.cache_write_tokens),
                            int(call.reasoning_tokens),
                            int(call.total_tokens()),
                            real(call.cost_usd),
                            real(call.latency_ms),
                            real(call.time_to_first_token_ms),
                            call.response_status
                                .map_or(Sql::Null, |s| Sql::Integer(i64::from(s))),
                            text(&call.request_path),
                            text(&call.api_key_hash),
                            text(&call.gateway_key_id),
                            Sql::Null,
                        ]);
                    }
                    other => {
                        let (tool_name, duration) = match other {
                            Event::Runtime(action) => {
                                (text(&action.tool_name), real(action.duration_ms))
                            }
                            _ => (Sql::Null, Sql::Null),
                        };
                        values.extend([event_type, status]);
                        values.extend(std::iter::repeat_n(Sql::Null, 9));
                        values.push(duration);
                        values.extend(std::iter::repeat_n(Sql::Null, 5));
                        values.push(tool_name);
                    }
                }
                Table::Events
            }
            Body::Message(message) => {
                effect.is_message = true;
                values.extend([
                    Sql::Text(message.message_type.clone()),
                    text(&message.from_role),
                    text(&message.to_role),
                ]);
                Table::Messages
            }
            Body::OutcomeReward(reward) => {
                values.extend([
                    Sql::Text(reward.objective_key.clone()),
                    Sql::Real(if reward.total_reward.is_finite() {
                        reward.total_reward
                    } else {
                        0.0
                    }),
                ]);
                Table::OutcomeRewards
            }
            Body::EventReward(reward) => {
                values.extend([
                    Sql::Text(reward.event_id.clone()),
                    Sql::Real(if reward.value.is_finite() {
                        reward.value
                    } else {
                        0.0
                    }),
                ]);
                Table::EventRewards
            }
        };
        Row {
            table,
            values,
            effect,
        }
    }
}

/// Rebuilds a record from the shared columns of a row (in [`SHARED_COLUMNS`] order).
pub(super) fn record_from_row(row: &rusqlite::Row<'_>) -> Result<Record, ReadError> {
    let get_text = |i: usize| -> Result<Option<String>, ReadError> {
        row.get::<_, Option<String>>(i)
            .map_err(|e| ReadError::Backend(super::classify(&e)))
    };
    let id = get_text(0)?.unwrap_or_default();
    let corrupt = |reason: String| ReadError::Corrupt {
        id: id.clone(),
        reason,
    };
    let kind = get_text(1)?.unwrap_or_default();
    let ts: i64 = row
        .get(2)
        .map_err(|e| ReadError::Backend(super::classify(&e)))?;
    let payload = get_text(10)?.unwrap_or_default();
    let body = Body::from_kind_and_payload(&kind, &payload).map_err(|e| corrupt(e.to_string()))?;
    Ok(Record {
        id: id.clone(),
        timestamp: Timestamp::from_micros(ts),
        context: Context {
            session_id: get_text(3)?.unwrap_or_default(),
            step_id: get_text(4)?,
            org: get_text(5)?,
            workspace: get_text(6)?,
            trace_id: get_text(7)?,
            span_id: get_text(8)?,
            parent_span_id: get_text(9)?,
        },
        body,
    })
}
