//! The store's [`KeyStore`] capability: creating and revoking API keys.

use async_trait::async_trait;
use sonde_model::Timestamp;

use crate::{ApiKey, KeyStore, WriteError};

use super::{PostgresStore, classify, pool_error};

#[async_trait]
impl KeyStore for PostgresStore {
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), WriteError> {
        let (pool, key) = (self.pool.clone(), key.clone());
        self.on_runtime(async move {
            let client = pool
                .get()
                .await
                .map_err(|e| WriteError::Backend(pool_error(e)))?;
            client
                .execute(
                    &format!(
                        "INSERT INTO api_keys ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        crate::keys::KEY_COLUMNS
                    ),
                    &[
                        &key.id,
                        &key.name,
                        &key.org,
                        &key.workspace,
                        &i32::from(key.admin),
                        &key.secret_hash,
                        &key.created_at.as_micros(),
                        &key.revoked_at.map(|t| t.as_micros()),
                    ],
                )
                .await
                .map(|_| ())
                .map_err(|e| WriteError::Backend(classify(&e)))
        })
        .await
        .ok_or(WriteError::Closed)?
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, WriteError> {
        let (pool, id) = (self.pool.clone(), id.to_owned());
        self.on_runtime(async move {
            let client = pool
                .get()
                .await
                .map_err(|e| WriteError::Backend(pool_error(e)))?;
            client
                .execute(
                    "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    &[&id, &Timestamp::now().as_micros()],
                )
                .await
                .map(|n| n > 0)
                .map_err(|e| WriteError::Backend(classify(&e)))
        })
        .await
        .ok_or(WriteError::Closed)?
    }
}
