//! Read-only SQL: a read-only transaction, `?n` parameters rewritten to `$n` and bound
//! from JSON by the types PostgreSQL infers, rows read back as JSON or as packed values.

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use serde_json::Value;
use sonde_model::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use futures_util::TryStreamExt;

use crate::capabilities::{ResultBudget, value_bytes};
use crate::{ErrorClass, QueryError, QueryLimits, QueryResult, SqlQuery};

use super::{Param, PostgresStore, at, classify, params, pool_error};

/// `?1` → `$1`, outside string literals and quoted identifiers.
fn dollar_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                out.push('$');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

/// Converts a JSON parameter to what the statement expects.
fn bind(value: &Value, ty: &Type, index: usize) -> Result<Param<'static>, QueryError> {
    let wrong = |expected: &str| QueryError::Param {
        index,
        reason: format!("expected {expected}, got {value}"),
    };
    if value.is_null() {
        return Ok(Box::new(Option::<String>::None));
    }
    Ok(match *ty {
        Type::INT2 => Box::new(
            value
                .as_i64()
                .and_then(|v| i16::try_from(v).ok())
                .ok_or_else(|| wrong("a small integer"))?,
        ),
        Type::INT4 => Box::new(
            value
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| wrong("an integer"))?,
        ),
        Type::INT8 => Box::new(value.as_i64().ok_or_else(|| wrong("an integer"))?),
        Type::FLOAT4 => Box::new(value.as_f64().ok_or_else(|| wrong("a number"))? as f32),
        Type::FLOAT8 => Box::new(value.as_f64().ok_or_else(|| wrong("a number"))?),
        Type::BOOL => Box::new(value.as_bool().ok_or_else(|| wrong("true or false"))?),
        Type::JSON | Type::JSONB => Box::new(value.clone()),
        Type::TIMESTAMPTZ => {
            let text = value.as_str().ok_or_else(|| wrong("an RFC 3339 time"))?;
            let t: Timestamp = text.parse().map_err(|_| wrong("an RFC 3339 time"))?;
            Box::new(at(t.as_micros()))
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Box::new(match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        }
        ref other => {
            return Err(QueryError::Param {
                index,
                reason: format!(
                    "parameters of type {other} are not supported; cast it, e.g. ?{index}::text"
                ),
            });
        }
    })
}

fn sql_error(e: tokio_postgres::Error) -> QueryError {
    match e.code() {
        Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => QueryError::NotReadOnly,
        _ => {
            let backend = classify(&e);
            match backend.class {
                ErrorClass::Connection => QueryError::Unavailable(backend),
                _ => QueryError::Sql(backend.message),
            }
        }
    }
}

/// A statement of a read-only transaction, prepared, with its parameters bound.
async fn prepare_read_only(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params_json: &[Value],
) -> Result<(tokio_postgres::Statement, Vec<Param<'static>>), QueryError> {
    let inner = tx.prepare(sql).await.map_err(sql_error)?;
    if inner.params().len() != params_json.len() {
        return Err(QueryError::Param {
            index: params_json.len().min(inner.params().len()) + 1,
            reason: format!(
                "the query takes {} parameters, {} given",
                inner.params().len(),
                params_json.len()
            ),
        });
    }
    let bound: Vec<Param<'static>> = params_json
        .iter()
        .zip(inner.params())
        .enumerate()
        .map(|(i, (v, ty))| bind(v, ty, i + 1))
        .collect::<Result<_, _>>()?;
    Ok((inner, bound))
}

/// The statement in `$n` form, or the refusal of anything that does not start as a
/// read. A trailing `;` is dropped; a trailing `-- comment` stays harmless, since the
/// statement is only ever wrapped with a line break after it.
fn read_only_sql(sql: &str) -> Result<String, QueryError> {
    if !crate::starts_read_only(sql) {
        return Err(QueryError::NotReadOnly);
    }
    Ok(dollar_params(sql.trim().trim_end_matches(';')))
}

/// A connection of `pool`, waiting at most `wait` for one when given.
async fn connection(pool: &Pool, wait: Option<std::time::Duration>) -> Result<Object, QueryError> {
    let timeouts = deadpool_postgres::Timeouts {
        wait,
        ..pool.timeouts()
    };
    pool.timeout_get(&timeouts)
        .await
        .map_err(|e| QueryError::Unavailable(pool_error(e)))
}

/// A read-only transaction: PostgreSQL itself refuses any write in it. With `limits`,
/// PostgreSQL also stops the statement at `limits.timeout`.
async fn read_only_tx<'a>(
    client: &'a mut Object,
    limits: Option<&QueryLimits>,
) -> Result<deadpool_postgres::Transaction<'a>, QueryError> {
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(sql_error)?;
    if let Some(limits) = limits {
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            limits.timeout.as_millis().max(1)
        ))
        .await
        .map_err(sql_error)?;
    }
    Ok(tx)
}

/// Runs a read-only statement whose last column is packed values (see
/// [`crate::latency_runs`]) and whose others are the group.
async fn read_values(
    pool: Pool,
    sql: String,
    params_json: Vec<Value>,
) -> Result<Vec<crate::GroupValues>, QueryError> {
    let sql = read_only_sql(&sql)?;
    let mut client = connection(&pool, None).await?;
    let tx = read_only_tx(&mut client, None).await?;
    let (stmt, bound) = prepare_read_only(&tx, &sql, &params_json).await?;
    let n = stmt.columns().len();
    let mut groups = crate::latency_runs::GroupedValues::default();
    for row in tx.query(&stmt, &params(&bound)).await.map_err(sql_error)? {
        let packed = row
            .try_get::<_, Option<&[u8]>>(n.saturating_sub(1))
            .map_err(sql_error)?;
        groups.add(&row, n, packed).map_err(sql_error)?;
    }
    tx.rollback().await.map_err(sql_error)?;
    Ok(groups.into_groups())
}

/// Reads a column of a row as JSON.
type ReadJson = fn(&Row, usize) -> Result<Value, tokio_postgres::Error>;

/// How to read a column of `ty` as JSON without `row_to_json`, for the types whose
/// JSON form is plain: integers, doubles, text and booleans (the same values
/// `row_to_json` gives, without formatting and parsing them).
fn native_json(ty: &Type) -> Option<ReadJson> {
    Some(match *ty {
        Type::INT2 => |r, i| {
            Ok(r.try_get::<_, Option<i16>>(i)?
                .map_or(Value::Null, Value::from))
        },
        Type::INT4 => |r, i| {
            Ok(r.try_get::<_, Option<i32>>(i)?
                .map_or(Value::Null, Value::from))
        },
        Type::INT8 => |r, i| {
            Ok(r.try_get::<_, Option<i64>>(i)?
                .map_or(Value::Null, Value::from))
        },
        Type::FLOAT8 => |r, i| {
            Ok(r.try_get::<_, Option<f64>>(i)?
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number))
        },
        Type::TEXT | Type::VARCHAR => |r, i| {
            Ok(r.try_get::<_, Option<String>>(i)?
                .map_or(Value::Null, Value::String))
        },
        Type::BOOL => |r, i| {
            Ok(r.try_get::<_, Option<bool>>(i)?
                .map_or(Value::Null, Value::Bool))
        },
        _ => return None,
    })
}

/// How a statement's rows are read as JSON values.
enum RowForm {
    /// `EXPLAIN`: every column as text.
    Explain,
    /// Integers, floats, text and booleans, read as they come.
    Native,
    /// Anything else, through `row_to_json` (the statement wrapped).
    Wrapped,
}

/// One row as JSON values, read in `form`.
fn row_values(
    row: &Row,
    form: &RowForm,
    stmt_columns: &[tokio_postgres::Column],
    columns: &[String],
) -> Result<Vec<Value>, QueryError> {
    match form {
        RowForm::Explain => Ok((0..columns.len())
            .map(|i| {
                row.try_get::<_, Option<String>>(i)
                    .ok()
                    .flatten()
                    .map_or(Value::Null, Value::String)
            })
            .collect()),
        RowForm::Native => stmt_columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let read = native_json(column.type_()).unwrap_or(|_, _| Ok(Value::Null));
                read(row, i).map_err(sql_error)
            })
            .collect(),
        RowForm::Wrapped => {
            let text: String = row.try_get(0).map_err(sql_error)?;
            let object: serde_json::Map<String, Value> =
                serde_json::from_str(&text).map_err(|e| QueryError::Sql(e.to_string()))?;
            Ok(columns
                .iter()
                .map(|c| object.get(c).cloned().unwrap_or(Value::Null))
                .collect())
        }
    }
}

/// Runs a read-only statement on `client` in a read-only transaction, its rows read as
/// they arrive and counted against `limits`.
async fn query_rows(
    client: &mut Object,
    sql: &str,
    params_json: &[Value],
    limits: Option<&QueryLimits>,
) -> Result<QueryResult, QueryError> {
    let tx = read_only_tx(client, limits).await?;
    let (inner, bound) = prepare_read_only(&tx, sql, params_json).await?;
    let columns: Vec<String> = inner
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let form = if sql.trim_start().to_ascii_uppercase().starts_with("EXPLAIN") {
        RowForm::Explain
    } else if inner
        .columns()
        .iter()
        .all(|c| native_json(c.type_()).is_some())
    {
        RowForm::Native
    } else {
        RowForm::Wrapped
    };
    let stmt = match form {
        // Other values come back through row_to_json, so that every type (numeric,
        // arrays, timestamps...) has a JSON form. The line break ends any trailing
        // `-- comment` before the wrapping goes on.
        RowForm::Wrapped => tx
            .prepare_typed(
                &format!("SELECT row_to_json(q)::text FROM ({sql}\n) q"),
                inner.params(),
            )
            .await
            .map_err(sql_error)?,
        _ => inner.clone(),
    };
    let stream = tx
        .query_raw(&stmt, params(&bound))
        .await
        .map_err(sql_error)?;
    let mut stream = std::pin::pin!(stream);
    let mut budget = ResultBudget::new(limits);
    let mut rows = Vec::new();
    while let Some(row) = stream.try_next().await.map_err(sql_error)? {
        let values = row_values(&row, &form, inner.columns(), &columns)?;
        budget.take(values.iter().map(value_bytes).sum())?;
        rows.push(values);
    }
    tx.rollback().await.map_err(sql_error)?;
    Ok(QueryResult { columns, rows })
}

async fn run_query(
    pool: Pool,
    sql: String,
    params_json: Vec<Value>,
) -> Result<QueryResult, QueryError> {
    let sql = read_only_sql(&sql)?;
    let mut client = connection(&pool, None).await?;
    query_rows(&mut client, &sql, &params_json, None).await
}

/// How much longer than the statement timeout the store waits for PostgreSQL to stop a
/// statement itself before it cancels it and drops the connection.
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs a statement from outside on a connection of `pool` within `limits`; the
/// connection's session state is reset (`DISCARD ALL`) before it goes back to the pool,
/// and a connection that cannot be reset, or whose statement outlived the timeout, is
/// closed instead.
async fn run_limited(
    pool: Pool,
    sql: String,
    params_json: Vec<Value>,
    limits: QueryLimits,
) -> Result<QueryResult, QueryError> {
    let sql = read_only_sql(&sql)?;
    let mut client = connection(&pool, Some(limits.timeout)).await?;
    let cancel = client.cancel_token();
    let ran = tokio::time::timeout(
        limits.timeout + CANCEL_GRACE,
        query_rows(&mut client, &sql, &params_json, Some(&limits)),
    )
    .await;
    let Ok(result) = ran else {
        let _ = cancel.cancel_query(tokio_postgres::NoTls).await;
        drop(Object::take(client));
        return Err(QueryError::Timeout {
            limit: limits.timeout,
        });
    };
    if client.batch_execute("DISCARD ALL").await.is_err() {
        drop(Object::take(client));
    }
    match result {
        Err(QueryError::Sql(message)) if message.contains("statement timeout") => {
            Err(QueryError::Timeout {
                limit: limits.timeout,
            })
        }
        other => other,
    }
}

#[async_trait]
impl SqlQuery for PostgresStore {
    fn dialect(&self) -> crate::Dialect {
        crate::Dialect::Postgres
    }

    fn database(&self) -> Option<&crate::DatabaseIdentity> {
        Some(&self.database)
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult, QueryError> {
        self.on_runtime(run_query(
            self.pool.clone(),
            sql.to_owned(),
            params.to_vec(),
        ))
        .await
    }

    async fn query_limited(
        &self,
        sql: &str,
        params: &[Value],
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        self.on_runtime(run_limited(
            self.queries.clone(),
            sql.to_owned(),
            params.to_vec(),
            *limits,
        ))
        .await
    }

    async fn read_values(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<crate::GroupValues>, QueryError> {
        self.on_runtime(read_values(
            self.pool.clone(),
            sql.to_owned(),
            params.to_vec(),
        ))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_parameters_become_dollar_parameters_outside_quotes() {
        assert_eq!(
            dollar_params("SELECT ?1, '?2', \"a?\" FROM t WHERE x = ?2"),
            "SELECT $1, '?2', \"a?\" FROM t WHERE x = $2"
        );
    }
}
