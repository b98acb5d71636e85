//! Seed 000's hooks: callbacks on a [`HookContext`] of the seed's shape, by priority.

use std::collections::HashMap;
use std::sync::Arc;

use super::models::{MarkovBlanketMessage, TracingEvent};

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookEvent {
    /// A session started.
    SessionStart,
    /// A session ended.
    SessionEnd,
    /// A timestep started.
    TimestepStart,
    /// A timestep ended.
    TimestepEnd,
    /// An event was recorded.
    EventRecorded,
    /// A message was recorded.
    MessageRecorded,
    /// Before a session is saved (run by `end_session(true)`).
    BeforeSave,
    /// After a session is saved.
    AfterSave,
}

impl std::fmt::Display for HookEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HookEvent::SessionStart => "session_start",
            HookEvent::SessionEnd => "session_end",
            HookEvent::TimestepStart => "timestep_start",
            HookEvent::TimestepEnd => "timestep_end",
            HookEvent::EventRecorded => "event_recorded",
            HookEvent::MessageRecorded => "message_recorded",
            HookEvent::BeforeSave => "before_save",
            HookEvent::AfterSave => "after_save",
        })
    }
}

/// What a hook is told.
///
/// ```
/// let c = sonde::compat::synth_ai::HookContext::new().with_session("s").with_step("t");
/// assert_eq!(c.step_id.as_deref(), Some("t"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    /// The session.
    pub session_id: Option<String>,
    /// The step.
    pub step_id: Option<String>,
    /// The event recorded.
    pub event: Option<TracingEvent>,
    /// The message recorded.
    pub message: Option<MarkovBlanketMessage>,
}

impl HookContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// In session `session_id`.
    pub fn with_session(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// In step `step_id`.
    pub fn with_step(mut self, step_id: impl Into<String>) -> Self {
        self.step_id = Some(step_id.into());
        self
    }

    /// About `event`.
    pub fn with_event(mut self, event: TracingEvent) -> Self {
        self.event = Some(event);
        self
    }

    /// About `message`.
    pub fn with_message(mut self, message: MarkovBlanketMessage) -> Self {
        self.message = Some(message);
        self
    }
}

/// A hook.
pub type HookCallback = Arc<dyn Fn(&HookContext) + Send + Sync>;

/// Hooks by event, higher priority first (equal priorities in the order registered); a
/// hook that panics is contained.
///
/// ```
/// use std::sync::Arc;
/// use sonde::compat::synth_ai::{HookEvent, HookManager};
/// let mut hooks = HookManager::new();
/// hooks.on(HookEvent::SessionStart, Arc::new(|_| {}));
/// assert_eq!(hooks.hook_count(HookEvent::SessionStart), 1);
/// ```
#[derive(Default)]
pub struct HookManager {
    hooks: HashMap<HookEvent, Vec<(i32, HookCallback)>>,
}

impl HookManager {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a hook with a priority.
    pub fn register(&mut self, event: HookEvent, callback: HookCallback, priority: i32) {
        let hooks = self.hooks.entry(event).or_default();
        let at = hooks.partition_point(|(p, _)| *p >= priority);
        hooks.insert(at, (priority, callback));
    }

    /// Adds a hook with priority 0.
    pub fn on(&mut self, event: HookEvent, callback: HookCallback) {
        self.register(event, callback, 0);
    }

    /// Runs the hooks of `event`.
    pub fn trigger(&self, event: HookEvent, context: &HookContext) {
        for (_, callback) in self.hooks.get(&event).into_iter().flatten() {
            // A panicking hook is contained (the panic hook has reported it already).
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(context)));
        }
    }

    /// Whether `event` has hooks.
    pub fn has_hooks(&self, event: HookEvent) -> bool {
        self.hook_count(event) > 0
    }

    /// How many hooks `event` has.
    pub fn hook_count(&self, event: HookEvent) -> usize {
        self.hooks.get(&event).map_or(0, Vec::len)
    }

    /// Removes the hooks of `event`.
    pub fn clear(&mut self, event: HookEvent) {
        self.hooks.remove(&event);
    }

    /// Removes every hook.
    pub fn clear_all(&mut self) {
        self.hooks.clear();
    }
}
