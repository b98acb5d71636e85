//! The `sonde` Python package's native module, `sonde._native`: seed 002's event model
//! (`TimeRecord`, `SessionMessageContent`, `BaseEvent`, `LMCAISEvent`, ...,
//! `SessionTrace`), a `SessionTracer` over Sonde's Rust tracer (blocking, the GIL
//! released while Rust works) and its asynchronous twin, the read helpers
//! (`load_session`, `sessions`, `stats`, `sync`) and `SondeError` with its subclasses.
//!
//! The Python package (`python/sonde/`) adds the context managers and the
//! `AsyncSessionTracer` coroutines on top; everything else is here. Built by maturin
//! (`pyproject.toml`); tested by the pytest suite under `tests/` against the wheel.

mod convert;
mod errors;
mod model;
mod reads;
mod runtime;
mod tracer;

use pyo3::prelude::*;

/// The native module: every class, function and exception the package exports.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    model::register(m)?;
    tracer::register(m)?;
    reads::register(m)?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
