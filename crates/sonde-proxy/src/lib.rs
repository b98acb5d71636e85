//! Sonde's recording LLM proxy, without the server: what `sonde serve` needs to forward
//! calls to OpenAI- and Anthropic-style APIs and to record each as an LLM call.
//!
//! - [`RouteTable`]: the upstreams by route name (`openai`, `anthropic`, and any
//!   OpenAI-compatible `NAME`), parsed from `NAME=URL`.
//! - [`headers`]: which headers pass through (hop-by-hop ones and Sonde's own do not),
//!   the provider key's SHA-256, and the session headers (`X-Sonde-Session`, ...).
//! - [`Endpoint`]: chat completions, responses, embeddings, messages, or another call.
//! - [`ResponseObserver`]: fed the response body chunk by chunk as it passes through
//!   (server-sent events or plain JSON), it extracts the answered model, the usage, the
//!   stop reason and the output.
//! - [`Exchange`] and [`Exchange::records`]: the request's side and the records of the
//!   call, tokens in Sonde's convention (input without its cached part).
//!
//! ```
//! use sonde_proxy::{Endpoint, ResponseObserver};
//! let mut observer = ResponseObserver::new(Endpoint::ChatCompletions, true, true);
//! observer.feed(b"data: {\"model\":\"gpt-5\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n");
//! observer.feed(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
//! let seen = observer.finish();
//! assert_eq!(seen.model.as_deref(), Some("gpt-5"));
//! assert_eq!(seen.output_text, "hi");
//! assert_eq!(seen.usage.map(|u| u.output), Some(2));
//! ```

mod endpoint;
mod exchange;
pub mod headers;
mod observe;
pub mod routes;
mod sse;

pub use endpoint::Endpoint;
pub use exchange::{ErrorClass, Exchange, Outcome, SessionTag};
pub use observe::{BODY_KEEP_LIMIT, OUTPUT_KEEP_LIMIT, Observed, ResponseObserver, Usage};
pub use routes::{Provider, RouteError, RouteTable, Upstream};
pub use sse::SseParser;
