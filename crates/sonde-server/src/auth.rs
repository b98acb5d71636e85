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

/// Tells callers apart by their `Authorization` value (`Bearer KEY`). Keys are required
/// when any is configured, or when the server listens beyond loopback.
pub(crate) struct Gate {
    store: Arc<dyn TraceStore>,
    /// Bound to a loopback address only: without keys, local callers need none.
    loopback: bool,
    /// When the store was last asked whether keys exist, and its answer.
    keys_seen: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

impl Gate {
    pub(crate) fn new(store: Arc<dyn TraceStore>, loopback: bool) -> Self {
        Gate {
            store,
            loopback,
            keys_seen: std::sync::Mutex::new(None),
        }
    }

    /// Who is calling.
    pub(crate) async fn identify(&self, authorization: Option<&str>) -> Result<Caller, Denied> {
        let secret = authorization.map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
        match secret {
            Some(secret) => match self.store.find_api_key(secret).await {
                Ok(Some(key)) => Ok(Caller::Key(key)),
                Ok(None) => Err(Denied::Unauthenticated("unknown or revoked API key")),
                Err(e) => Err(Denied::Unavailable(e.to_string())),
            },
            None if !self.loopback || self.keys_exist().await => Err(Denied::Unauthenticated(
                "this server needs Authorization: Bearer <key> (sonde keys create)",
            )),
            None => Ok(Caller::Local),
        }
    }

    /// Whether any key is configured, as the store said at most [`KEYS_RECHECK`] ago.
    /// When the store cannot tell, its last answer stands (no key can be created in a
    /// store that cannot be reached, and a local sender's spans then go to the spool
    /// instead of being refused); with no answer ever, yes: a failing store must not
    /// open the door.
    async fn keys_exist(&self) -> bool {
        let seen = *self.keys_seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, exist)) = seen
            && at.elapsed() < KEYS_RECHECK
        {
            return exist;
        }
        match self.store.has_api_keys().await {
            Ok(exist) => {
                *self.keys_seen.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((std::time::Instant::now(), exist));
                exist
            }
            Err(_) => seen.is_none_or(|(_, exist)| exist),
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
        .map(str::to_owned);
    let caller = match gate.identify(authorization.as_deref()).await {
        Ok(caller) => caller,
        Err(Denied::Unauthenticated(why)) => {
            return error(StatusCode::UNAUTHORIZED, "unauthorized", why);
        }
        Err(Denied::Unavailable(why)) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "store_error", why);
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}
