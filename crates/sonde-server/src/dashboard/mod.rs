//! The web dashboard, served by `sonde serve` at `/`: sessions, a session's trace tree
//! and waterfall, LLM calls, stats.
//!
//! Pages are HTML rendered on the server (with `maud`, which escapes every value put
//! into a page); a little plain JavaScript (`assets/app.js`, served as a file) draws the
//! trace tree of a session from a JSON data island and shows text with `textContent`
//! only. Everything is embedded in the binary: no CDN, no fonts, no scripts from
//! elsewhere, and a Content-Security-Policy that allows only the server's own scripts
//! and styles (no inline script or style). Charts are SVG drawn on the server.
//!
//! Routes: `/` (sessions), `/sessions/{id}`, `/sessions/{id}/nodes.json`, `/calls`,
//! `/calls/{id}`, `/stats`, `/login`, `/logout`, `/assets/...`. A page reads with the
//! caller's scope: a tenant sees its tenant only, and another tenant's session is a
//! 404 page.

mod calls;
mod charts;
mod login;
mod sessions;
mod stats;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};

pub(crate) use login::{is_page, key_in_cookie, login_page_for};

use crate::filters::Params;
use crate::rest::Api;

/// The policy every dashboard response carries: the server's own scripts, styles and
/// data only.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");
const FAVICON: &str = include_str!("../../assets/favicon.svg");

/// The dashboard's routes (behind the same gate as the API).
pub(crate) fn routes(api: Arc<Api>) -> Router {
    Router::new()
        .route("/", get(sessions::list))
        .route("/sessions/{id}", get(sessions::show))
        .route("/sessions/{id}/nodes.json", get(sessions::nodes))
        .route("/calls", get(calls::list))
        .route("/calls/{id}", get(calls::show))
        .route("/stats", get(stats::page))
        .route("/logout", post(login::logout))
        .with_state(api)
        // A session's page carries its records' details: gzip makes it a tenth.
        .layer(tower_http::compression::CompressionLayer::new())
}

/// The routes that need no key: the login form and the assets.
pub(crate) fn open_routes(api: Arc<Api>) -> Router {
    Router::new()
        .route("/login", get(login::form).post(login::submit))
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css") }),
        )
        .route(
            "/assets/favicon.svg",
            get(|| async { asset(FAVICON, "image/svg+xml") }),
        )
        .with_state(api)
        .layer(tower_http::compression::CompressionLayer::new())
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Which section of the navigation a page is in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Sessions,
    Calls,
    Stats,
    None,
}

/// A whole page: the navigation, `body`, and the policy headers.
/// `signed_in`: the caller came with a key (the page offers to log out).
pub(crate) fn page(
    status: StatusCode,
    title: &str,
    section: Section,
    signed_in: bool,
    body: Markup,
) -> Response {
    let nav = [
        ("/", "Sessions", Section::Sessions),
        ("/calls", "LLM calls", Section::Calls),
        ("/stats", "Stats", Section::Stats),
    ];
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sonde" }
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Sonde" }
                    nav {
                        @for (href, label, s) in nav {
                            a href=(href) class=[(s == section).then_some("active")] { (label) }
                        }
                    }
                    @if signed_in {
                        form.logout method="post" action="/logout" { button type="submit" { "Log out" } }
                    }
                }
                main { (body) }
            }
        }
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response();
    secure(&mut response);
    response
}

/// Adds the policy headers to a dashboard response.
pub(crate) fn secure(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// A page saying what went wrong.
pub(crate) fn problem(status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST => "Bad request",
        _ => "Error",
    };
    page(
        status,
        title,
        Section::None,
        false,
        html! {
            h1 { (title) }
            p.problem { (message) }
            p { a href="/" { "All sessions" } }
        },
    )
}

/// A page for a refused filter (bad parameter).
pub(crate) fn refused(r: crate::refusal::Refusal) -> Response {
    problem(r.0, &r.2)
}

/// A page for a store that failed.
pub(crate) fn failed(e: sonde_store::ReadError) -> Response {
    match e {
        sonde_store::ReadError::InvalidCursor => problem(StatusCode::BAD_REQUEST, &e.to_string()),
        sonde_store::ReadError::AmbiguousId { .. } => problem(StatusCode::CONFLICT, &e.to_string()),
        other => problem(StatusCode::INTERNAL_SERVER_ERROR, &other.to_string()),
    }
}

/// JSON embedded in a page as data (`<script type="application/json">`, which no
/// browser runs): `<` written as `\u003c`, so no text in it can close the element.
pub(crate) fn data_island(id: &str, value: &impl serde::Serialize) -> Markup {
    let json = serde_json::to_string(value)
        .unwrap_or_else(|_| "null".to_owned())
        .replace('<', "\\u003c");
    html! { script type="application/json" id=(id) { (PreEscaped(json)) } }
}

/// `params` with `name` set to `value` (or removed when `None`), as a query string.
pub(crate) fn with_param(params: &Params, name: &str, value: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = params
        .0
        .iter()
        .filter(|(k, v)| k != name && !v.trim().is_empty())
        .cloned()
        .collect();
    if let Some(value) = value {
        pairs.push((name.to_owned(), value.to_owned()));
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    }
}

/// `text` percent-encoded for a query string.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A labelled text input of a filter form, filled with the current value.
pub(crate) fn input(params: &Params, name: &str, label: &str, placeholder: &str) -> Markup {
    html! {
        label {
            span { (label) }
            input type="text" name=(name) value=[params.get(name)] placeholder=(placeholder);
        }
    }
}

/// The range filter: presets, and a custom since / until.
pub(crate) fn range_inputs(params: &Params) -> Markup {
    let current = params.get("range").unwrap_or("");
    html! {
        label {
            span { "Range" }
            select name="range" {
                option value="" selected[current.is_empty()] { "all time / custom" }
                @for (name, _) in crate::filters::RANGES {
                    option value=(name) selected[current == name] { "last " (name) }
                }
            }
        }
        label {
            span { "Since (UTC)" }
            input type="datetime-local" name="since" value=[params.get("since")];
        }
        label {
            span { "Until (UTC)" }
            input type="datetime-local" name="until" value=[params.get("until")];
        }
    }
}

/// The links to the first and the next page of a list at `path`, its filters kept.
pub(crate) fn pager(params: &Params, path: &str, next: Option<&str>) -> Markup {
    html! {
        nav.pages {
            @if params.get("cursor").is_some() {
                a href=(format!("{path}{}", with_param(params, "cursor", None))) { "First page" }
            }
            @if let Some(next) = next {
                a.next href=(format!("{path}{}", with_param(params, "cursor", Some(next)))) { "Next page →" }
            }
        }
    }
}

/// A labelled checkbox of a filter form.
pub(crate) fn checkbox(params: &Params, name: &str, label: &str) -> Markup {
    let on = matches!(params.get(name), Some("1" | "true" | "yes" | "on"));
    html! {
        label.check {
            input type="checkbox" name=(name) value="1" checked[on];
            span { (label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_islands_cannot_be_closed_by_their_text() {
        let island = data_island("d", &serde_json::json!({"t": "</script><script>alert(1)"}));
        let html = island.into_string();
        assert_eq!(html.matches("</script>").count(), 1, "{html}");
        assert!(html.contains("\\u003c/script>\\u003cscript>alert(1)"));
    }

    #[test]
    fn links_keep_filters_and_replace_the_cursor() {
        let params = Params(vec![
            ("model".into(), "a b&c".into()),
            ("cursor".into(), "old".into()),
            ("q".into(), "".into()),
        ]);
        assert_eq!(
            with_param(&params, "cursor", Some("n/1")),
            "?model=a%20b%26c&cursor=n%2F1"
        );
        assert_eq!(with_param(&Params::default(), "cursor", None), "");
    }
}
