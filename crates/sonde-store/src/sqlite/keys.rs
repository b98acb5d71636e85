//! The store's [`KeyStore`] capability: creating and revoking API keys.

use async_trait::async_trait;
use sonde_model::Timestamp;

use crate::{ApiKey, KeyStore, WriteError};

use super::{SqliteStore, write_failed};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), WriteError> {
        let key = key.clone();
        Self::run(&self.writer, move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO api_keys ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    crate::keys::KEY_COLUMNS
                ),
                rusqlite::params![
                    key.id,
                    key.name,
                    key.org,
                    key.workspace,
                    i64::from(key.admin),
                    key.secret_hash,
                    key.created_at.as_micros(),
                    key.revoked_at.map(|t| t.as_micros())
                ],
            )
            .map_err(write_failed)
        })
        .await
        .map(|_| ())
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, WriteError> {
        let id = id.to_owned();
        Self::run(&self.writer, move |conn| {
            conn.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                rusqlite::params![id, Timestamp::now().as_micros()],
            )
            .map_err(write_failed)
        })
        .await
        .map(|n| n > 0)
    }
}
