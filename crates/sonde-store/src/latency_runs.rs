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
//! event row — and finds the ranks in memory ([`SortedRuns::percentiles`]).
//!
//! SQLite keeps each run **sorted** (its one writer merges a write's values in, and a
//! deletion closes the gap), so a percentile over the runs of a range is found from two
//! binary searches per run and a selection among the few values between them, not a
//! selection over millions of values.
//! PostgreSQL appends by concatenation (`latencies || excluded.latencies` in an upsert,
//! so that concurrent writers cannot lose each other's values), which leaves its runs
//! unsorted: a reader sorts each run that is not sorted as it reads it, as it does the
//! runs an older version wrote.

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
/// appear, with the values of all its rows as [`SortedRuns`] (a row is a run). Each
/// row's values are unpacked straight into its group's list (no list per row: with tens
/// of thousands of runs in a range, the allocations per row cost more than the
/// unpacking).
#[derive(Debug, Default)]
pub(crate) struct GroupedValues {
    groups: Vec<crate::GroupValues>,
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
                self.groups.push((group, SortedRuns::default()));
                self.groups.len() - 1
            }
        };
        if let (Some(bytes), Some((_, runs))) = (packed, self.groups.get_mut(at)) {
            runs.push_packed(bytes);
        }
        Ok(())
    }

    /// The groups and their values.
    pub(crate) fn into_groups(self) -> Vec<crate::GroupValues> {
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

/// Takes one occurrence of `value` (same bits) out of the first of `runs` holding it,
/// keeping the others in their order (a sorted run stays sorted); false when none does.
pub(crate) fn remove_one(runs: &mut [Vec<u8>], value: f64) -> bool {
    let wanted = value.to_be_bytes();
    for run in runs.iter_mut() {
        if let Some(i) = run.chunks_exact(VALUE_BYTES).position(|c| c == wanted) {
            let at = i * VALUE_BYTES;
            run.drain(at..at + VALUE_BYTES);
            return true;
        }
    }
    false
}

/// A packed run with `adding` merged in, sorted (a stored run that is not sorted, as
/// older versions wrote them, is sorted with it). Linear in the run's length when it is
/// sorted: the one writer of SQLite keeps runs sorted this way.
pub(crate) fn merged(run: &[u8], adding: &[f64]) -> Vec<u8> {
    let mut held = Vec::with_capacity(packed_len(run));
    unpack_into(run, &mut held);
    let mut adding = adding.to_vec();
    adding.sort_unstable_by(f64::total_cmp);
    if !held.is_sorted_by(|a, b| a.total_cmp(b).is_le()) {
        held.extend(adding);
        held.sort_unstable_by(f64::total_cmp);
        return pack(&held);
    }
    let mut out = Vec::with_capacity(run.len() + adding.len() * VALUE_BYTES);
    let (mut a, mut b) = (held.iter().peekable(), adding.iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.total_cmp(y).is_le() => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        if let Some(v) = next {
            out.extend(v.to_be_bytes());
        }
    }
    out
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

/// Migration 14: SQLite's writer keeps runs sorted from then on; this sorts those
/// written before (`sonde_sorted(run)`). PostgreSQL's runs stay as they are: its
/// readers sort them.
pub(crate) fn sorted_runs_migration(t: &crate::migrations::Types) -> String {
    match t.dialect {
        crate::Dialect::Sqlite => RUN_TABLES
            .iter()
            .map(|table| {
                format!(
                    "UPDATE {table} SET latencies = sonde_sorted(latencies), \
                     ttfts = sonde_sorted(ttfts);\n"
                )
            })
            .collect(),
        crate::Dialect::Postgres => String::new(),
    }
}

/// The run tables, in the order writes append to them.
pub(crate) const RUN_TABLES: [&str; 3] =
    ["llm_hourly_runs", "llm_daily_runs", "llm_key_daily_runs"];

/// Migration 17: PostgreSQL compresses the runs' values with LZ4 instead of its default
/// `pglz`. An append rewrites the whole run (`latencies || excluded.latencies`):
/// PostgreSQL decompresses the stored value and compresses the new one, and `pglz` on
/// packed doubles took about 5 ms a run (a 4,096-value run, BENCHMARKS.md, "Growth"),
/// most of a batch's time, under the run's row lock; LZ4 takes about a twentieth of
/// that and stores a third more. A server built without LZ4 keeps the values
/// uncompressed instead (`STORAGE EXTERNAL`: no compression, still out of line), faster
/// still but twice the bytes. Values already stored keep their compression until next
/// rewritten. SQLite has nothing to do: the version is kept so that both backends
/// number alike.
pub(crate) fn run_compression_migration(t: &crate::migrations::Types) -> String {
    match t.dialect {
        crate::Dialect::Sqlite => "SELECT 1".to_owned(),
        crate::Dialect::Postgres => {
            let alter = |how: &str| {
                RUN_TABLES
                    .iter()
                    .map(|table| {
                        format!(
                            "ALTER TABLE {table} ALTER COLUMN latencies {how}, \
                             ALTER COLUMN ttfts {how};"
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n    ")
            };
            format!(
                "DO $$
BEGIN
    {}
EXCEPTION WHEN feature_not_supported THEN
    {}
END $$;",
                alter("SET COMPRESSION lz4"),
                alter("SET STORAGE EXTERNAL")
            )
        }
    }
}

/// A run table's statement: a roll-up's key, the run's number and its packed values.
pub(crate) fn runs_table(name: &str, int: &str, blob: &str) -> String {
    format!(
        "CREATE TABLE {name} (
                {key},
                run {int} NOT NULL, latencies {blob} NOT NULL, ttfts {blob} NOT NULL,
                PRIMARY KEY (hour, org, workspace, provider, model, api_key_hash, request_path, run)
            );",
        key = crate::rows::rollup_key_ddl(int)
    )
}

/// A group's values as the runs they were stored in, each sorted ascending
/// (`f64::total_cmp`): what [`SqlQuery::read_values`](crate::SqlQuery::read_values)
/// answers per group. Its percentiles are found by searching the runs, without
/// selecting over (or sorting) all the values.
///
/// ```
/// use sonde_store::SortedRuns;
/// let mut runs = SortedRuns::default();
/// runs.push(vec![30.0, 10.0]);
/// runs.push(vec![20.0, 50.0, 40.0]);
/// assert_eq!(runs.len(), 5);
/// // p90 is rank 0.9 · 4 = 3.6: between 40 and 50.
/// assert_eq!(runs.percentiles(&[0, 50, 90, 100]), vec![10.0, 30.0, 46.0, 50.0]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SortedRuns {
    /// The runs one after the other, each sorted.
    values: Vec<f64>,
    /// Where each run ends in `values`.
    ends: Vec<usize>,
}

impl SortedRuns {
    /// Adds a run of `values` (sorted here if they are not).
    pub fn push(&mut self, values: Vec<f64>) {
        let start = self.values.len();
        self.values.extend(values);
        self.close_run(start);
    }

    /// Adds a run of packed values (a trailing partial value is ignored).
    pub(crate) fn push_packed(&mut self, bytes: &[u8]) {
        let start = self.values.len();
        unpack_into(bytes, &mut self.values);
        self.close_run(start);
    }

    /// Ends the run that starts at `start`, sorting it if it is not sorted; an empty
    /// run is not kept.
    fn close_run(&mut self, start: usize) {
        let run = &mut self.values[start..];
        if run.is_empty() {
            return;
        }
        if !run.is_sorted_by(|a, b| a.total_cmp(b).is_le()) {
            run.sort_unstable_by(f64::total_cmp);
        }
        self.ends.push(self.values.len());
    }

    /// Adds `other`'s runs after these.
    pub fn append(&mut self, other: SortedRuns) {
        if self.values.is_empty() {
            *self = other;
            return;
        }
        let offset = self.values.len();
        self.values.extend(other.values);
        self.ends
            .extend(other.ends.into_iter().map(|end| end + offset));
    }

    /// How many values the runs hold.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the runs hold no value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// All the values, run after run (each run sorted, not the whole).
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The runs, each sorted.
    pub(crate) fn runs(&self) -> impl Iterator<Item = &[f64]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.values[start..end])
    }

    /// Exact percentiles `ps` (in percent), with linear interpolation between the
    /// closest ranks (`rank = p·(n−1)`, PostgreSQL's `percentile_cont`). Empty when
    /// there are no values.
    pub fn percentiles(&self, ps: &[u64]) -> Vec<f64> {
        percentiles_of_runs(&self.runs().collect::<Vec<_>>(), ps)
    }
}

/// Below this many values left between the bounds, [`at_rank`] selects among them.
const SELECT_AMONG: usize = 2048;

/// The value of rank `rank` (0-based, ascending) among sorted `runs` holding `n`
/// values, and the one after it (itself when `rank` is the last); `None` when `rank` is
/// past the end.
///
/// Each run's values at the same fraction of its length bound the answer: fewer than
/// `rank + 1` values are below the least of the runs' values at `⌊rank·len/n⌋`, and at
/// least `rank + 2` are at or below the greatest of their values at
/// `⌈(rank + 2)·len/n⌉ − 1`. Binary searches in each run narrow it to the values
/// between the bounds (the values equal to the lower bound counted, so that repeated
/// values narrow too), and the same is done again within what is left until few
/// values are; the ranks are selected among those. Runs of one distribution (the days
/// of a model) leave a few per cent of their values after the first round; runs of
/// different ones (the models of a day) about halve each round.
fn at_rank(runs: &[&[f64]], n: usize, rank: usize) -> Option<(f64, f64)> {
    if rank >= n {
        return None;
    }
    let last = rank + 1 == n;
    let mut windows: Vec<&[f64]> = runs.iter().copied().filter(|r| !r.is_empty()).collect();
    // Ranks within what is left: `rank`, and the one after it.
    let (mut left, mut first) = (n, rank);
    while left > SELECT_AMONG {
        let second = if last { first } else { first + 1 };
        let lo = windows
            .iter()
            .filter_map(|w| w.get(first * w.len() / left).copied())
            .min_by(f64::total_cmp)?;
        let hi = windows
            .iter()
            .filter_map(|w| {
                w.get(((second + 1) * w.len()).div_ceil(left).checked_sub(1)?)
                    .copied()
            })
            .max_by(f64::total_cmp)?;
        // Each window narrowed to the values above `lo`, up to `hi`; those equal to `lo`
        // counted apart (runs of repeated values would never narrow otherwise).
        let (mut below, mut at_lo) = (0, 0);
        for w in windows.iter_mut() {
            let start = w.partition_point(|v| v.total_cmp(&lo).is_lt());
            let above = w.partition_point(|v| v.total_cmp(&lo).is_le());
            let end = w.partition_point(|v| v.total_cmp(&hi).is_le());
            below += start;
            at_lo += above - start;
            *w = w.get(above..end).unwrap_or_default();
        }
        windows.retain(|w| !w.is_empty());
        first = first.checked_sub(below)?;
        if first < at_lo {
            if last || first + 1 < at_lo {
                return Some((lo, lo));
            }
            // The next value is the least above `lo`: the first of a window.
            let next = windows
                .iter()
                .filter_map(|w| w.first())
                .copied()
                .min_by(f64::total_cmp);
            return Some((lo, next.unwrap_or(lo)));
        }
        first -= at_lo;
        let now = windows.iter().map(|w| w.len()).sum::<usize>();
        if now >= left - left / 8 {
            // Runs too unlike for the bounds to narrow them: select among all.
            left = now;
            break;
        }
        left = now;
    }
    let mut among: Vec<f64> = Vec::with_capacity(left);
    windows.iter().for_each(|w| among.extend_from_slice(w));
    if first >= among.len() {
        return None;
    }
    let (_, value, above) = among.select_nth_unstable_by(first, f64::total_cmp);
    let value = *value;
    let next = match last {
        false => above
            .iter()
            .copied()
            .min_by(f64::total_cmp)
            .unwrap_or(value),
        true => value,
    };
    Some((value, next))
}

/// Exact percentiles `ps` (in percent) of the values of sorted `runs` together, as
/// [`SortedRuns::percentiles`]: runs of several groups answer for their union without
/// being copied into one.
pub(crate) fn percentiles_of_runs(runs: &[&[f64]], ps: &[u64]) -> Vec<f64> {
    let n = runs.iter().map(|run| run.len()).sum::<usize>();
    if n == 0 {
        return Vec::new();
    }
    ps.iter()
        .map(|p| {
            // The lower rank and the weight of the next one, in integers.
            let scaled = (n as u64 - 1) * p;
            let (lo, frac) = ((scaled / 100) as usize, (scaled % 100) as f64 / 100.0);
            match at_rank(runs, n, lo) {
                Some((x, _)) if frac == 0.0 => x,
                Some((x, next)) => x + (next - x) * frac,
                None => f64::NAN,
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

    fn runs_of(runs: &[&[f64]]) -> SortedRuns {
        let mut all = SortedRuns::default();
        for run in runs {
            all.push(run.to_vec());
        }
        all
    }

    #[test]
    fn percentiles_interpolate_between_closest_ranks() {
        // n = 5: p90 is rank 3.6, between 40 and 50.
        let ps = [0, 50, 90, 100];
        let want = vec![10.0, 30.0, 46.0, 50.0];
        assert_eq!(
            runs_of(&[&[50.0, 10.0, 40.0, 20.0, 30.0]]).percentiles(&ps),
            want
        );
        assert_eq!(
            runs_of(&[&[50.0, 10.0], &[40.0], &[20.0, 30.0]]).percentiles(&ps),
            want
        );
    }

    #[test]
    fn one_value_is_every_percentile_and_none_is_no_answer() {
        assert_eq!(runs_of(&[&[7.0]]).percentiles(&[50, 99]), vec![7.0, 7.0]);
        assert_eq!(
            runs_of(&[&[], &[7.0], &[]]).percentiles(&[50, 99]),
            vec![7.0, 7.0]
        );
        assert!(runs_of(&[]).percentiles(&[50]).is_empty());
        assert!(runs_of(&[&[], &[]]).percentiles(&[50]).is_empty());
    }

    #[test]
    fn equal_negative_and_infinite_values_take_their_ranks() {
        let runs = runs_of(&[
            &[2.0, 2.0, -1.0, f64::INFINITY],
            &[2.0, -0.0, 0.0, f64::NEG_INFINITY],
            &[2.0],
        ]);
        // Sorted: -inf, -1, -0, 0, 2, 2, 2, 2, inf.
        let got = runs.percentiles(&[0, 25, 50, 75, 100]);
        assert_eq!(got[0], f64::NEG_INFINITY);
        assert_eq!(got[1].to_bits(), (-0.0f64).to_bits());
        assert_eq!(&got[2..4], &[2.0, 2.0]);
        assert_eq!(got[4], f64::INFINITY);
    }

    #[test]
    fn runs_are_merged_and_values_taken_out_in_order() {
        let run = merged(&pack(&[1.0, 3.0, 5.0]), &[4.0, 0.5, 3.0]);
        let mut values = Vec::new();
        unpack_into(&run, &mut values);
        assert_eq!(values, vec![0.5, 1.0, 3.0, 3.0, 4.0, 5.0]);
        let mut runs = vec![run];
        assert!(remove_one(&mut runs, 3.0));
        assert!(remove_one(&mut runs, 0.5));
        values.clear();
        unpack_into(&runs[0], &mut values);
        assert_eq!(values, vec![1.0, 3.0, 4.0, 5.0]);
        // A run stored unsorted (older versions, PostgreSQL) comes out sorted.
        values.clear();
        unpack_into(&merged(&pack(&[9.0, 1.0]), &[5.0]), &mut values);
        assert_eq!(values, vec![1.0, 5.0, 9.0]);
    }

    /// `percentile_cont` of `values` by a full sort, for comparison (the rank in
    /// integers, as PostgreSQL and the store compute it).
    fn by_sorting(values: &[f64], ps: &[u64]) -> Vec<f64> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        ps.iter()
            .map(|p| {
                let scaled = (sorted.len() as u64 - 1) * p;
                let (lo, frac) = ((scaled / 100) as usize, (scaled % 100) as f64 / 100.0);
                let next = sorted[(lo + 1).min(sorted.len() - 1)];
                if frac == 0.0 {
                    sorted[lo]
                } else {
                    sorted[lo] + (next - sorted[lo]) * frac
                }
            })
            .collect()
    }

    #[test]
    fn runs_of_unlike_values_give_the_same_percentiles() {
        let ps = [0, 1, 25, 50, 90, 95, 99, 100];
        // Disjoint runs (each model its own latencies), one far larger than the others,
        // runs of one repeated value, and runs that interleave.
        let shapes: Vec<Vec<Vec<f64>>> = vec![
            (0..20)
                .map(|m| (0..700).map(|i| (m * 1000 + i) as f64).collect())
                .collect(),
            vec![
                (0..9000).map(f64::from).collect(),
                (0..30).map(|i| f64::from(i) * 1e6).collect(),
                vec![4500.0; 3000],
            ],
            (0..7)
                .map(|m| (0..3000).map(|i| f64::from(i * 7 + m)).collect())
                .collect(),
            // Few distinct values, each repeated across every run.
            (0..30)
                .map(|d| {
                    let mut run: Vec<f64> = (0..2222).map(|i| f64::from((i + d) % 20)).collect();
                    run.sort_by(f64::total_cmp);
                    run
                })
                .collect(),
        ];
        for shape in shapes {
            let mut runs = SortedRuns::default();
            let mut all = Vec::new();
            for run in shape.iter().rev() {
                runs.push(run.clone());
                all.extend(run);
            }
            assert_eq!(runs.percentiles(&ps), by_sorting(&all, &ps));
        }
    }

    #[test]
    fn percentiles_match_a_full_sort_on_many_values() {
        let mut state = 12345u64;
        // Coarse values, so that many repeat.
        let values: Vec<f64> = (0..10_001)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f64 / 21.0).floor()
            })
            .collect();
        let ps = [0, 1, 50, 90, 95, 99, 100];
        let expected = by_sorting(&values, &ps);
        // One run, and runs of uneven lengths as the days and hours of a range give them.
        let mut one = SortedRuns::default();
        one.push(values.clone());
        let mut many = SortedRuns::default();
        let (mut rest, mut len) = (values.as_slice(), 1);
        while !rest.is_empty() {
            let (run, tail) = rest.split_at(len.min(rest.len()));
            many.push(run.to_vec());
            (rest, len) = (tail, len * 3 + 1);
        }
        for runs in [one, many] {
            assert_eq!(runs.percentiles(&ps), expected);
        }
    }
}
