//! `SessionTracer` (blocking; the GIL is released while Rust works) and the core of
//! `AsyncSessionTracer` (each operation an asyncio future): both drive one
//! [`sonde::SessionTracer`] writing to a store (SQLite file, PostgreSQL through Sonde's
//! writer) or a JSONL file, with seed 000's operations and hooks with priorities.

// Sonde's payloads are built with `..Default::default()` even where every field is set:
// fields added to the model later (a record level, say) take their defaults here.
#![allow(clippy::needless_update)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;
use sonde::store::{StoreUrl, Writer, WriterConfig};
use sonde::{
    Event, EventReward, HookEvent, JsonlSink, Message, Metadata, Occurrence, OutcomeReward,
    SessionTracer, TracerBuilder,
};

use crate::convert::{from_py, metadata_from, timestamp_from_seconds, to_py};
use crate::errors::Failure;
use crate::model::{SessionTrace, content_from, event_parts, message_parts};
use crate::runtime::{IntoPython, block_on, to_asyncio};

/// Adds the tracer classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SyncTracer>()?;
    m.add_class::<AsyncTracerCore>()?;
    m.add_function(wrap_pyfunction!(flush_all, m)?)?;
    m.add_function(wrap_pyfunction!(record_in_rust, m)?)?;
    Ok(())
}

/// Where records go.
#[derive(Debug, Clone)]
enum Destination {
    /// A store URL, as the CLI's `--db` takes it.
    Store(String),
    /// A JSONL file of records.
    Jsonl(PathBuf),
}

impl Destination {
    fn parse(db_url: Option<String>) -> Self {
        let url = db_url.unwrap_or_else(StoreUrl::default_url);
        if let Some(path) = url.strip_prefix("jsonl://") {
            return Destination::Jsonl(PathBuf::from(path));
        }
        if url.ends_with(".jsonl") && !url.contains("://") {
            return Destination::Jsonl(PathBuf::from(url));
        }
        Destination::Store(url)
    }
}

/// What both tracer classes drive: the Rust tracer, opened on first use.
pub(crate) struct Core {
    destination: Destination,
    also_jsonl: Option<PathBuf>,
    auto_save: bool,
    tracer: tokio::sync::OnceCell<SessionTracer>,
}

/// Every live tracer, for `flush_all` at interpreter exit.
static LIVE: Mutex<Vec<Weak<Core>>> = Mutex::new(Vec::new());

impl Core {
    fn new(db_url: Option<String>, jsonl: Option<PathBuf>, auto_save: bool) -> Arc<Self> {
        let core = Arc::new(Self {
            destination: Destination::parse(db_url),
            also_jsonl: jsonl,
            auto_save,
            tracer: tokio::sync::OnceCell::new(),
        });
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&core));
        core
    }

    fn db_url(&self) -> String {
        match &self.destination {
            Destination::Store(url) => sonde::store::redact_url(url),
            Destination::Jsonl(path) => format!("jsonl://{}", path.display()),
        }
    }

    async fn tracer(&self) -> Result<&SessionTracer, Failure> {
        self.tracer.get_or_try_init(|| self.open()).await
    }

    async fn open(&self) -> Result<SessionTracer, Failure> {
        let io = |e: std::io::Error| Failure::Runtime(e.to_string());
        let sink = |path: &PathBuf| {
            JsonlSink::create(path)
                .map(Arc::new)
                .map_err(|e| Failure::Runtime(e.to_string()))
        };
        let mut builder: TracerBuilder = SessionTracer::builder().auto_save(self.auto_save);
        match &self.destination {
            Destination::Store(url) => {
                let parsed = StoreUrl::parse(url)?;
                let store = parsed.open_with(Some(sonde::shipped_prices())).await?;
                builder = match parsed {
                    // A server: through the writer (batched, retried); the tracer's
                    // flush waits until it is written.
                    StoreUrl::Postgres(_) => {
                        let writer = Writer::start(store, WriterConfig::default())
                            .map_err(|e| Failure::Runtime(e.to_string()))?;
                        builder.writer(Arc::new(writer))
                    }
                    _ => builder.store(store),
                };
            }
            Destination::Jsonl(path) => builder = builder.sink(sink(path)?),
        }
        if let Some(path) = &self.also_jsonl {
            builder = builder.sink(sink(path)?);
        }
        builder.build().map_err(io)
    }

    async fn start_session(
        self: Arc<Self>,
        session_id: Option<String>,
        metadata: Metadata,
    ) -> Result<String, Failure> {
        let tracer = self.tracer().await?;
        Ok(tracer
            .start_session(session_id.as_deref(), metadata)
            .await?)
    }

    async fn end_session(self: Arc<Self>, save: bool) -> Result<Trace, Failure> {
        Ok(Trace(Some(self.tracer().await?.end_session(save).await?)))
    }

    async fn start_timestep(
        self: Arc<Self>,
        step_id: String,
        turn_number: Option<i64>,
        metadata: Metadata,
    ) -> Result<(), Failure> {
        let tracer = self.tracer().await?;
        Ok(tracer
            .start_timestep(&step_id, turn_number, metadata)
            .await?)
    }

    async fn end_timestep(self: Arc<Self>) -> Result<(), Failure> {
        Ok(self.tracer().await?.end_timestep().await?)
    }

    async fn record_event(
        self: Arc<Self>,
        event: Event,
        at: Occurrence,
    ) -> Result<String, Failure> {
        Ok(self.tracer().await?.record_event_at(event, at).await?)
    }

    async fn record_message(
        self: Arc<Self>,
        message: Message,
        at: Occurrence,
    ) -> Result<String, Failure> {
        Ok(self.tracer().await?.record_message_at(message, at).await?)
    }

    async fn record_outcome_reward(
        self: Arc<Self>,
        reward: OutcomeReward,
    ) -> Result<String, Failure> {
        Ok(self.tracer().await?.record_outcome_reward(reward).await?)
    }

    async fn record_event_reward(
        self: Arc<Self>,
        event_id: String,
        reward: EventReward,
    ) -> Result<String, Failure> {
        let tracer = self.tracer().await?;
        Ok(tracer.record_event_reward(&event_id, reward).await?)
    }

    async fn get_session(self: Arc<Self>, session_id: String) -> Result<Trace, Failure> {
        Ok(Trace(self.tracer().await?.get_session(&session_id).await?))
    }

    async fn delete_session(self: Arc<Self>, session_id: String) -> Result<bool, Failure> {
        Ok(self.tracer().await?.delete_session(&session_id).await?)
    }

    async fn query(self: Arc<Self>, sql: String, params: Vec<Value>) -> Result<Value, Failure> {
        let rows = self.tracer().await?.query(&sql, &params).await?;
        Ok(Value::Array(rows.into_iter().map(Value::Object).collect()))
    }

    async fn flush(self: Arc<Self>) -> Result<(), Failure> {
        Ok(self.tracer().await?.flush().await?)
    }

    async fn current_ids(self: Arc<Self>) -> Result<(Option<String>, Option<String>), Failure> {
        let tracer = self.tracer().await?;
        Ok((
            tracer.current_session_id().await,
            tracer.current_step_id().await,
        ))
    }

    async fn register_hook(
        self: Arc<Self>,
        event: HookEvent,
        callback: Py<PyAny>,
        priority: i32,
    ) -> Result<(), Failure> {
        let tracer = self.tracer().await?;
        let hook: sonde::HookCallback = Arc::new(move |ctx: &sonde::HookContext<'_>| {
            Python::attach(|py| {
                let called = hook_context(py, ctx).and_then(|c| callback.call1(py, (c,)));
                if let Err(e) = called {
                    // A failing hook is reported, and recording goes on.
                    e.write_unraisable(py, Some(callback.bind(py)));
                }
            });
        });
        tracer.register_hook(event, hook, priority).await;
        Ok(())
    }
}

/// What a Python hook is given: a dict with `event`, `session_id`, `step_id` and the
/// `record` (the JSON object Sonde writes).
fn hook_context<'py>(
    py: Python<'py>,
    ctx: &sonde::HookContext<'_>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("event", hook_name(ctx.event))?;
    dict.set_item("session_id", ctx.session_id())?;
    dict.set_item("step_id", ctx.step_id())?;
    let record = serde_json::to_value(ctx.record).unwrap_or_default();
    dict.set_item("record", to_py(py, &record)?)?;
    Ok(dict)
}

const HOOKS: [(&str, HookEvent); 6] = [
    ("session_start", HookEvent::SessionStart),
    ("session_end", HookEvent::SessionEnd),
    ("timestep_start", HookEvent::TimestepStart),
    ("timestep_end", HookEvent::TimestepEnd),
    ("event_recorded", HookEvent::EventRecorded),
    ("message_recorded", HookEvent::MessageRecorded),
];

fn hook_name(event: HookEvent) -> &'static str {
    HOOKS
        .iter()
        .find(|(_, e)| *e == event)
        .map_or("unknown", |(name, _)| name)
}

fn hook_event(name: &str) -> PyResult<HookEvent> {
    HOOKS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, e)| *e)
        .ok_or_else(|| {
            let names: Vec<&str> = HOOKS.iter().map(|(n, _)| *n).collect();
            PyValueError::new_err(format!(
                "register_hook: unknown hook event {name:?} (expected one of {})",
                names.join(", ")
            ))
        })
}

/// A session, or none, as a `SessionTrace`.
pub(crate) struct Trace(pub(crate) Option<sonde::SessionTrace>);

impl IntoPython for Trace {
    fn into_python(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.0 {
            None => Ok(py.None()),
            Some(trace) => Ok(Bound::new(py, SessionTrace::from_trace(trace))?
                .into_any()
                .unbind()),
        }
    }
}

impl IntoPython for String {
    fn into_python(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.into_pyobject(py)?.into_any().unbind())
    }
}

impl IntoPython for bool {
    fn into_python(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(pyo3::types::PyBool::new(py, self)
            .to_owned()
            .into_any()
            .unbind())
    }
}

impl IntoPython for Value {
    fn into_python(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(to_py(py, &self)?.unbind())
    }
}

impl IntoPython for (Option<String>, Option<String>) {
    fn into_python(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.into_pyobject(py)?.into_any().unbind())
    }
}

/// The arguments of `record_message`: seed 002's message object, or seed 000's
/// `(content, message_type, ...)` with the time as `event_time` seconds.
fn message_args(
    content: &Bound<'_, PyAny>,
    message_type: Option<&str>,
    event_time: Option<f64>,
    message_time: Option<i64>,
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Message, Occurrence)> {
    let Some(message_type) = message_type else {
        return message_parts(content);
    };
    let metadata = metadata_from(metadata, "record_message metadata")?;
    let mut message = Message::from_seed(content_from(content)?, message_type, metadata);
    message.message_time = message_time;
    let at = Occurrence {
        timestamp: event_time
            .map(|t| timestamp_from_seconds(t, "record_message event_time"))
            .transpose()?,
        ..Default::default()
    };
    Ok((message, at))
}

#[allow(clippy::too_many_arguments)]
fn outcome_reward(
    total_reward: f64,
    objective_key: Option<String>,
    achievements: Option<Vec<String>>,
    achievements_count: Option<i64>,
    total_steps: Option<u64>,
    reward_metadata: Option<&Bound<'_, PyAny>>,
    annotation: Option<&Bound<'_, PyAny>>,
) -> PyResult<OutcomeReward> {
    let mut metadata = metadata_from(reward_metadata, "record_outcome_reward reward_metadata")?;
    if let Some(count) = achievements_count {
        metadata.insert("achievements_count".into(), count.into());
    }
    Ok(OutcomeReward {
        objective_key: objective_key.unwrap_or_else(|| "default".into()),
        total_reward,
        achievements: achievements.unwrap_or_default(),
        total_steps,
        annotation: annotation
            .map(|a| from_py(a, "record_outcome_reward annotation"))
            .transpose()?
            .filter(|v| !v.is_null()),
        metadata,
        ..Default::default()
    })
}

fn event_reward(
    reward_value: f64,
    reward_type: Option<String>,
    key: Option<String>,
    annotation: Option<&Bound<'_, PyAny>>,
    source: Option<String>,
) -> PyResult<EventReward> {
    Ok(EventReward {
        event_id: String::new(),
        value: reward_value,
        reward_type,
        key,
        annotation: annotation
            .map(|a| from_py(a, "record_event_reward annotation"))
            .transpose()?
            .filter(|v| !v.is_null()),
        source,
        ..Default::default()
    })
}

fn query_params(params: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Value>> {
    match params.map(|p| from_py(p, "query params")).transpose()? {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(PyTypeError::new_err(
            "query params must be a list or a tuple",
        )),
    }
}

/// Generates the two tracer classes from one list of operations: each operation
/// parses its arguments once, then the blocking class runs it with the GIL released
/// and the asynchronous one hands back an asyncio future.
macro_rules! tracer_class {
    ($name:ident, $py_name:literal, $run:ident, $doc:literal, { $($new:tt)* }) => {
        #[doc = $doc]
        #[pyclass(subclass, module = "sonde._native", name = $py_name)]
        pub(crate) struct $name {
            core: Arc<Core>,
        }

        #[pymethods]
        impl $name {
            $($new)*

            /// The database URL (password hidden) or `jsonl://PATH` records go to.
            #[getter]
            fn db_url(&self) -> String {
                self.core.db_url()
            }

            /// Opens the store now (otherwise the first operation does).
            fn initialize<'py>(&self, py: Python<'py>) -> PyResult<Out<'py>> {
                let core = self.core.clone();
                $run(py, async move { core.tracer().await.map(|_| ()) })
            }

            #[pyo3(signature = (session_id=None, metadata=None))]
            fn start_session<'py>(
                &self,
                py: Python<'py>,
                session_id: Option<String>,
                metadata: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Out<'py>> {
                let metadata = metadata_from(metadata, "start_session metadata")?;
                $run(py, self.core.clone().start_session(session_id, metadata))
            }

            #[pyo3(signature = (save=true))]
            fn end_session<'py>(&self, py: Python<'py>, save: bool) -> PyResult<Out<'py>> {
                $run(py, self.core.clone().end_session(save))
            }

            #[pyo3(signature = (step_id, turn_number=None, metadata=None))]
            fn start_timestep<'py>(
                &self,
                py: Python<'py>,
                step_id: String,
                turn_number: Option<i64>,
                metadata: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Out<'py>> {
                let metadata = metadata_from(metadata, "start_timestep metadata")?;
                $run(py, self.core.clone().start_timestep(step_id, turn_number, metadata))
            }

            fn end_timestep<'py>(&self, py: Python<'py>) -> PyResult<Out<'py>> {
                $run(py, self.core.clone().end_timestep())
            }

            fn record_event<'py>(
                &self,
                py: Python<'py>,
                event: &Bound<'py, PyAny>,
            ) -> PyResult<Out<'py>> {
                let (event, at) = event_parts(event)?;
                $run(py, self.core.clone().record_event(event, at))
            }

            #[pyo3(signature = (content, message_type=None, event_time=None, message_time=None, metadata=None))]
            fn record_message<'py>(
                &self,
                py: Python<'py>,
                content: &Bound<'py, PyAny>,
                message_type: Option<&str>,
                event_time: Option<f64>,
                message_time: Option<i64>,
                metadata: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Out<'py>> {
                let (message, at) =
                    message_args(content, message_type, event_time, message_time, metadata)?;
                $run(py, self.core.clone().record_message(message, at))
            }

            #[pyo3(signature = (total_reward, *, objective_key=None, achievements=None, achievements_count=None, total_steps=None, reward_metadata=None, annotation=None))]
            #[allow(clippy::too_many_arguments)]
            fn record_outcome_reward<'py>(
                &self,
                py: Python<'py>,
                total_reward: f64,
                objective_key: Option<String>,
                achievements: Option<Vec<String>>,
                achievements_count: Option<i64>,
                total_steps: Option<u64>,
                reward_metadata: Option<&Bound<'py, PyAny>>,
                annotation: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Out<'py>> {
                let reward = outcome_reward(
                    total_reward,
                    objective_key,
                    achievements,
                    achievements_count,
                    total_steps,
                    reward_metadata,
                    annotation,
                )?;
                $run(py, self.core.clone().record_outcome_reward(reward))
            }

            #[pyo3(signature = (event_id, reward_value, *, reward_type=None, key=None, annotation=None, source=None))]
            #[allow(clippy::too_many_arguments)]
            fn record_event_reward<'py>(
                &self,
                py: Python<'py>,
                event_id: String,
                reward_value: f64,
                reward_type: Option<String>,
                key: Option<String>,
                annotation: Option<&Bound<'py, PyAny>>,
                source: Option<String>,
            ) -> PyResult<Out<'py>> {
                let reward = event_reward(reward_value, reward_type, key, annotation, source)?;
                $run(py, self.core.clone().record_event_reward(event_id, reward))
            }

            fn get_session<'py>(&self, py: Python<'py>, session_id: String) -> PyResult<Out<'py>> {
                $run(py, self.core.clone().get_session(session_id))
            }

            fn delete_session<'py>(
                &self,
                py: Python<'py>,
                session_id: String,
            ) -> PyResult<Out<'py>> {
                $run(py, self.core.clone().delete_session(session_id))
            }

            #[pyo3(signature = (sql, params=None))]
            fn query<'py>(
                &self,
                py: Python<'py>,
                sql: String,
                params: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Out<'py>> {
                let params = query_params(params)?;
                $run(py, self.core.clone().query(sql, params))
            }

            fn flush<'py>(&self, py: Python<'py>) -> PyResult<Out<'py>> {
                $run(py, self.core.clone().flush())
            }

            /// `(current session id, current step id)`, each `None` when there is none.
            fn current_ids<'py>(&self, py: Python<'py>) -> PyResult<Out<'py>> {
                $run(py, self.core.clone().current_ids())
            }

            #[pyo3(signature = (event, callback, priority=0))]
            fn register_hook<'py>(
                &self,
                py: Python<'py>,
                event: &str,
                callback: Py<PyAny>,
                priority: i32,
            ) -> PyResult<Out<'py>> {
                if !callback.bind(py).is_callable() {
                    return Err(PyTypeError::new_err("register_hook: callback must be callable"));
                }
                let event = hook_event(event)?;
                $run(py, self.core.clone().register_hook(event, callback, priority))
            }
        }
    };
}

/// What an operation gives back: its value (blocking class) or an asyncio future.
type Out<'py> = Py<PyAny>;

fn run_blocking<'py, T: IntoPython>(
    py: Python<'py>,
    work: impl Future<Output = Result<T, Failure>> + Send + 'static,
) -> PyResult<Out<'py>> {
    block_on(py, work)
}

fn run_async<'py, T: IntoPython>(
    py: Python<'py>,
    work: impl Future<Output = Result<T, Failure>> + Send + 'static,
) -> PyResult<Out<'py>> {
    Ok(to_asyncio(py, work)?.unbind())
}

tracer_class!(
    SyncTracer,
    "SessionTracer",
    run_blocking,
    "Records sessions; each call blocks until done, the GIL released meanwhile.",
    {
        /// Opens the store (creating a SQLite file) now: errors are raised here.
        #[new]
        #[pyo3(signature = (db_url=None, *, jsonl=None, auto_save=true))]
        fn new(
            py: Python<'_>,
            db_url: Option<String>,
            jsonl: Option<PathBuf>,
            auto_save: bool,
        ) -> PyResult<Self> {
            let core = Core::new(db_url, jsonl, auto_save);
            let opening = core.clone();
            block_on(py, async move { opening.tracer().await.map(|_| ()) })?;
            Ok(Self { core })
        }
    }
);
tracer_class!(
    AsyncTracerCore,
    "AsyncTracerCore",
    run_async,
    "The core of `AsyncSessionTracer`: each call returns an asyncio future.",
    {
        /// Opens nothing yet: the first operation (or `initialize`) opens the store,
        /// on the runtime, never on the event loop's thread.
        #[new]
        #[pyo3(signature = (db_url=None, *, jsonl=None, auto_save=true))]
        fn new(db_url: Option<String>, jsonl: Option<PathBuf>, auto_save: bool) -> Self {
            Self {
                core: Core::new(db_url, jsonl, auto_save),
            }
        }
    }
);

/// Writes what every live tracer has queued (registered with `atexit` by the package).
#[pyfunction]
fn flush_all(py: Python<'_>) -> PyResult<()> {
    let live: Vec<Arc<Core>> = LIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for core in live {
        if core.tracer.initialized() {
            block_on(py, core.flush())?;
        }
    }
    Ok(())
}

/// For the benchmark: records `event` `n` times through `tracer` from Rust alone (no
/// Python call per record) and returns the seconds per record: the baseline that
/// `record_event`'s cost from Python is compared with in the same run.
#[pyfunction]
#[pyo3(name = "_record_in_rust")]
fn record_in_rust(tracer: &SyncTracer, event: &Bound<'_, PyAny>, n: u32) -> PyResult<f64> {
    let (event, at) = event_parts(event)?;
    let runtime = crate::runtime::runtime()?;
    let core = tracer.core.clone();
    let start = std::time::Instant::now();
    runtime.block_on(async {
        for _ in 0..n {
            core.clone().record_event(event.clone(), at.clone()).await?;
        }
        Ok::<(), Failure>(())
    })?;
    Ok(start.elapsed().as_secs_f64() / f64::from(n.max(1)))
}
