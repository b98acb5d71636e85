//! Which API a request calls, from its path after `/v1/`.

/// The API a proxied request calls.
///
/// ```
/// use sonde_proxy::Endpoint;
/// assert_eq!(Endpoint::of_path("chat/completions"), Endpoint::ChatCompletions);
/// assert_eq!(Endpoint::of_path("messages"), Endpoint::Messages);
/// assert_eq!(Endpoint::of_path("models"), Endpoint::Other);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// OpenAI's `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI's `POST /v1/responses`.
    Responses,
    /// OpenAI's `POST /v1/embeddings`.
    Embeddings,
    /// Anthropic's `POST /v1/messages`.
    Messages,
    /// Anything else (recorded as a plain call).
    Other,
}

impl Endpoint {
    /// The endpoint of `rest`, the path after `/v1/`.
    pub fn of_path(rest: &str) -> Self {
        match rest.trim_matches('/') {
            "chat/completions" => Endpoint::ChatCompletions,
            "responses" => Endpoint::Responses,
            "embeddings" => Endpoint::Embeddings,
            "messages" => Endpoint::Messages,
            _ => Endpoint::Other,
        }
    }

    /// The call's operation as recorded: `chat`, `responses`, `embeddings`, `messages`,
    /// or `other`.
    ///
    /// ```
    /// assert_eq!(sonde_proxy::Endpoint::ChatCompletions.operation(), "chat");
    /// ```
    pub fn operation(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat",
            Endpoint::Responses => "responses",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::Other => "other",
        }
    }
}
