//! Record tables partitioned by time (PostgreSQL, schema version 11): every record
//! table (`lifecycle`, `events`, `messages`, `outcome_rewards`, `event_rewards`) is
//! partitioned by range of `ts`, one partition per week (Monday 00:00 UTC to the next),
//! the same weeks in every table. A query for a range of time reads only the weeks it
//! covers, and retention drops a week whole instead of deleting its rows.
//!
//! - **Ids.** PostgreSQL wants the partition key in every unique index of a partitioned
//!   table, so `(tenant, id)` cannot be unique across the table. Each partition has its
//!   own unique index on `(tenant, id)` instead, and inserts use `ON CONFLICT DO
//!   NOTHING` (no target), which PostgreSQL checks against the unique indexes of the
//!   partition a row goes to. The rule that keeps ids unique: a record's time never
//!   moves it to another week. Sources send a record again with the time it had (OTLP
//!   retries, spool replays, derived ids that hold their time); a record whose time
//!   does change comes through [`crate::RecordStore::replace`], which deletes the stored
//!   version by `(tenant, id)` in every partition before inserting the new one.
//! - **Partitions exist before rows arrive.** The writer makes the weeks a batch needs
//!   (all tables at once, in a transaction of their own, under an advisory lock) before
//!   it inserts, and remembers which exist; `record_partitions` lists them. No DEFAULT
//!   partition: rows in one would keep a week from ever being made for their range
//!   (PostgreSQL refuses a partition whose rows sit in the default one).
//! - **Retention** ([`crate::RecordStore::drop_expired_partitions`]) drops a week whose
//!   end is at or before the cutoff when no session active at or after the cutoff has
//!   rows in it; see `postgres/partitions.rs`.
//! - **Migration** from the unpartitioned layout: each table becomes the `_legacy`
//!   partition of a new partitioned table, for every time before the Monday after its
//!   newest row, without copying a row (PostgreSQL reads it once to check the bound);
//!   its primary key stays its unique `(tenant, id)` index. New weeks follow it.

use serde::Serialize;

use crate::Dialect;
use crate::migrations::Types;
use crate::rows::Table;

/// What [`crate::RecordStore::drop_expired_partitions`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DroppedPartitions {
    /// Weeks dropped (each a partition of every record table).
    pub partitions: u64,
    /// Sessions deleted with them: those that lay wholly in a dropped week.
    pub sessions: u64,
    /// Their events.
    pub events: u64,
    /// Their LLM calls.
    pub llm_calls: u64,
}

/// Microseconds in a day.
#[cfg(feature = "postgres")]
const DAY: i64 = 86_400_000_000;
/// Microseconds in a week.
#[cfg(feature = "postgres")]
pub(crate) const WEEK: i64 = 7 * DAY;

/// The start of the week (Monday 00:00 UTC) holding `ts` (microseconds since the epoch).
#[cfg(feature = "postgres")]
pub(crate) fn week_start(ts: i64) -> i64 {
    let day = ts.div_euclid(DAY);
    // The epoch was a Thursday: Monday is three days before.
    (day - (day + 3).rem_euclid(7)) * DAY
}

/// The tables partitioned by time, in the order locks are taken on them (the order
/// writes take them, so that retention and writers never deadlock).
pub(crate) fn partitioned_tables() -> impl Iterator<Item = &'static str> {
    Table::ALL.iter().map(|t| t.name())
}

/// Migration 11: the record tables partitioned by week (PostgreSQL). SQLite has nothing
/// to do: the version is kept so that both backends number alike.
pub(crate) fn partition_migration(t: &Types) -> String {
    match t.dialect {
        Dialect::Sqlite => "SELECT 1".to_owned(),
        Dialect::Postgres => {
            let tables: Vec<String> = partitioned_tables().map(|t| format!("'{t}'")).collect();
            let newest: Vec<String> = partitioned_tables()
                .map(|t| format!("SELECT max(ts) AS ts FROM {t}"))
                .collect();
            POSTGRES_PARTITIONING
                .replace("{tables}", &tables.join(", "))
                .replace("{newest}", &newest.join(" UNION ALL "))
        }
    }
}

/// Migration 11 on PostgreSQL. Each table is renamed `<table>_legacy` (its indexes
/// too), a partitioned table takes its name, columns and indexes (their definitions
/// read before the rename), and the old table is attached as the partition of every
/// time before the Monday after the newest row of any record table — or dropped when
/// every record table is empty. Equivalent indexes of the old table are attached to
/// the new table's, not built again.
const POSTGRES_PARTITIONING: &str = r#"
CREATE TABLE record_partitions (
    suffix TEXT PRIMARY KEY,
    starts TIMESTAMPTZ,
    ends TIMESTAMPTZ NOT NULL
);
DO $$
DECLARE
    t TEXT;
    def TEXT;
    defs TEXT[];
    idx TEXT;
    bound TIMESTAMPTZ;
BEGIN
    SELECT date_trunc('week', max(ts) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '7 days'
        INTO bound FROM ({newest}) AS newest;
    FOREACH t IN ARRAY ARRAY[{tables}] LOOP
        SELECT coalesce(array_agg(pg_get_indexdef(i.indexrelid)), '{}') INTO defs
            FROM pg_index i WHERE i.indrelid = t::regclass AND NOT i.indisprimary;
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_legacy');
        EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I',
            t || '_legacy', t || '_pkey', t || '_legacy_pkey');
        FOR idx IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE i.indrelid = (t || '_legacy')::regclass AND NOT i.indisprimary LOOP
            EXECUTE format('ALTER INDEX %I RENAME TO %I', idx, 'legacy_' || idx);
        END LOOP;
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING GENERATED)
            PARTITION BY RANGE (ts)', t, t || '_legacy');
        FOREACH def IN ARRAY defs LOOP
            EXECUTE def;
        END LOOP;
        IF bound IS NULL THEN
            EXECUTE format('DROP TABLE %I', t || '_legacy');
        ELSE
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
                t, t || '_legacy', bound);
        END IF;
    END LOOP;
    IF bound IS NOT NULL THEN
        INSERT INTO record_partitions (suffix, starts, ends) VALUES ('legacy', NULL, bound);
    END IF;
END
$$;
"#;

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_at_midnight_utc() {
        // 2026-01-01 was a Thursday; its week started on Monday 2025-12-29.
        let new_year = 1_767_225_600_000_000;
        let monday = new_year - 3 * DAY;
        assert_eq!(week_start(new_year), monday);
        assert_eq!(week_start(monday), monday);
        assert_eq!(week_start(monday - 1), monday - WEEK);
        assert_eq!(week_start(monday + WEEK - 1), monday);
        // Before the epoch too.
        assert_eq!(week_start(-1), -3 * DAY);
        assert_eq!(week_start(0), -3 * DAY);
    }
}
