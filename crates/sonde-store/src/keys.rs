//! API keys: a secret shown once, stored only as its SHA-256 hash, scoped to a tenant.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sonde_model::Timestamp;

/// An API key as stored: never the secret, only its hash.
///
/// ```
/// let (key, secret) = sonde_store::ApiKey::generate("acme", "prod", Some("ci".into()), false);
/// assert!(secret.starts_with("sonde_"));
/// assert_eq!(key.secret_hash, sonde_store::ApiKey::hash(&secret));
/// assert_ne!(key.secret_hash, secret);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// The key's id (public; shown by `sonde keys list`, used to revoke it).
    pub id: String,
    /// A name to recognise it by.
    pub name: Option<String>,
    /// The tenant's organisation.
    pub org: String,
    /// The tenant's workspace.
    pub workspace: String,
    /// Whether the key may read across tenants (raw SQL included).
    pub admin: bool,
    /// SHA-256 of the secret, hex.
    #[serde(skip)]
    pub secret_hash: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// A new key and its secret (return the secret to the user once; store the key).
    pub fn generate(
        org: &str,
        workspace: &str,
        name: Option<String>,
        admin: bool,
    ) -> (ApiKey, String) {
        let random = format!("{}{}", uuid_simple(), uuid_simple());
        let secret = format!("sonde_{random}");
        let key = ApiKey {
            id: sonde_model::new_id(),
            name,
            org: org.to_owned(),
            workspace: workspace.to_owned(),
            admin,
            secret_hash: Self::hash(&secret),
            created_at: Timestamp::now(),
            revoked_at: None,
        };
        (key, secret)
    }

    /// The stored form of a secret.
    pub fn hash(secret: &str) -> String {
        Sha256::digest(secret.trim().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether the key still works.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// 122 random bits as 32 hex digits (UUID v4; its generator is seeded from the
/// operating system's random source).
fn uuid_simple() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The columns of `api_keys`, in this order.
pub(crate) const KEY_COLUMNS: &str =
    "id, name, org, workspace, admin, secret_hash, created_at, revoked_at";

/// The key in row `values` (in [`KEY_COLUMNS`] order, as JSON from a query).
pub(crate) fn key_from_json(values: &[serde_json::Value]) -> Option<ApiKey> {
    let text = |i: usize| values.get(i).and_then(|v| v.as_str()).map(str::to_owned);
    let int = |i: usize| values.get(i).and_then(serde_json::Value::as_i64);
    Some(ApiKey {
        id: text(0)?,
        name: text(1),
        org: text(2)?,
        workspace: text(3)?,
        admin: int(4)? != 0,
        secret_hash: text(5)?,
        created_at: Timestamp::from_micros(int(6)?),
        revoked_at: int(7).map(Timestamp::from_micros),
    })
}

/// The migration creating `api_keys` (same SQL in both dialects).
pub(crate) const KEYS_MIGRATION: &str = "CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT,
    org TEXT NOT NULL,
    workspace TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);";
