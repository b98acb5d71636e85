//! Read-only SQL: three locks (the first keyword, `sqlite3_stmt_readonly`, `PRAGMA
//! query_only`), JSON parameters bound, rows read back as JSON or as packed values.

use async_trait::async_trait;
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{Connection, params_from_iter};
use serde_json::Value;

use crate::capabilities::{ResultBudget, value_bytes};
use crate::{QueryError, QueryLimits, QueryResult, SqlQuery};

use super::SqliteStore;

/// Binds a JSON value: booleans as 0 / 1 (as SQLite stores them), arrays and objects as
/// JSON text.
fn json_to_sql(value: &Value) -> Sql {
    match value {
        Value::Null => Sql::Null,
        Value::Bool(b) => Sql::Integer(i64::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(Sql::Integer)
            .unwrap_or_else(|| Sql::Real(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => Sql::Text(s.clone()),
        other => Sql::Text(other.to_string()),
    }
}

fn sql_to_json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(b.iter().map(|byte| format!("{byte:02x}")).collect()),
    }
}

fn sql_error(e: rusqlite::Error) -> QueryError {
    match e {
        rusqlite::Error::MultipleStatement => QueryError::NotReadOnly,
        other => QueryError::Sql(other.to_string()),
    }
}

/// How many SQLite virtual-machine steps run between two looks at the clock.
const STEPS_PER_DEADLINE_CHECK: i32 = 10_000;

/// Runs one read-only statement, turning each row into a `T` with `row_of` (given the
/// column count); refuses anything that could write. Within `limits`, when given: the
/// statement is interrupted at its deadline (a progress handler) and refused once its
/// result is over a cap.
fn read_only<T>(
    conn: &mut Connection,
    sql: &str,
    params: &[Value],
    limits: Option<&QueryLimits>,
    mut row_of: impl FnMut(&rusqlite::Row<'_>, usize, &mut ResultBudget) -> Result<T, QueryError>,
) -> Result<(Vec<String>, Vec<T>), QueryError> {
    if !crate::starts_read_only(sql) {
        return Err(QueryError::NotReadOnly);
    }
    // query_only makes SQLite itself refuse any write, whatever the statement says.
    conn.pragma_update(None, "query_only", true)
        .map_err(sql_error)?;
    let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(limits) = limits {
        let deadline = std::time::Instant::now() + limits.timeout;
        let stop = stopped.clone();
        conn.progress_handler(
            STEPS_PER_DEADLINE_CHECK,
            Some(move || {
                let late = std::time::Instant::now() >= deadline;
                if late {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                late
            }),
        )
        .map_err(sql_error)?;
    }
    let mut budget = ResultBudget::new(limits);
    let result = (|| {
        let mut stmt = conn.prepare(sql).map_err(sql_error)?;
        if !stmt.readonly() {
            return Err(QueryError::NotReadOnly);
        }
        let expected = stmt.parameter_count();
        if params.len() != expected {
            return Err(QueryError::Param {
                index: params.len().min(expected) + 1,
                reason: format!(
                    "the query takes {expected} parameters, {} given",
                    params.len()
                ),
            });
        }
        let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let bound: Vec<Sql> = params.iter().map(json_to_sql).collect();
        let mut rows = stmt
            .query(params_from_iter(bound.iter()))
            .map_err(sql_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sql_error)? {
            out.push(row_of(row, columns.len(), &mut budget)?);
        }
        Ok((columns, out))
    })();
    let interrupted = stopped.load(std::sync::atomic::Ordering::Relaxed);
    if limits.is_some() {
        conn.progress_handler(0, None::<fn() -> bool>)
            .map_err(sql_error)?;
    }
    conn.pragma_update(None, "query_only", false)
        .map_err(sql_error)?;
    match (result, limits) {
        (Err(QueryError::Sql(_)), Some(limits)) if interrupted => Err(QueryError::Timeout {
            limit: limits.timeout,
        }),
        (result, _) => result,
    }
}

fn run_query(
    conn: &mut Connection,
    sql: &str,
    params: &[Value],
    limits: Option<&QueryLimits>,
) -> Result<QueryResult, QueryError> {
    let (columns, rows) = read_only(conn, sql, params, limits, |row, n, budget| {
        let values: Vec<Value> = (0..n)
            .map(|i| row.get_ref(i).map(sql_to_json))
            .collect::<Result<_, _>>()
            .map_err(sql_error)?;
        budget.take(values.iter().map(value_bytes).sum())?;
        Ok(values)
    })?;
    Ok(QueryResult { columns, rows })
}

/// Runs a read-only statement whose last column is packed values (see
/// [`crate::latency_runs`]) and whose others are the group.
fn read_values(
    conn: &mut Connection,
    sql: &str,
    params: &[Value],
) -> Result<Vec<crate::GroupValues>, QueryError> {
    let mut groups = crate::latency_runs::GroupedValues::default();
    read_only(conn, sql, params, None, |row, n, _| {
        let packed = match row.get_ref(n.saturating_sub(1)).map_err(sql_error)? {
            ValueRef::Blob(bytes) => Some(bytes),
            _ => None,
        };
        groups.add(row, n, packed).map_err(sql_error)
    })?;
    Ok(groups.into_groups())
}

#[async_trait]
impl SqlQuery for SqliteStore {
    fn dialect(&self) -> crate::Dialect {
        crate::Dialect::Sqlite
    }

    fn database(&self) -> Option<&crate::DatabaseIdentity> {
        Some(&self.database)
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult, QueryError> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        Self::run(&self.readers, move |conn| {
            run_query(conn, &sql, &params, None)
        })
        .await
    }

    async fn query_limited(
        &self,
        sql: &str,
        params: &[Value],
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        let (sql, params, limits) = (sql.to_owned(), params.to_vec(), *limits);
        Self::run(&self.queries, move |conn| {
            run_query(conn, &sql, &params, Some(&limits))
        })
        .await
    }

    async fn read_values(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<crate::GroupValues>, QueryError> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        Self::run(&self.readers, move |conn| read_values(conn, &sql, &params)).await
    }
}
