//! The weekly partitions of the record tables (see [`crate::partitions`]): made before
//! the rows that need them are written, dropped whole by retention.

use std::sync::{Arc, Mutex, PoisonError};

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::error::SqlState;

use crate::partitions::{DroppedPartitions, WEEK, partitioned_tables, week_start};

use super::at;

/// The advisory lock held while weeks are made or dropped: the migrations' own, since
/// making a week updates the parent tables' catalog rows, which the query role's grant
/// (made while migrating) updates too ("tuple concurrently updated" when both ran).
const PARTITION_LOCK: i64 = super::schema::MIGRATION_LOCK;

/// One range of `record_partitions`: from `starts` (none: from the beginning of time)
/// to `ends`, in microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    starts: Option<i64>,
    ends: i64,
}

impl Range {
    fn covers(&self, ts: i64) -> bool {
        self.starts.is_none_or(|s| s <= ts) && ts < self.ends
    }
}

/// The ranges this process knows to exist. Another process may drop one (retention):
/// an insert then fails with "no partition", and the writer forgets what it knew and
/// makes the week again.
#[derive(Debug, Default, Clone)]
pub(super) struct Partitions {
    known: Arc<Mutex<Vec<Range>>>,
}

/// The suffix of the partitions of the week starting at `week` (`w20260105`).
fn suffix(week: i64) -> String {
    format!("w{}", at(week).format("%Y%m%d"))
}

/// Whether `e` is PostgreSQL's refusal of a row for which no partition exists.
pub(super) fn is_missing_partition(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::CHECK_VIOLATION && db.message().starts_with("no partition")
    })
}

impl Partitions {
    /// The weeks of `times` no known range covers.
    fn missing(&self, times: impl Iterator<Item = i64>) -> Vec<i64> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let mut weeks: Vec<i64> = times
            .filter(|ts| !known.iter().any(|r| r.covers(*ts)))
            .map(week_start)
            .collect();
        weeks.sort_unstable();
        weeks.dedup();
        weeks
    }

    /// Forgets every range (they are read again before the next write needs one).
    pub(super) fn forget(&self) {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Makes the weeks that rows at `times` need and no partition holds yet.
    pub(super) async fn ensure(
        &self,
        pool: &Pool,
        times: impl Iterator<Item = i64> + Clone,
    ) -> Result<(), super::BackendError> {
        if self.missing(times.clone()).is_empty() {
            return Ok(());
        }
        let mut client = pool.get().await.map_err(super::pool_error)?;
        let fail = |e: tokio_postgres::Error| super::classify(&e);
        self.reload(&client).await.map_err(fail)?;
        for week in self.missing(times) {
            let tx = client.transaction().await.map_err(fail)?;
            make_week(&tx, week).await.map_err(fail)?;
            tx.commit().await.map_err(fail)?;
        }
        self.reload(&client).await.map_err(fail)
    }

    /// Reads the ranges from `record_partitions`.
    async fn reload(&self, client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
        let rows = client
            .query(
                "SELECT (EXTRACT(EPOCH FROM starts) * 1000000)::int8,
                        (EXTRACT(EPOCH FROM ends) * 1000000)::int8
                 FROM record_partitions",
                &[],
            )
            .await?;
        let ranges = rows
            .iter()
            .map(|r| {
                Ok(Range {
                    starts: r.try_get(0)?,
                    ends: r.try_get(1)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
        *self.known.lock().unwrap_or_else(PoisonError::into_inner) = ranges;
        Ok(())
    }
}

/// Makes the partitions of the week starting at `week` in every record table, each
/// with its unique `(tenant, id)` index, unless another process made them first.
async fn make_week(tx: &Transaction<'_>, week: i64) -> Result<(), tokio_postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await?;
    let (starts, ends) = (at(week), at(week + WEEK));
    let covered = tx
        .query_opt(
            "SELECT 1 FROM record_partitions
             WHERE (starts IS NULL OR starts <= $1) AND ends > $1",
            &[&starts],
        )
        .await?
        .is_some();
    if covered {
        return Ok(());
    }
    let suffix = suffix(week);
    let mut sql = String::new();
    for table in partitioned_tables() {
        sql.push_str(&format!(
            "CREATE TABLE \"{table}_{suffix}\" PARTITION OF {table}
                 FOR VALUES FROM ('{}') TO ('{}');
             CREATE UNIQUE INDEX \"{table}_{suffix}_key\" ON \"{table}_{suffix}\" (tenant, id);
            ",
            starts.to_rfc3339(),
            ends.to_rfc3339()
        ));
    }
    tx.batch_execute(&sql).await?;
    tx.execute(
        "INSERT INTO record_partitions (suffix, starts, ends) VALUES ($1, $2, $3)",
        &[&suffix, &starts, &ends],
    )
    .await?;
    Ok(())
}

/// Drops every week that ends at or before `cutoff` and holds no row of a session
/// whose last record is at or after it (such a week is kept whole: its rows of older
/// sessions go as retention deletes those sessions one by one). With a week go the
/// sessions that lay wholly in it (with their steps and search documents; dropping
/// oldest first, a session that crossed into it from a week already dropped counts as
/// wholly in it) and the
/// roll-ups of its hours, which counted its LLM calls and nothing else. One week per
/// transaction, oldest first.
pub(super) async fn drop_expired(
    pool: &Pool,
    partitions: &Partitions,
    cutoff: i64,
) -> Result<DroppedPartitions, super::BackendError> {
    let fail = |e: tokio_postgres::Error| super::classify(&e);
    let mut client = pool.get().await.map_err(super::pool_error)?;
    let cutoff = at(cutoff);
    let weeks = client
        .query(
            "SELECT suffix, starts, ends FROM record_partitions WHERE ends <= $1 ORDER BY ends",
            &[&cutoff],
        )
        .await
        .map_err(fail)?;
    let mut dropped = DroppedPartitions::default();
    for week in &weeks {
        let suffix: String = week.get(0);
        let starts: Option<chrono::DateTime<chrono::Utc>> = week.get(1);
        let ends: chrono::DateTime<chrono::Utc> = week.get(2);
        let tx = client.transaction().await.map_err(fail)?;
        if let Some(gone) = drop_week(&tx, &suffix, starts, ends, cutoff)
            .await
            .map_err(fail)?
        {
            tx.commit().await.map_err(fail)?;
            dropped.partitions += 1;
            dropped.sessions += gone.sessions;
            dropped.events += gone.events;
            dropped.llm_calls += gone.llm_calls;
        }
    }
    partitions.forget();
    Ok(dropped)
}

/// [`drop_expired`] for one week, in `tx`: what went, or none when the week must stay.
async fn drop_week(
    tx: &Transaction<'_>,
    suffix: &str,
    starts: Option<chrono::DateTime<chrono::Utc>>,
    ends: chrono::DateTime<chrono::Utc>,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<Option<DroppedPartitions>, tokio_postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await?;
    // Writers wait from here (reads go on); they lock the tables in this order too.
    let tables: Vec<&str> = partitioned_tables().collect();
    tx.batch_execute(&format!(
        "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
        tables.join(", ")
    ))
    .await?;
    let holds_rows_of = tables
        .iter()
        .map(|t| {
            format!(
                "EXISTS (SELECT 1 FROM \"{t}_{suffix}\" r
                         WHERE r.tenant = s.tenant AND r.session_id = s.session_id)"
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    let kept = tx
        .query_opt(
            &format!(
                "SELECT 1 FROM sessions s WHERE s.last_at >= $1 AND s.started_at < $2
                 AND ({holds_rows_of}) LIMIT 1"
            ),
            &[&cutoff, &ends],
        )
        .await?
        .is_some();
    if kept {
        return Ok(None);
    }
    // The sessions that lay wholly in this week: those whose records are all before its
    // end and, unless no older week is left (every row is in some week), after its
    // start.
    let older_left = match starts {
        None => false,
        Some(starts) => tx
            .query_opt(
                "SELECT 1 FROM record_partitions WHERE ends <= $1",
                &[&starts],
            )
            .await?
            .is_some(),
    };
    let since = if older_left { starts } else { None };
    let gone = tx
        .query_one(
            "WITH gone AS (
                 DELETE FROM sessions WHERE last_at < $2 AND ($1::timestamptz IS NULL OR started_at >= $1)
                 RETURNING tenant, session_id, event_count, llm_calls
             ), steps_gone AS (
                 DELETE FROM steps st USING gone g
                 WHERE st.tenant = g.tenant AND st.session_id = g.session_id
             ), docs_gone AS (
                 DELETE FROM search_docs d USING gone g
                 WHERE d.tenant = g.tenant AND d.session_id = g.session_id
             )
             SELECT count(*)::int8, coalesce(sum(event_count), 0)::int8,
                    coalesce(sum(llm_calls), 0)::int8
             FROM gone",
            &[&since, &ends],
        )
        .await?;
    // Every LLM call of these hours (days, for the key roll-up) was in this week.
    let micros = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros();
    let (from, to) = (starts.map_or(i64::MIN, micros), micros(ends));
    for rollup in [
        "llm_hourly",
        "llm_hourly_runs",
        "llm_daily",
        "llm_daily_runs",
        "llm_key_daily",
        "llm_key_daily_runs",
    ] {
        tx.execute(
            &format!("DELETE FROM {rollup} WHERE hour >= $1 AND hour < $2"),
            &[&from, &to],
        )
        .await?;
    }
    let drops: Vec<String> = tables.iter().map(|t| format!("\"{t}_{suffix}\"")).collect();
    tx.batch_execute(&format!("DROP TABLE {}", drops.join(", ")))
        .await?;
    tx.execute(
        "DELETE FROM record_partitions WHERE suffix = $1",
        &[&suffix],
    )
    .await?;
    let count = |i: usize| -> Result<u64, tokio_postgres::Error> {
        Ok(u64::try_from(gone.try_get::<_, i64>(i)?).unwrap_or(0))
    };
    Ok(Some(DroppedPartitions {
        partitions: 1,
        sessions: count(0)?,
        events: count(1)?,
        llm_calls: count(2)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_is_named_by_its_monday() {
        assert_eq!(suffix(1_767_571_200_000_000), "w20260105");
    }

    #[test]
    fn times_in_known_ranges_need_no_week() {
        let monday = 1_767_571_200_000_000;
        let partitions = Partitions::default();
        partitions.known.lock().unwrap().push(Range {
            starts: None,
            ends: monday,
        });
        assert!(partitions.missing([monday - 1, 0].into_iter()).is_empty());
        assert_eq!(
            partitions.missing([monday, monday + 5, monday + WEEK].into_iter()),
            vec![monday, monday + WEEK]
        );
        partitions.forget();
        assert_eq!(partitions.missing([0].into_iter()), vec![week_start(0)]);
    }
}
