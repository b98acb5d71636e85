//! The upstreams, by route name: `/NAME/v1/*` forwards to NAME's base URL.

use std::collections::BTreeMap;

/// Which wire format an upstream speaks.
///
/// ```
/// assert_eq!(sonde_proxy::Provider::Anthropic.as_str(), "anthropic");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI's API, or one compatible with it (vLLM, Ollama, OpenRouter, DeepSeek...).
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

impl Provider {
    /// The wire format's name: `openai` or `anthropic`.
    ///
    /// ```
    /// assert_eq!(sonde_proxy::Provider::OpenAi.as_str(), "openai");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }
}

/// One upstream: the route name, its base URL (ending in `/v1` usually) and its format.
///
/// ```
/// let up = sonde_proxy::Upstream::new("vllm", "http://127.0.0.1:8000/v1/", sonde_proxy::Provider::OpenAi).unwrap();
/// assert_eq!(up.url_for("chat/completions", Some("a=1")), "http://127.0.0.1:8000/v1/chat/completions?a=1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The route name: `/NAME/v1/*` reaches this upstream; also the call's provider.
    pub name: String,
    /// The base URL, without a trailing `/`.
    pub base: String,
    /// The wire format.
    pub provider: Provider,
}

/// Route names the server's own paths use, which an upstream cannot take.
const RESERVED: [&str; 10] = [
    "api", "v1", "metrics", "healthz", "static", "login", "logout", "sessions", "calls", "stats",
];

/// Why an upstream was refused.
///
/// ```
/// let err = sonde_proxy::RouteTable::parse_upstream("nourl").unwrap_err();
/// assert!(err.to_string().contains("NAME=URL"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// `--upstream` without `=`.
    #[error("upstream {0:?}: expected NAME=URL")]
    NotNameEqualsUrl(String),
    /// A name that is not lowercase letters, digits, `-` and `_`, or one the server uses.
    #[error(
        "upstream name {0:?}: use lowercase letters, digits, '-' and '_' (not one of the server's own: api, v1, metrics, healthz, static, login, logout, sessions, calls, stats)"
    )]
    BadName(String),
    /// A URL that is not `http://` or `https://`.
    #[error("upstream {name}: {url:?} is not an http:// or https:// URL")]
    BadUrl {
        /// The route name.
        name: String,
        /// The URL given.
        url: String,
    },
    /// The same name twice.
    #[error("upstream {0:?} is given twice")]
    Duplicate(String),
}

impl Upstream {
    /// An upstream named `name` at `base`, checked.
    ///
    /// ```
    /// use sonde_proxy::{Provider, Upstream};
    /// assert!(Upstream::new("api", "http://x/v1", Provider::OpenAi).is_err());
    /// assert!(Upstream::new("ollama", "ftp://x", Provider::OpenAi).is_err());
    /// ```
    pub fn new(name: &str, base: &str, provider: Provider) -> Result<Self, RouteError> {
        let good_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !RESERVED.contains(&name);
        if !good_name {
            return Err(RouteError::BadName(name.to_owned()));
        }
        let base = base.trim();
        let lower = base.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        if rest.is_none_or(|host| host.is_empty() || host.starts_with('/')) {
            return Err(RouteError::BadUrl {
                name: name.to_owned(),
                url: base.to_owned(),
            });
        }
        Ok(Upstream {
            name: name.to_owned(),
            base: base.trim_end_matches('/').to_owned(),
            provider,
        })
    }

    /// The upstream URL for `rest` (the path after `/NAME/v1/`) and the query.
    pub fn url_for(&self, rest: &str, query: Option<&str>) -> String {
        let mut url = String::with_capacity(self.base.len() + rest.len() + 2);
        url.push_str(&self.base);
        url.push('/');
        url.push_str(rest.trim_start_matches('/'));
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        url
    }
}

/// Every upstream by route name.
///
/// ```
/// let mut table = sonde_proxy::RouteTable::defaults();
/// table.add(sonde_proxy::RouteTable::parse_upstream("ollama=http://127.0.0.1:11434/v1").unwrap()).unwrap();
/// assert_eq!(table.get("anthropic").unwrap().base, "https://api.anthropic.com/v1");
/// assert_eq!(table.get("ollama").unwrap().provider, sonde_proxy::Provider::OpenAi);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    upstreams: BTreeMap<String, Upstream>,
}

/// OpenAI's API.
pub const OPENAI_DEFAULT: &str = "https://api.openai.com/v1";
/// Anthropic's API.
pub const ANTHROPIC_DEFAULT: &str = "https://api.anthropic.com/v1";

impl RouteTable {
    /// `openai` and `anthropic` at their providers' URLs.
    pub fn defaults() -> Self {
        let mut table = RouteTable::default();
        for (name, base, provider) in [
            ("openai", OPENAI_DEFAULT, Provider::OpenAi),
            ("anthropic", ANTHROPIC_DEFAULT, Provider::Anthropic),
        ] {
            table.upstreams.insert(
                name.to_owned(),
                Upstream {
                    name: name.to_owned(),
                    base: base.to_owned(),
                    provider,
                },
            );
        }
        table
    }

    /// `openai` at `openai`, `anthropic` at `anthropic`.
    ///
    /// ```
    /// let t = sonde_proxy::RouteTable::with_providers("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1").unwrap();
    /// assert_eq!(t.upstreams().count(), 2);
    /// ```
    pub fn with_providers(openai: &str, anthropic: &str) -> Result<Self, RouteError> {
        let mut table = RouteTable::default();
        table.add(Upstream::new("openai", openai, Provider::OpenAi)?)?;
        table.add(Upstream::new("anthropic", anthropic, Provider::Anthropic)?)?;
        Ok(table)
    }

    /// An OpenAI-compatible upstream from `NAME=URL`.
    pub fn parse_upstream(spec: &str) -> Result<Upstream, RouteError> {
        let (name, url) = spec
            .split_once('=')
            .ok_or_else(|| RouteError::NotNameEqualsUrl(spec.to_owned()))?;
        Upstream::new(name.trim(), url, Provider::OpenAi)
    }

    /// Adds `upstream`; its name must be new.
    pub fn add(&mut self, upstream: Upstream) -> Result<(), RouteError> {
        if self.upstreams.contains_key(&upstream.name) {
            return Err(RouteError::Duplicate(upstream.name));
        }
        self.upstreams.insert(upstream.name.clone(), upstream);
        Ok(())
    }

    /// The upstream named `name`.
    pub fn get(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.get(name)
    }

    /// Every upstream, by name.
    pub fn upstreams(&self) -> impl Iterator<Item = &Upstream> {
        self.upstreams.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls_are_checked() {
        assert_eq!(
            RouteTable::parse_upstream("Bad=http://x").unwrap_err(),
            RouteError::BadName("Bad".into())
        );
        assert!(RouteTable::parse_upstream("x=http://").is_err());
        assert!(RouteTable::parse_upstream("x=https://h:1/v1").is_ok());
        let mut t = RouteTable::defaults();
        assert_eq!(
            t.add(Upstream::new("openai", "http://x", Provider::OpenAi).unwrap()),
            Err(RouteError::Duplicate("openai".into()))
        );
    }

    #[test]
    fn urls_join_without_double_slashes() {
        let up = Upstream::new("o", "http://h/v1/", Provider::OpenAi).unwrap();
        assert_eq!(up.url_for("/models", None), "http://h/v1/models");
        assert_eq!(up.url_for("models", Some("")), "http://h/v1/models");
    }
}
