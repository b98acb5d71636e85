//! Compatibility with the APIs Sonde's users come from: code written against them
//! compiles with only its `use` lines changed.
//!
//! - [`synth_ai`]: seed 000's `synth_ai_core::tracing` (the Rust `SessionTracer` over
//!   libSQL), as thin adapters over Sonde's tracer and store.

pub mod synth_ai;
