//! Access with keys: when the server needs a key (any key exists, or it listens beyond
//! loopback), a page asks for one once and keeps it in a cookie that scripts cannot
//! read (`HttpOnly`), that no other site's page sends (`SameSite=Strict`), and that
//! travels only over TLS when the server is reached over it (`Secure`, when a proxy
//! says `X-Forwarded-Proto: https`). The gate reads the cookie as it reads
//! `Authorization: Bearer`.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Section, page};
use crate::rest::Api;

/// The cookie holding the key.
pub(crate) const COOKIE: &str = "sonde_key";

/// The key in the request's cookie, if any.
pub(crate) fn key_in_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether a request is for a dashboard page (which a browser opens), rather than the
/// API, OTLP or metrics.
pub(crate) fn is_page(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::GET
        && !["/api/", "/v1/", "/metrics", "/healthz"]
            .iter()
            .any(|p| path.starts_with(p))
}

/// Where a refused page request goes: the login form, coming back to `path` after.
pub(crate) fn login_page_for(path_and_query: &str) -> Response {
    let next = super::encode(path_and_query);
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// Query of `GET /login`.
#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// A local path to go back to (never another site).
fn local(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn form_page(status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    let body: Markup = html! {
        h1 { "Log in" }
        p { "This server needs an API key (" code { "sonde keys create" } "). It is kept in a cookie for this site only." }
        @if let Some(problem) = problem { p.problem #login-problem { (problem) } }
        form.login method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label { span { "API key" } input type="password" name="key" autocomplete="current-password" required autofocus; }
            button type="submit" { "Log in" }
        }
    };
    page(status, "Log in", Section::None, false, body)
}

/// `GET /login`.
pub(crate) async fn form(Query(q): Query<Next>) -> Response {
    form_page(StatusCode::OK, &local(q.next.as_deref()), None)
}

/// The body of `POST /login`.
#[derive(Deserialize)]
pub(crate) struct Login {
    key: String,
    next: Option<String>,
}

/// `POST /login`: checks the key, sets the cookie and goes back.
pub(crate) async fn submit(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Form(login): Form<Login>,
) -> Response {
    let next = local(login.next.as_deref());
    let secret = login.key.trim();
    match api.store.find_api_key(secret).await {
        Ok(Some(_)) => {
            let secure = headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
            let cookie = format!(
                "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict{}",
                if secure { "; Secure" } else { "" }
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Ok(None) => form_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("unknown or revoked API key"),
        ),
        Err(e) => form_page(StatusCode::SERVICE_UNAVAILABLE, &next, Some(&e.to_string())),
    }
}

/// `POST /logout`: forgets the key.
pub(crate) async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sonde_key=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_read_from_its_cookie_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sonde_key=sk-x ; b=2"),
        );
        assert_eq!(key_in_cookie(&headers).as_deref(), Some("sk-x"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other_sonde_key=sk-x"),
        );
        assert_eq!(key_in_cookie(&headers), None);
    }

    #[test]
    fn logins_go_back_only_to_local_pages() {
        assert_eq!(local(Some("/sessions/x?a=1")), "/sessions/x?a=1");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "x"] {
            assert_eq!(local(Some(bad)), "/", "{bad}");
        }
    }
}
