//! Latency runs: the stored multisets of latencies and times to first token behind
//! exact percentiles.
//!
//! Sums roll up into counters; order statistics do not. So next to each roll-up row
//! the store keeps the values themselves, packed as 8-byte big-endian IEEE doubles (the
//! bytes of PostgreSQL's `float8send`) in *runs*: rows of `llm_hourly_runs` (hour ×
//! provider × model × route) and `llm_key_daily_runs` (day × API key, calls without a
//! key under the empty key), each holding at most [`RUN_VALUES`] values. A write appends
//! its calls' values to the newest run of each (granule, dimensions), or starts a new
//! one when it is full; a deletion takes each value out of the first run holding it. A
//! percentile query reads the runs of its range — 8 bytes per call instead of a whole
//! event row — and selects the ranks in memory ([`exact_percentiles`]). Runs are
//! multisets, not sorted lists: appending is then a concatenation, which PostgreSQL does
//! atomically in an upsert, so that concurrent writers cannot lose each other's values.

use crate::GroupValues;
use crate::rows::StoredRow;

/// The most values a write appends to one run before it starts the next: bounds what a
/// write reads and rewrites per (granule, dimensions), and keeps few rows per granule.
pub(crate) const RUN_VALUES: usize = 4096;

/// Bytes per packed value.
const VALUE_BYTES: usize = 8;

/// The latencies and times to first token a set of LLM calls adds to (or takes from)
/// one run key.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RunValues {
    pub latencies: Vec<f64>,
    pub ttfts: Vec<f64>,
}

impl RunValues {
    /// How many values the larger of the two lists holds.
    pub(crate) fn len(&self) -> usize {
        self.latencies.len().max(self.ttfts.len())
    }
}

/// The key columns of a run table, in order: the roll-up's key, the first seven of
/// [`ROLLUP_COLUMNS`](crate::rows::ROLLUP_COLUMNS).
pub(crate) fn key_columns() -> &'static [&'static str] {
    &crate::rows::ROLLUP_COLUMNS[..7]
}

/// `WHERE` over a run table's key columns, parameters 1 to 7; `p` maps a parameter
/// number to the dialect's placeholder (`?1`, `$1`).
pub(crate) fn key_match(p: impl Fn(usize) -> String) -> String {
    key_columns()
        .iter()
        .enumerate()
        .map(|(i, column)| format!("{column} = {}", p(i + 1)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Values packed as big-endian doubles.
pub(crate) fn pack(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// How many values a packed run holds.
pub(crate) fn packed_len(bytes: &[u8]) -> usize {
    bytes.len() / VALUE_BYTES
}

/// Rows of a statement whose last column is packed values and whose other columns are
/// their group, joined by group: each distinct group once, in the order groups first
/// appear, with the values of all its rows. Each row's values are unpacked straight into
/// its group's list (no list per row: with tens of thousands of runs in a range, the
/// allocations per row cost more than the unpacking).
#[derive(Debug, Default)]
pub(crate) struct GroupedValues {
    groups: Vec<GroupValues>,
    index: std::collections::HashMap<Vec<Option<String>>, usize>,
}

impl GroupedValues {
    /// Adds a row of `n` columns whose last one is `packed` values.
    pub(crate) fn add<R: StoredRow>(
        &mut self,
        row: &R,
        n: usize,
        packed: Option<&[u8]>,
    ) -> Result<(), R::Error> {
        let group: Vec<Option<String>> = (0..n.saturating_sub(1))
            .map(|i| row.text(i))
            .collect::<Result<_, _>>()?;
        let at = match self.index.get(&group) {
            Some(&at) => at,
            None => {
                self.index.insert(group.clone(), self.groups.len());
                self.groups.push((group, Vec::new()));
                self.groups.len() - 1
            }
        };
        if let (Some(bytes), Some((_, values))) = (packed, self.groups.get_mut(at)) {
            unpack_into(bytes, values);
        }
        Ok(())
    }

    /// The groups and their values.
    pub(crate) fn into_groups(self) -> Vec<GroupValues> {
        self.groups
    }
}

/// Appends the values of a packed run to `out` (a trailing partial value is ignored).
pub(crate) fn unpack_into(bytes: &[u8], out: &mut Vec<f64>) {
    out.extend(
        bytes
            .chunks_exact(VALUE_BYTES)
            .map(|c| f64::from_be_bytes(c.try_into().unwrap_or([0; VALUE_BYTES]))),
    );
}

/// Takes one occurrence of `value` (same bits) out of the first of `runs` holding it;
/// false when none does.
pub(crate) fn remove_one(runs: &mut [Vec<u8>], value: f64) -> bool {
    let wanted = value.to_be_bytes();
    for run in runs.iter_mut() {
        if let Some(i) = run.chunks_exact(VALUE_BYTES).position(|c| c == wanted) {
            let last = run.len() - VALUE_BYTES;
            let at = i * VALUE_BYTES;
            run.copy_within(last.., at);
            run.truncate(last);
            return true;
        }
    }
    false
}

/// The run a write appends `adding` values to, given the newest stored run of the key
/// (its number and how many values it holds): that one while it has room, else the next.
pub(crate) fn run_to_append_to(newest: Option<(i64, usize)>, adding: usize) -> i64 {
    match newest {
        Some((run, held)) if held + adding <= RUN_VALUES => run,
        Some((run, _)) => run + 1,
        None => 0,
    }
}

/// A stored run: its number, packed latencies, packed times to first token.
pub(crate) type StoredRun = (i64, Vec<u8>, Vec<u8>);

/// A run changed by a deletion: its number, and its packed lists, or `None` when it
/// was left empty (and is to be deleted).
pub(crate) type ChangedRun = (i64, Option<(Vec<u8>, Vec<u8>)>);

/// Takes `values` out of a key's stored runs (one occurrence each); returns the runs
/// that changed, with `None` for those left empty (to be deleted).
pub(crate) fn take_out(stored: Vec<StoredRun>, values: &RunValues) -> Vec<ChangedRun> {
    let numbers: Vec<i64> = stored.iter().map(|(run, _, _)| *run).collect();
    let (mut latencies, mut ttfts): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
        stored.into_iter().map(|(_, l, t)| (l, t)).unzip();
    let before: Vec<usize> = latencies
        .iter()
        .zip(&ttfts)
        .map(|(l, t)| l.len() + t.len())
        .collect();
    for v in &values.latencies {
        remove_one(&mut latencies, *v);
    }
    for v in &values.ttfts {
        remove_one(&mut ttfts, *v);
    }
    numbers
        .into_iter()
        .zip(latencies.into_iter().zip(ttfts))
        .zip(before)
        .filter(|((_, (l, t)), before)| l.len() + t.len() != *before)
        .map(|((run, (l, t)), _)| {
            if l.is_empty() && t.is_empty() {
                (run, None)
            } else {
                (run, Some((l, t)))
            }
        })
        .collect()
}

/// The run tables and their backfill from existing events: `hour_expr` and `day_expr`
/// are the dialect's hour and day of `ts` (in microseconds), `packed` packs a column's
/// values in an aggregate, `empty` is the empty blob.
pub(crate) fn runs_migration(
    int: &str,
    blob: &str,
    hour_expr: &str,
    day_expr: &str,
    packed: impl Fn(&str) -> String,
    empty: &str,
) -> String {
    let table = |name: &str| runs_table(name, int, blob);
    let values = format!(
        "0, coalesce({}, {empty}), coalesce({}, {empty})
         FROM events WHERE event_type = 'llm' AND (latency_ms IS NOT NULL OR ttft_ms IS NOT NULL)
         GROUP BY 1, 2, 3, 4, 5, 6, 7",
        packed("latency_ms"),
        packed("ttft_ms")
    );
    format!(
        "{}\n{}
        INSERT INTO llm_hourly_runs
        SELECT {hour_expr}, coalesce(org, ''), coalesce(workspace, ''), coalesce(provider, ''),
               coalesce(model, ''), '', coalesce(request_path, ''), {values};
        INSERT INTO llm_key_daily_runs
        SELECT {day_expr}, coalesce(org, ''), coalesce(workspace, ''), '', '',
               coalesce(api_key_hash, ''), '', {values};",
        table("llm_hourly_runs"),
        table("llm_key_daily_runs")
    )
}

/// A run table's statement: a roll-up's key, the run's number and its packed values.
pub(crate) fn runs_table(name: &str, int: &str, blob: &str) -> String {
    format!(
        "CREATE TABLE {name} (
                hour {int} NOT NULL,
                org TEXT NOT NULL, workspace TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
                api_key_hash TEXT NOT NULL, request_path TEXT NOT NULL,
                run {int} NOT NULL, latencies {blob} NOT NULL, ttfts {blob} NOT NULL,
                PRIMARY KEY (hour, org, workspace, provider, model, api_key_hash, request_path, run)
            );"
    )
}

/// Exact percentiles `ps` (in percent) of `values`, with linear interpolation between
/// the closest ranks (`rank = p·(n−1)`, PostgreSQL's `percentile_cont`); `values` is
/// reordered. Empty when `values` is.
///
/// Selection, not sorting: each needed rank is found by `select_nth_unstable` in the
/// part of the slice right of the previous one, so the work is linear in `n`.
pub(crate) fn exact_percentiles(values: &mut [f64], ps: &[u64]) -> Vec<f64> {
    let n = values.len() as u64;
    if n == 0 {
        return Vec::new();
    }
    // Each p's lower rank and the weight of the next one, computed in integers.
    let ranks: Vec<(usize, f64)> = ps
        .iter()
        .map(|p| {
            let scaled = (n - 1) * p;
            ((scaled / 100) as usize, (scaled % 100) as f64 / 100.0)
        })
        .collect();
    let mut needed: Vec<usize> = ranks
        .iter()
        .flat_map(|&(lo, frac)| {
            if frac > 0.0 {
                vec![lo, lo + 1]
            } else {
                vec![lo]
            }
        })
        .collect();
    needed.sort_unstable();
    needed.dedup();
    let mut at = std::collections::HashMap::with_capacity(needed.len());
    let mut start = 0;
    for rank in needed {
        let (_, x, _) = values[start..].select_nth_unstable_by(rank - start, f64::total_cmp);
        at.insert(rank, *x);
        start = rank + 1;
    }
    ranks
        .iter()
        .map(|&(lo, frac)| {
            let value = |rank: usize| at.get(&rank).copied().unwrap_or(f64::NAN);
            let x_lo = value(lo);
            if frac > 0.0 {
                x_lo + (value(lo + 1) - x_lo) * frac
            } else {
                x_lo
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_values_come_back_bit_for_bit() {
        let values = [0.0, -0.0, 1.5, 1e-300, 123_456.789, f64::MAX];
        let mut out = Vec::new();
        unpack_into(&pack(&values), &mut out);
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(packed_len(&pack(&values)), 6);
    }

    #[test]
    fn packing_is_postgres_float8send() {
        // float8send(1.5) = '\x3ff8000000000000'
        assert_eq!(pack(&[1.5]), vec![0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn removing_takes_one_occurrence_from_the_first_run_holding_it() {
        let mut runs = vec![pack(&[1.0, 2.0]), pack(&[2.0, 3.0, 2.0])];
        assert!(remove_one(&mut runs, 2.0));
        assert!(remove_one(&mut runs, 2.0));
        assert!(!remove_one(&mut runs, 4.0));
        let mut left = Vec::new();
        runs.iter().for_each(|r| unpack_into(r, &mut left));
        left.sort_by(f64::total_cmp);
        assert_eq!(left, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn writes_fill_the_newest_run_then_start_the_next() {
        assert_eq!(run_to_append_to(None, 10), 0);
        assert_eq!(run_to_append_to(Some((3, RUN_VALUES - 10)), 10), 3);
        assert_eq!(run_to_append_to(Some((3, RUN_VALUES - 10)), 11), 4);
    }

    #[test]
    fn taking_out_reports_changed_and_emptied_runs() {
        let stored = vec![
            (0, pack(&[1.0]), pack(&[])),
            (1, pack(&[2.0]), pack(&[5.0])),
            (2, pack(&[3.0]), pack(&[])),
        ];
        let values = RunValues {
            latencies: vec![1.0, 2.0],
            ttfts: vec![],
        };
        assert_eq!(
            take_out(stored, &values),
            vec![(0, None), (1, Some((pack(&[]), pack(&[5.0]))))]
        );
    }

    #[test]
    fn percentiles_interpolate_between_closest_ranks() {
        // n = 5: p90 is rank 3.6, between 40 and 50.
        let mut values = vec![50.0, 10.0, 40.0, 20.0, 30.0];
        assert_eq!(
            exact_percentiles(&mut values, &[0, 50, 90, 100]),
            vec![10.0, 30.0, 46.0, 50.0]
        );
    }

    #[test]
    fn one_value_is_every_percentile_and_none_is_no_answer() {
        assert_eq!(exact_percentiles(&mut [7.0], &[50, 99]), vec![7.0, 7.0]);
        assert!(exact_percentiles(&mut [], &[50]).is_empty());
    }

    #[test]
    fn percentiles_match_a_full_sort_on_many_values() {
        let mut state = 12345u64;
        let mut values: Vec<f64> = (0..10_001)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f64 / 7.0
            })
            .collect();
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let ps = [1, 50, 90, 95, 99];
        let expected: Vec<f64> = ps
            .iter()
            .map(|p| {
                let rank = (sorted.len() - 1) as f64 * *p as f64 / 100.0;
                let lo = rank.floor() as usize;
                let frac = rank - lo as f64;
                sorted[lo] + (sorted[(lo + 1).min(sorted.len() - 1)] - sorted[lo]) * frac
            })
            .collect();
        let got = exact_percentiles(&mut values, &ps);
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() <= 1e-9 * e.abs().max(1.0), "{g} vs {e}");
        }
    }
}
