//! Who is calling: API keys (`Authorization: Bearer KEY`), tenants, and the gate that
//! requires keys once any exists or when the server listens beyond loopback.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::Response;
use sonde_store::{ApiKey, Scope, TraceStore};

use crate::refusal::error;

/// Who is calling: the local user (no keys configured, loopback) or a key's holder.
#[derive(Clone)]
pub(crate) enum Caller {
    Local,
    Key(ApiKey),
}

impl Caller {
    /// What the caller may read.
    pub(crate) fn scope(&self) -> Scope {
        match self {
            Caller::Key(key) if !key.admin => Scope::tenant(key.org.clone(), key.workspace.clone()),
            _ => Scope::All,
        }
    }

    /// Whether the caller came with a key (rather than open loopback access).
    pub(crate) fn holds_key(&self) -> bool {
        matches!(self, Caller::Key(_))
    }

    /// Whether the caller may run raw SQL (which can cross tenants).
    pub(crate) fn is_admin(&self) -> bool {
        match self {
            Caller::Local => true,
            Caller::Key(key) => key.admin,
        }
    }
}

/// A tenant's key writes into its own tenant, whatever the record says.
pub(crate) fn stamp_tenant(caller: &Caller, record: &mut sonde_model::Record) {
    if let Caller::Key(key) = caller
        && !key.admin
    {
        record.context.org = Some(key.org.clone());
        record.context.workspace = Some(key.workspace.clone());
    }
}

/// Why a caller was turned away.
pub(crate) enum Denied {
    /// No key, a wrong one, or a revoked one.
    Unauthenticated(&'static str),
    /// The key store could not be read.
    Unavailable(String),
}

/// How long the server goes by its last look at whether any API key exists. Every
/// request without a key needs that answer, and asking the store each time cost a
/// database read per request; so a key created while the server runs is required from
/// at most this long after.
pub const KEYS_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a key lookup may take before the store counts as unreachable for it.
pub const KEY_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The secret in an `Authorization` value: `Bearer SECRET` (the scheme in any case, as
/// HTTP says), or the bare secret.
fn secret_of(authorization: &str) -> &str {
    let value = authorization.trim();
    match value.split_once(' ') {
        Some((scheme, secret)) if scheme.eq_ignore_ascii_case("bearer") => secret.trim(),
        _ => value,
    }
}

/// Tells callers apart by their `Authorization` value (`Bearer KEY`). Keys are required
/// when any is configured, or when the server listens beyond loopback.
///
/// Every key is looked up in the store (on connections statements from outside never
/// hold), so a revoked key stops working at once. The keys the store confirmed are
/// also kept in memory (by their secrets' hashes): while the store cannot be reached,
/// every key it once confirmed is still accepted, so that senders keep sending into the
/// spool. A key the store never confirmed gets 503 then, never 401.
pub(crate) struct Gate {
    store: Arc<dyn TraceStore>,
    /// Bound to a loopback address only: without keys, local callers need none.
    loopback: bool,
    /// When the store was last asked whether keys exist, and its answer.
    keys_seen: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
    /// The keys the store confirmed, by secret hash.
    known: std::sync::Mutex<std::collections::HashMap<String, ApiKey>>,
}

impl Gate {
    pub(crate) fn new(store: Arc<dyn TraceStore>, loopback: bool) -> Self {
        Gate {
            store,
            loopback,
            keys_seen: std::sync::Mutex::new(None),
            known: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Who is calling.
    pub(crate) async fn identify(&self, authorization: Option<&str>) -> Result<Caller, Denied> {
        match authorization.map(secret_of) {
            Some(secret) => self.key(secret).await.map(Caller::Key),
            None => match self.keys_exist().await {
                Ok(false) if self.loopback => Ok(Caller::Local),
                Ok(_) => Err(Denied::Unauthenticated(
                    "this server needs Authorization: Bearer <key> (sonde keys create)",
                )),
                Err(why) => Err(Denied::Unavailable(why)),
            },
        }
    }

    /// The active key whose secret this is, as the store says; as it said before when
    /// it cannot answer now.
    async fn key(&self, secret: &str) -> Result<ApiKey, Denied> {
        let hash = ApiKey::hash(secret);
        let found = tokio::time::timeout(KEY_LOOKUP_TIMEOUT, self.store.find_api_key(secret))
            .await
            .unwrap_or_else(|_| {
                Err(sonde_store::ReadError::Backend(
                    sonde_store::BackendError::new(
                        sonde_store::ErrorClass::Timeout,
                        format!(
                            "the key lookup took longer than {} ms",
                            KEY_LOOKUP_TIMEOUT.as_millis()
                        ),
                    ),
                ))
            });
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        match found {
            Ok(Some(key)) => {
                known.insert(hash, key.clone());
                Ok(key)
            }
            Ok(None) => {
                known.remove(&hash);
                Err(Denied::Unauthenticated("unknown or revoked API key"))
            }
            Err(e) => match known.get(&hash).cloned() {
                Some(key) => {
                    tracing::debug!(error = %e, key = %key.id, "the store cannot check keys; accepting a key it confirmed before");
                    Ok(key)
                }
                None => Err(Denied::Unavailable(format!(
                    "cannot check the API key: {e}"
                ))),
            },
        }
    }

    /// Whether any key is configured, as the store said at most [`KEYS_RECHECK`] ago;
    /// its last answer, however old, when it cannot answer now; an error when it never
    /// could.
    async fn keys_exist(&self) -> Result<bool, String> {
        let seen = *self.keys_seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, exist)) = seen
            && at.elapsed() < KEYS_RECHECK
        {
            return Ok(exist);
        }
        let asked = tokio::time::timeout(KEY_LOOKUP_TIMEOUT, self.store.has_api_keys()).await;
        match asked {
            Ok(Ok(exist)) => {
                *self.keys_seen.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((std::time::Instant::now(), exist));
                Ok(exist)
            }
            Ok(Err(e)) => seen
                .map(|(_, exist)| exist)
                .ok_or_else(|| format!("cannot check for API keys: {e}")),
            Err(_) => seen.map(|(_, exist)| exist).ok_or_else(|| {
                format!(
                    "cannot check for API keys: no answer within {} ms",
                    KEY_LOOKUP_TIMEOUT.as_millis()
                )
            }),
        }
    }
}

/// Checks `Authorization: Bearer KEY`. Keys are required when any is configured, or
/// when the server listens beyond loopback. Secrets are never logged.
pub(crate) async fn authenticate(
    State(gate): State<Arc<Gate>>,
    mut request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        // The dashboard's login keeps the key in a cookie.
        .or_else(|| crate::dashboard::key_in_cookie(request.headers()));
    let caller = match gate.identify(authorization.as_deref()).await {
        Ok(caller) => caller,
        Err(Denied::Unauthenticated(_))
            if crate::dashboard::is_page(request.method(), request.uri().path()) =>
        {
            let target = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            return crate::dashboard::login_page_for(&target);
        }
        Err(Denied::Unauthenticated(why)) => {
            return error(StatusCode::UNAUTHORIZED, "unauthorized", why);
        }
        Err(Denied::Unavailable(why)) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", why);
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}
