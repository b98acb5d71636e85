//! The store's [`KeyStore`] capability: creating and revoking API keys.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use sonde_model::Timestamp;

use crate::{ApiKey, KeyStore, WriteError};

use super::{Param, PostgresStore, classify, params, pool_error};

#[async_trait]
impl KeyStore for PostgresStore {
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), WriteError> {
        let sql = format!(
            "INSERT INTO api_keys ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            crate::keys::KEY_COLUMNS
        );
        let values: Vec<Param<'static>> = vec![
            Box::new(key.id.clone()),
            Box::new(key.name.clone()),
            Box::new(key.org.clone()),
            Box::new(key.workspace.clone()),
            Box::new(i32::from(key.admin)),
            Box::new(key.secret_hash.clone()),
            Box::new(key.created_at.as_micros()),
            Box::new(key.revoked_at.map(|t| t.as_micros())),
        ];
        self.on_runtime(execute(self.pool.clone(), sql, values))
            .await
            .map(|_| ())
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, WriteError> {
        let sql = "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
        let values: Vec<Param<'static>> = vec![
            Box::new(id.to_owned()),
            Box::new(Timestamp::now().as_micros()),
        ];
        self.on_runtime(execute(self.pool.clone(), sql.to_owned(), values))
            .await
            .map(|n| n > 0)
    }
}

/// Runs one statement on a pooled connection; the number of rows it changed.
async fn execute(pool: Pool, sql: String, values: Vec<Param<'static>>) -> Result<u64, WriteError> {
    let client = pool
        .get()
        .await
        .map_err(|e| WriteError::Backend(pool_error(e)))?;
    client
        .execute(&sql, &params(&values))
        .await
        .map_err(|e| WriteError::Backend(classify(&e)))
}
