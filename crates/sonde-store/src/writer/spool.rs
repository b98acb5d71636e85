//! The spool: an append-only file of record batches on local disk, where the writer
//! puts what the store cannot take now, and from which it replays them in order.
//!
//! Each batch is a 12-byte header — magic `SPL1`, payload length (u32 LE), CRC-32 of
//! the payload (u32 LE) — followed by the payload: the records as JSON lines. Every
//! append is fsynced before it is acknowledged. Replay progress is kept in
//! `spool.offset` beside the file; replaying a batch twice is harmless, because writing
//! a record is idempotent by id.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sonde_model::Record;

use crate::DatabaseIdentity;

const MAGIC: [u8; 4] = *b"SPL1";
const HEADER: u64 = 12;
/// The spool file's name in the spool folder.
pub const SPOOL_FILE: &str = "spool.log";
const OFFSET_FILE: &str = "spool.offset";
/// The file a writer holds an exclusive lock on while it uses the spool folder.
pub const LOCK_FILE: &str = "spool.lock";
/// The file that says which database the spool belongs to (JSON: `id`, `url`).
pub const IDENTITY_FILE: &str = "spool.identity";

/// Why the spool could not be used.
///
/// ```
/// let e = sonde_store::SpoolError::Io { path: "/spool".into(), reason: "disk full".into() };
/// assert_eq!(e.to_string(), "spool /spool: disk full");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// Reading or writing the spool failed.
    #[error("spool {path}: {reason}")]
    Io {
        /// The file or folder.
        path: String,
        /// What failed.
        reason: String,
    },
    /// Another writer (in this process or another) holds the spool's lock.
    #[error("spool {path} is in use by another writer")]
    Locked {
        /// The folder.
        path: String,
    },
    /// The spool holds records of another database: it is never replayed into this one.
    #[error(
        "spool {path} holds records of the database {spool_url} (id {spool_id}), not of {url} (id {id}); use another spool folder, or open that database to replay it"
    )]
    OtherDatabase {
        /// The folder.
        path: String,
        /// The database the spool belongs to.
        spool_url: String,
        /// Its id.
        spool_id: String,
        /// The database it was opened for.
        url: String,
        /// Its id.
        id: String,
    },
}

/// A damaged stretch of the spool, moved aside so that replay can go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// Where in the spool file the damage began.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
    /// Bytes moved aside.
    pub bytes: u64,
    /// Records in them (the lines of the damaged batch).
    pub records: u64,
    /// The file they were moved to.
    pub quarantined_to: PathBuf,
}

/// What appending did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Stored durably.
    Yes,
    /// The spool would exceed its cap: nothing was written.
    Full,
}

struct State {
    file: File,
    len: u64,
    offset: u64,
    /// The lock was let go ([`Spool::release`]): nothing more is appended.
    released: bool,
    /// Since when records have been waiting (since the spool was last empty).
    pending_since: Option<std::time::SystemTime>,
}

/// The spool of one writer.
pub(crate) struct Spool {
    dir: PathBuf,
    cap: u64,
    state: Mutex<State>,
    /// Holds the folder's exclusive lock for as long as the spool is open.
    lock_file: File,
}

fn io(path: &Path, e: impl std::fmt::Display) -> SpoolError {
    SpoolError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

enum BatchRead {
    End,
    Batch { records: Vec<Record>, next: u64 },
    Damaged(String),
}

/// Reads the batch at `offset` of `file` (whose length is `len`).
fn read_batch(file: &mut File, offset: u64, len: u64) -> std::io::Result<BatchRead> {
    if offset >= len {
        return Ok(BatchRead::End);
    }
    if len - offset < HEADER {
        return Ok(BatchRead::Damaged("truncated batch header".into()));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut header = [0u8; HEADER as usize];
    file.read_exact(&mut header)?;
    if header[..4] != MAGIC {
        return Ok(BatchRead::Damaged("bad batch marker".into()));
    }
    let size = u64::from(u32::from_le_bytes([
        header[4], header[5], header[6], header[7],
    ]));
    let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if len - offset - HEADER < size {
        return Ok(BatchRead::Damaged(format!(
            "truncated batch: {size} bytes announced, {} present",
            len - offset - HEADER
        )));
    }
    let mut payload = vec![0u8; size as usize];
    file.read_exact(&mut payload)?;
    if crc32fast::hash(&payload) != crc {
        return Ok(BatchRead::Damaged("checksum mismatch".into()));
    }
    let Ok(text) = std::str::from_utf8(&payload) else {
        return Ok(BatchRead::Damaged("batch is not utf-8".into()));
    };
    let mut records = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        match Record::from_json_line(line) {
            Ok(record) => records.push(record),
            Err(e) => return Ok(BatchRead::Damaged(format!("bad record in batch: {e}"))),
        }
    }
    Ok(BatchRead::Batch {
        records,
        next: offset + HEADER + size,
    })
}

/// Bytes read at a time while looking for the next intact batch after damage.
const RESYNC_CHUNK: usize = 1 << 20;

/// The offset of the first intact batch after the damaged one at `damaged` (the next
/// batch marker whose batch reads whole, with its checksum), or `None` when none
/// follows: the damage runs to the end of the file.
fn resync(file: &mut File, damaged: u64, len: u64) -> std::io::Result<Option<u64>> {
    let mut from = damaged + 1;
    let mut chunk = vec![0u8; RESYNC_CHUNK + MAGIC.len() - 1];
    while from + HEADER <= len {
        let want = usize::try_from((len - from).min(chunk.len() as u64)).unwrap_or(chunk.len());
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk[..want])?;
        let candidates: Vec<u64> = chunk[..want]
            .windows(MAGIC.len())
            .enumerate()
            .filter(|(_, w)| *w == MAGIC)
            .map(|(i, _)| from + i as u64)
            .collect();
        for at in candidates {
            if let BatchRead::Batch { .. } = read_batch(file, at, len)? {
                return Ok(Some(at));
            }
        }
        if want < chunk.len() {
            break;
        }
        from += RESYNC_CHUNK as u64;
    }
    Ok(None)
}

/// Encodes a batch: header and payload.
pub(crate) fn encode(records: &[Record]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(records.len() * 512);
    for record in records {
        // Serialising a record cannot fail: every map key is a string.
        let _ = serde_json::to_writer(&mut payload, record);
        payload.push(b'\n');
    }
    let mut out = Vec::with_capacity(payload.len() + HEADER as usize);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

impl Spool {
    /// Opens (creating) the spool in `dir`. A damaged tail — a batch half-written when
    /// a process died — is moved aside and reported; the intact batches before it stay.
    ///
    /// The folder is locked (an exclusive OS file lock on [`LOCK_FILE`]) for as long as
    /// the spool is open: a second writer gets [`SpoolError::Locked`]. A spool that holds
    /// records of another database than `database` is refused
    /// ([`SpoolError::OtherDatabase`]); an empty one is taken over.
    pub(crate) fn open(
        dir: &Path,
        cap: u64,
        database: Option<&DatabaseIdentity>,
    ) -> Result<(Self, Option<Corruption>), SpoolError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SpoolError::Locked {
                    path: dir.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path, e)),
        }
        let path = dir.join(SPOOL_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let len = file.metadata().map_err(|e| io(&path, e))?.len();
        let offset = replayed_up_to(dir).min(len);
        if let Some(database) = database {
            claim(dir, database, len > offset)?;
        }
        // After a restart the time of the first waiting batch is not known: the file's
        // last write is a lower bound of its age.
        let pending_since = (len > offset)
            .then(|| file.metadata().and_then(|m| m.modified()).ok())
            .flatten();
        let spool = Self {
            dir: dir.to_path_buf(),
            cap,
            state: Mutex::new(State {
                file,
                len,
                offset,
                released: false,
                pending_since,
            }),
            lock_file: lock,
        };
        // Walk the unreplayed batches once to find damage now, before anything is
        // appended after it.
        let mut at = offset;
        let corruption = loop {
            let mut state = spool.lock();
            let len = state.len;
            match read_batch(&mut state.file, at, len).map_err(|e| io(&path, e))? {
                BatchRead::End => break None,
                BatchRead::Batch { next, .. } => at = next,
                BatchRead::Damaged(reason) => {
                    // Damage with intact batches after it is set aside when the replay
                    // reaches it; a damaged tail is cut now, before anything is
                    // appended after it.
                    match resync(&mut state.file, at, len).map_err(|e| io(&path, e))? {
                        Some(next) => at = next,
                        None => {
                            drop(state);
                            break Some(spool.quarantine(at, None, reason)?);
                        }
                    }
                }
            }
        };
        if let Some(c) = &corruption {
            tracing::error!(file = %path.display(), offset = c.offset, records = c.records, bytes = c.bytes, reason = %c.reason, quarantined_to = %c.quarantined_to.display(), "spool tail damaged; set aside, the intact batches before it replay");
        }
        Ok((spool, corruption))
    }

    /// Lets the folder's lock go, so that another writer can take the spool now rather
    /// than when this one is dropped; nothing more is appended.
    pub(crate) fn release(&self) {
        let mut state = self.lock();
        state.released = true;
        if let Err(e) = self.lock_file.unlock() {
            tracing::warn!(spool = %self.dir.display(), error = %e, "cannot unlock the spool");
        }
    }

    /// The folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self) -> PathBuf {
        self.dir.join(SPOOL_FILE)
    }

    /// Copies the damaged bytes from `offset` to `end` (to the end of the file when
    /// `None`) into a quarantine file beside the spool. A damaged tail is cut off; a
    /// damaged batch with intact ones after it is skipped (replay goes on at `end`).
    fn quarantine(
        &self,
        offset: u64,
        end: Option<u64>,
        reason: String,
    ) -> Result<Corruption, SpoolError> {
        let path = self.path();
        let mut state = self.lock();
        let until = end.unwrap_or(state.len).min(state.len);
        let bytes = until.saturating_sub(offset);
        let mut damaged = vec![0u8; usize::try_from(bytes).unwrap_or(0)];
        state
            .file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| state.file.read_exact(&mut damaged))
            .map_err(|e| io(&path, e))?;
        let quarantined_to = self.dir.join(format!(
            "spool.damaged-{}-{offset}.bin",
            sonde_model::Timestamp::now().as_micros()
        ));
        std::fs::write(&quarantined_to, &damaged).map_err(|e| io(&quarantined_to, e))?;
        let payload = damaged.get(HEADER as usize..).unwrap_or_default();
        let records = payload.iter().filter(|b| **b == b'\n').count() as u64
            + u64::from(payload.last().is_some_and(|b| *b != b'\n'));
        if end.is_none() {
            state.file.set_len(offset).map_err(|e| io(&path, e))?;
            state.file.sync_all().map_err(|e| io(&path, e))?;
            state.len = offset;
            state.offset = state.offset.min(offset);
        } else {
            state.offset = until;
            let offset_path = self.dir.join(OFFSET_FILE);
            std::fs::write(&offset_path, state.offset.to_le_bytes())
                .map_err(|e| io(&offset_path, e))?;
        }
        Ok(Corruption {
            offset,
            reason,
            bytes,
            records,
            quarantined_to,
        })
    }

    /// Appends a batch and fsyncs it, unless that would pass the cap.
    pub(crate) fn append(&self, records: &[Record]) -> Result<Appended, SpoolError> {
        if records.is_empty() {
            return Ok(Appended::Yes);
        }
        let bytes = encode(records);
        let path = self.path();
        let mut state = self.lock();
        if state.released {
            return Err(io(&path, "the writer has shut down"));
        }
        if state.len + bytes.len() as u64 > self.cap {
            return Ok(Appended::Full);
        }
        let end = state.len;
        state
            .file
            .seek(SeekFrom::Start(end))
            .map_err(|e| io(&path, e))?;
        let written = state
            .file
            .write_all(&bytes)
            .and_then(|()| state.file.sync_data());
        if let Err(e) = written {
            // Leave no partial batch behind.
            let _ = state.file.set_len(end);
            return Err(io(&path, e));
        }
        state.len = end + bytes.len() as u64;
        if state.pending_since.is_none() {
            state.pending_since = Some(std::time::SystemTime::now());
        }
        Ok(Appended::Yes)
    }

    /// The next unreplayed batches, joined, up to `max_records` (at least one whole
    /// batch however large), and the offset after the last; `Empty` when all is
    /// replayed. Replaying the small batches of a backlog (one per acknowledged request)
    /// one transaction each was slower than ingest, so a backlog never drained under
    /// load. Damage found here is quarantined and reported, after the intact batches
    /// before it have been handed out.
    pub(crate) fn next_batch(&self, max_records: usize) -> Result<Next, SpoolError> {
        let path = self.path();
        let mut state = self.lock();
        if state.released {
            // Another writer may hold the folder now: setting damage aside is its job.
            return Ok(Next::Empty);
        }
        let len = state.len;
        let mut at = state.offset;
        let mut joined: Vec<Record> = Vec::new();
        let mut batches = 0;
        loop {
            match read_batch(&mut state.file, at, len).map_err(|e| io(&path, e))? {
                BatchRead::End => break,
                BatchRead::Batch { records, next } => {
                    joined.extend(records);
                    batches += 1;
                    at = next;
                    if joined.len() >= max_records {
                        break;
                    }
                }
                BatchRead::Damaged(_) if batches > 0 => break,
                BatchRead::Damaged(reason) => {
                    let next = resync(&mut state.file, at, len).map_err(|e| io(&path, e))?;
                    drop(state);
                    return Ok(Next::Damaged(self.quarantine(at, next, reason)?));
                }
            }
        }
        Ok(if batches == 0 {
            Next::Empty
        } else {
            Next::Batch {
                records: joined,
                next: at,
                batches,
            }
        })
    }

    /// Marks everything before `next` replayed. When all is replayed, the file is
    /// emptied. After [`Spool::release`] nothing is marked: another writer may hold the
    /// folder by now (a replay step a shutdown gave up on can end after it), and emptying
    /// the file would lose what it appended; the batches replay again, harmlessly.
    pub(crate) fn consumed(&self, next: u64) -> Result<(), SpoolError> {
        let path = self.path();
        let mut state = self.lock();
        if state.released {
            return Ok(());
        }
        state.offset = next.min(state.len);
        if state.offset == state.len {
            state.file.set_len(0).map_err(|e| io(&path, e))?;
            state.file.sync_all().map_err(|e| io(&path, e))?;
            state.len = 0;
            state.offset = 0;
            state.pending_since = None;
        }
        let offset_path = self.dir.join(OFFSET_FILE);
        std::fs::write(&offset_path, state.offset.to_le_bytes()).map_err(|e| io(&offset_path, e))
    }

    /// Since when records have been waiting, if any are.
    pub(crate) fn pending_since(&self) -> Option<std::time::SystemTime> {
        self.lock().pending_since
    }

    /// Bytes waiting to be replayed.
    pub(crate) fn pending_bytes(&self) -> u64 {
        let state = self.lock();
        state.len - state.offset
    }
}

/// Checks that the spool in `dir` belongs to `database`, or — when it holds nothing to
/// replay (`pending` false) or says nothing of its database (a spool older than the
/// identity file) — makes it its own.
fn claim(dir: &Path, database: &DatabaseIdentity, pending: bool) -> Result<(), SpoolError> {
    let path = dir.join(IDENTITY_FILE);
    let recorded: Option<DatabaseIdentity> = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match recorded {
        Some(recorded) if recorded.id == database.id => {
            if recorded.url != database.url {
                tracing::info!(spool = %dir.display(), was = %recorded.url, now = %database.url, "the spool's database moved; same id, so the spool replays into it");
            } else {
                return Ok(());
            }
        }
        Some(recorded) if pending => {
            return Err(SpoolError::OtherDatabase {
                path: dir.display().to_string(),
                spool_url: recorded.url,
                spool_id: recorded.id,
                url: database.url.clone(),
                id: database.id.clone(),
            });
        }
        _ => {}
    }
    let text = serde_json::to_vec_pretty(database).map_err(|e| io(&path, e))?;
    let temp = dir.join(format!("{IDENTITY_FILE}.new"));
    std::fs::write(&temp, text)
        .and_then(|()| File::open(&temp)?.sync_all())
        .and_then(|()| std::fs::rename(&temp, &path))
        .map_err(|e| io(&path, e))
}

/// Every unreplayed record in the spool at `dir` (past damaged batches), and the first
/// damage found.
/// Whether the spool in `dir` has bytes not yet replayed, read from its files without
/// taking its lock. A writer looking for lanes to adopt asks this first: locking an
/// empty lane, even for a moment, could make a writer that is opening that lane right
/// then take another one.
pub(crate) fn has_pending(dir: &Path) -> bool {
    let len = std::fs::metadata(dir.join(SPOOL_FILE)).map_or(0, |m| m.len());
    len > replayed_up_to(dir)
}

/// The offset the spool in `dir` was replayed up to, as its offset file says (0 when
/// it has none).
fn replayed_up_to(dir: &Path) -> u64 {
    std::fs::read(dir.join(OFFSET_FILE))
        .ok()
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_le_bytes)
}

pub(crate) fn read_all(dir: &Path) -> Result<(Vec<Record>, Option<String>), SpoolError> {
    let path = dir.join(SPOOL_FILE);
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(io(&path, e)),
    };
    let len = file.metadata().map_err(|e| io(&path, e))?.len();
    let mut offset = replayed_up_to(dir).min(len);
    let mut all = Vec::new();
    let mut damage = None;
    loop {
        match read_batch(&mut file, offset, len).map_err(|e| io(&path, e))? {
            BatchRead::End => return Ok((all, damage)),
            BatchRead::Batch { records, next } => {
                all.extend(records);
                offset = next;
            }
            BatchRead::Damaged(reason) => {
                damage.get_or_insert(reason);
                match resync(&mut file, offset, len).map_err(|e| io(&path, e))? {
                    Some(next) => offset = next,
                    None => return Ok((all, damage)),
                }
            }
        }
    }
}

/// The next thing to replay.
pub(crate) enum Next {
    Empty,
    /// The records of `batches` consecutive spool batches, and the offset after them.
    Batch {
        records: Vec<Record>,
        next: u64,
        batches: usize,
    },
    Damaged(Corruption),
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_model::{Body, Context, SessionStarted};

    fn records(n: usize, tag: &str) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                id: format!("{tag}-{i}"),
                timestamp: sonde_model::Timestamp::from_micros(i as i64),
                context: Context::session(tag),
                body: Body::SessionStarted(SessionStarted::default()),
            })
            .collect()
    }

    fn drain(spool: &Spool) -> Vec<Vec<Record>> {
        let mut out = Vec::new();
        loop {
            match spool.next_batch(1).unwrap() {
                Next::Empty => return out,
                Next::Batch { records, next, .. } => {
                    out.push(records);
                    spool.consumed(next).unwrap();
                }
                Next::Damaged(c) => panic!("unexpected damage {c:?}"),
            }
        }
    }

    #[test]
    fn batches_replay_in_order_and_the_file_empties() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, damage) = Spool::open(dir.path(), 1 << 20, None).unwrap();
        assert!(damage.is_none());
        spool.append(&records(3, "a")).unwrap();
        spool.append(&records(2, "b")).unwrap();
        assert_eq!(drain(&spool), vec![records(3, "a"), records(2, "b")]);
        assert_eq!(spool.pending_bytes(), 0);
        assert_eq!(
            std::fs::metadata(dir.path().join(SPOOL_FILE))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn consecutive_batches_are_handed_out_joined_up_to_a_record_count() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 1 << 20, None).unwrap();
        for tag in ["a", "b", "c", "d"] {
            spool.append(&records(3, tag)).unwrap();
        }
        // Whole batches until the count is reached: 3 + 3 >= 5.
        let Next::Batch {
            records: joined,
            next,
            batches,
        } = spool.next_batch(5).unwrap()
        else {
            panic!()
        };
        assert_eq!(batches, 2);
        assert_eq!(joined, [records(3, "a"), records(3, "b")].concat());
        spool.consumed(next).unwrap();
        let Next::Batch {
            records: rest,
            next,
            batches,
        } = spool.next_batch(100).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (batches, rest),
            (2, [records(3, "c"), records(3, "d")].concat())
        );
        spool.consumed(next).unwrap();
        assert!(matches!(spool.next_batch(100).unwrap(), Next::Empty));
    }

    #[test]
    fn a_reopened_spool_resumes_after_what_was_replayed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, _) = Spool::open(dir.path(), 1 << 20, None).unwrap();
            spool.append(&records(1, "a")).unwrap();
            spool.append(&records(1, "b")).unwrap();
            let Next::Batch { next, .. } = spool.next_batch(1).unwrap() else {
                panic!()
            };
            spool.consumed(next).unwrap();
        }
        let (spool, _) = Spool::open(dir.path(), 1 << 20, None).unwrap();
        assert_eq!(drain(&spool), vec![records(1, "b")]);
    }

    #[test]
    fn a_damaged_tail_is_quarantined_and_the_intact_batches_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, _) = Spool::open(dir.path(), 1 << 20, None).unwrap();
            spool.append(&records(4, "a")).unwrap();
            spool.append(&records(4, "b")).unwrap();
        }
        // A process died half way through writing a third batch.
        let half = encode(&records(10, "c"));
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(SPOOL_FILE))
            .unwrap();
        file.write_all(&half[..half.len() / 2]).unwrap();
        drop(file);
        let (spool, damage) = Spool::open(dir.path(), 1 << 20, None).unwrap();
        let damage = damage.expect("the damage is reported");
        assert_eq!(damage.bytes, (half.len() / 2) as u64);
        assert!(
            damage.reason.starts_with("truncated batch"),
            "{}",
            damage.reason
        );
        assert_eq!(
            std::fs::read(&damage.quarantined_to).unwrap(),
            &half[..half.len() / 2]
        );
        // New batches go after the intact ones, not after the damage.
        spool.append(&records(1, "d")).unwrap();
        assert_eq!(
            drain(&spool),
            vec![records(4, "a"), records(4, "b"), records(1, "d")]
        );
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, _) = Spool::open(dir.path(), 1 << 20, None).unwrap();
            spool.append(&records(2, "a")).unwrap();
            spool.append(&records(2, "b")).unwrap();
        }
        let path = dir.path().join(SPOOL_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 0x20;
        std::fs::write(&path, bytes).unwrap();
        let (spool, damage) = Spool::open(dir.path(), 1 << 20, None).unwrap();
        assert_eq!(damage.unwrap().reason, "checksum mismatch");
        assert_eq!(drain(&spool), vec![records(2, "a")]);
    }

    #[test]
    fn a_replay_step_that_ends_after_the_release_leaves_the_next_writers_batches_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (old, _) = Spool::open(dir.path(), 1 << 20, None).unwrap();
        old.append(&records(2, "a")).unwrap();
        let Next::Batch { next, .. } = old.next_batch(100).unwrap() else {
            panic!()
        };
        // The shutdown lets the folder go while that batch is still being written...
        old.release();
        let (new, _) = Spool::open(dir.path(), 1 << 20, None).unwrap();
        new.append(&records(1, "b")).unwrap();
        // ...and the old writer's replay step ends only now.
        old.consumed(next).unwrap();
        assert!(matches!(old.next_batch(100).unwrap(), Next::Empty));
        assert_eq!(
            read_all(dir.path()).unwrap().0,
            [records(2, "a"), records(1, "b")].concat(),
            "nothing lost; a's batch replays again (harmless)"
        );
        assert_eq!(drain(&new), vec![records(2, "a"), records(1, "b")]);
    }

    #[test]
    fn the_cap_refuses_a_batch_that_would_pass_it() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&records(5, "a")).len() as u64;
        let (spool, _) = Spool::open(dir.path(), one * 2, None).unwrap();
        assert_eq!(spool.append(&records(5, "a")).unwrap(), Appended::Yes);
        assert_eq!(spool.append(&records(5, "b")).unwrap(), Appended::Yes);
        assert_eq!(spool.append(&records(5, "c")).unwrap(), Appended::Full);
        assert_eq!(drain(&spool).len(), 2);
    }
}
