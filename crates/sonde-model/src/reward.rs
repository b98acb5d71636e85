//! Rewards: per session and objective (outcome), or on one event.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Metadata;

fn default_objective() -> String {
    "default".to_owned()
}

/// A session-level reward for one objective.
///
/// ```
/// let r = sonde_model::OutcomeReward {
///     total_reward: 1.0,
///     achievements: vec!["tests_pass".into()],
///     total_steps: Some(2),
///     ..Default::default()
/// };
/// assert_eq!(r.objective_key, "default");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutcomeReward {
    /// The objective rewarded (`default` unless several are tracked).
    pub objective_key: String,
    /// The reward.
    pub total_reward: f64,
    /// Achievements unlocked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub achievements: Vec<String>,
    /// Steps the session took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_steps: Option<u64>,
    /// A human or model annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotation: Option<Value>,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
}

impl Default for OutcomeReward {
    fn default() -> Self {
        Self {
            objective_key: default_objective(),
            total_reward: 0.0,
            achievements: Vec::new(),
            total_steps: None,
            annotation: None,
            metadata: Metadata::new(),
        }
    }
}

/// A reward attached to one event.
///
/// ```
/// let r = sonde_model::EventReward { event_id: "e1".into(), value: 0.5, source: Some("judge".into()), ..Default::default() };
/// assert_eq!(r.value, 0.5);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventReward {
    /// The record id of the rewarded event.
    pub event_id: String,
    /// The reward.
    pub value: f64,
    /// Its type, e.g. `shaped`, `sparse`, `achievement_delta`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward_type: Option<String>,
    /// Its key, e.g. an achievement name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A human or model annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotation: Option<Value>,
    /// Who gave it: `environment`, `runner`, `evaluator`, `human`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}
