//! The one Tokio runtime the module's Rust work runs on, and the two ways Python waits
//! for it: blocking with the GIL released, or as an asyncio future.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::errors::Failure;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The module's runtime, started on first use (two worker threads: the work is I/O).
pub(crate) fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sonde-py")
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// What an operation returns, turned into a Python value once the GIL is held again.
pub(crate) trait IntoPython: Send + 'static {
    /// The Python value.
    fn into_python(self, py: Python<'_>) -> PyResult<Py<PyAny>>;
}

impl IntoPython for () {
    fn into_python(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(py.None())
    }
}

/// Runs `work` to its end. Its first step runs at once on the caller's thread (for
/// recording, while the tracer's queue has room, that is all of it: a record made and
/// queued, about a microsecond); whatever then waits (the queue full, a store read, a
/// flush) waits on the runtime with the GIL released.
pub(crate) fn block_on<T: IntoPython>(
    py: Python<'_>,
    work: impl Future<Output = Result<T, Failure>> + Send,
) -> PyResult<Py<PyAny>> {
    let runtime = runtime()?;
    let mut work = std::pin::pin!(work);
    let first = {
        let _inside = runtime.enter();
        work.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    };
    let out = match first {
        Poll::Ready(out) => out,
        Poll::Pending => py.detach(|| runtime.block_on(work)),
    };
    out?.into_python(py)
}

type Work<T> = Pin<Box<dyn Future<Output = Result<T, Failure>> + Send>>;

/// Starts `work` for the running asyncio loop and returns a future of that loop for its
/// result. Work that finishes on its first step (recording, while the queue has room)
/// resolves the future at once; the rest goes on on the runtime, and the loop is told
/// when it ends. The loop's thread never waits on Rust.
pub(crate) fn to_asyncio<T: IntoPython>(
    py: Python<'_>,
    work: impl Future<Output = Result<T, Failure>> + Send + 'static,
) -> PyResult<Bound<'_, PyAny>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let running_loop = GET_RUNNING_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()?;
    let future = running_loop.call_method0("create_future")?;
    let runtime = runtime()?;
    let mut work: Work<T> = Box::pin(work);
    let first = {
        let _inside = runtime.enter();
        work.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    };
    match first {
        Poll::Ready(out) => {
            resolve(py, &future, out)?;
        }
        Poll::Pending => {
            let (running_loop, target) = (running_loop.unbind(), future.clone().unbind());
            runtime.spawn(async move {
                let out = work.await;
                Python::attach(|py| {
                    let told = (|| -> PyResult<()> {
                        let (value, error) = split(py, out);
                        let resolver = wrap_pyfunction!(resolve_future, py)?;
                        running_loop.call_method1(
                            py,
                            "call_soon_threadsafe",
                            (resolver, target, value, error),
                        )?;
                        Ok(())
                    })();
                    if let Err(e) = told {
                        // The loop is closed: nobody waits for the answer any more.
                        e.write_unraisable(py, None);
                    }
                });
            });
        }
    }
    Ok(future)
}

/// The value, or the exception, of an operation's result.
fn split<T: IntoPython>(
    py: Python<'_>,
    out: Result<T, Failure>,
) -> (Option<Py<PyAny>>, Option<Py<PyAny>>) {
    match out.map_err(PyErr::from).and_then(|v| v.into_python(py)) {
        Ok(value) => (Some(value), None),
        Err(e) => (None, Some(e.into_value(py).into_any())),
    }
}

fn resolve<T: IntoPython>(
    py: Python<'_>,
    future: &Bound<'_, PyAny>,
    out: Result<T, Failure>,
) -> PyResult<()> {
    let (value, error) = split(py, out);
    resolve_future(future, value, error)
}

/// Sets an asyncio future's result or exception, unless it was cancelled meanwhile.
#[pyfunction]
#[pyo3(signature = (future, value, error))]
fn resolve_future(
    future: &Bound<'_, PyAny>,
    value: Option<Py<PyAny>>,
    error: Option<Py<PyAny>>,
) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    match error {
        Some(error) => future.call_method1("set_exception", (error,))?,
        None => future.call_method1("set_result", (value,))?,
    };
    Ok(())
}
