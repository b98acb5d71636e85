//! Hooks: callbacks run when a session, step, event or message is recorded.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sonde_model::Record;

/// When a hook runs.
///
/// ```
/// assert_ne!(sonde_tracer::HookEvent::SessionStart, sonde_tracer::HookEvent::SessionEnd);
/// ```
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
}

/// What a hook is told: the record that was just made.
///
/// ```
/// use sonde_model::*;
/// let record = Record::new(Context::session("s"), Body::SessionStarted(SessionStarted::default()));
/// let ctx = sonde_tracer::HookContext { event: sonde_tracer::HookEvent::SessionStart, record: &record };
/// assert_eq!(ctx.session_id(), "s");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HookContext<'a> {
    /// Which moment this is.
    pub event: HookEvent,
    /// The record just made.
    pub record: &'a Record,
}

impl HookContext<'_> {
    /// The session the record belongs to.
    ///
    /// ```
    /// # use sonde_model::*;
    /// # let record = Record::new(Context::session("s").with_step("t"), Body::StepEnded(StepEnded::default()));
    /// # let ctx = sonde_tracer::HookContext { event: sonde_tracer::HookEvent::TimestepEnd, record: &record };
    /// assert_eq!(ctx.step_id(), Some("t"));
    /// ```
    pub fn session_id(&self) -> &str {
        &self.record.context.session_id
    }

    /// The step the record belongs to, if any.
    ///
    /// ```
    /// # use sonde_model::*;
    /// # let record = Record::new(Context::session("s"), Body::SessionEnded(SessionEnded::default()));
    /// # let ctx = sonde_tracer::HookContext { event: sonde_tracer::HookEvent::SessionEnd, record: &record };
    /// assert_eq!(ctx.step_id(), None);
    /// ```
    pub fn step_id(&self) -> Option<&str> {
        self.record.context.step_id.as_deref()
    }
}

/// A hook callback.
pub type HookCallback = Arc<dyn Fn(&HookContext<'_>) + Send + Sync>;

struct Registered {
    event: HookEvent,
    priority: i32,
    callback: HookCallback,
}

/// The hooks of a tracer, run in priority order (higher first; equal priorities in the
/// order registered). A hook that panics is contained and counted; recording goes on.
///
/// ```
/// use std::sync::Arc;
/// use sonde_tracer::{HookEvent, HookManager};
/// let hooks = HookManager::default();
/// hooks.register(HookEvent::EventRecorded, Arc::new(|ctx| println!("{}", ctx.record.kind())), 10);
/// assert_eq!(hooks.len(), 1);
/// ```
#[derive(Default)]
pub struct HookManager {
    hooks: RwLock<Vec<Registered>>,
    panics: AtomicU64,
}

impl HookManager {
    /// Adds a hook.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let hooks = sonde_tracer::HookManager::default();
    /// hooks.register(sonde_tracer::HookEvent::SessionEnd, Arc::new(|_| {}), 0);
    /// ```
    pub fn register(&self, event: HookEvent, callback: HookCallback, priority: i32) {
        let mut hooks = self.hooks.write().unwrap_or_else(|p| p.into_inner());
        // Stable position: after every hook of higher or equal priority.
        let at = hooks.partition_point(|h| h.priority >= priority);
        hooks.insert(
            at,
            Registered {
                event,
                priority,
                callback,
            },
        );
    }

    /// How many hooks are registered.
    ///
    /// ```
    /// assert!(sonde_tracer::HookManager::default().is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.hooks.read().map_or(0, |h| h.len())
    }

    /// Whether no hook is registered.
    ///
    /// ```
    /// assert_eq!(sonde_tracer::HookManager::default().len(), 0);
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many hook calls have panicked.
    ///
    /// ```
    /// assert_eq!(sonde_tracer::HookManager::default().panics(), 0);
    /// ```
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// Runs the hooks of `event` on `record`. The hooks' lock is not held while they
    /// run, so a hook may register hooks, and a hook that waits on another thread (a
    /// Python hook waiting for the GIL) never blocks `register` there.
    pub(crate) fn fire(&self, event: HookEvent, record: &Record) {
        let callbacks: Vec<HookCallback> = {
            let hooks = self.hooks.read().unwrap_or_else(|p| p.into_inner());
            if hooks.is_empty() {
                return;
            }
            hooks
                .iter()
                .filter(|h| h.event == event)
                .map(|h| h.callback.clone())
                .collect()
        };
        let ctx = HookContext { event, record };
        for callback in callbacks {
            if catch_unwind(AssertUnwindSafe(|| callback(&ctx))).is_err() {
                self.panics.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(hook_event = ?event, record_id = %record.id, "hook panicked; recording continues");
            }
        }
    }
}
