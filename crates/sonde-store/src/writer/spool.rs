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

const MAGIC: [u8; 4] = *b"SPL1";
const HEADER: u64 = 12;
/// The spool file's name in the spool folder.
pub const SPOOL_FILE: &str = "spool.log";
const OFFSET_FILE: &str = "spool.offset";

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
}

/// The spool of one writer.
pub(crate) struct Spool {
    dir: PathBuf,
    cap: u64,
    state: Mutex<State>,
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
    pub(crate) fn open(dir: &Path, cap: u64) -> Result<(Self, Option<Corruption>), SpoolError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = dir.join(SPOOL_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let len = file.metadata().map_err(|e| io(&path, e))?.len();
        let offset = std::fs::read(dir.join(OFFSET_FILE))
            .ok()
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes)
            .min(len);
        let spool = Self {
            dir: dir.to_path_buf(),
            cap,
            state: Mutex::new(State { file, len, offset }),
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
                    drop(state);
                    break Some(spool.quarantine(at, reason)?);
                }
            }
        };
        if let Some(c) = &corruption {
            tracing::error!(offset = c.offset, bytes = c.bytes, reason = %c.reason, quarantined_to = %c.quarantined_to.display(), "spool tail damaged; intact batches before it will replay");
        }
        Ok((spool, corruption))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self) -> PathBuf {
        self.dir.join(SPOOL_FILE)
    }

    /// Moves the bytes from `offset` to the end into a quarantine file, and cuts the
    /// spool there.
    fn quarantine(&self, offset: u64, reason: String) -> Result<Corruption, SpoolError> {
        let path = self.path();
        let mut state = self.lock();
        let bytes = state.len.saturating_sub(offset);
        let mut tail = Vec::with_capacity(bytes as usize);
        state
            .file
            .seek(SeekFrom::Start(offset))
            .map_err(|e| io(&path, e))?;
        state
            .file
            .read_to_end(&mut tail)
            .map_err(|e| io(&path, e))?;
        let quarantined_to = self.dir.join(format!(
            "spool.damaged-{}-{offset}.bin",
            sonde_model::Timestamp::now().as_micros()
        ));
        std::fs::write(&quarantined_to, &tail).map_err(|e| io(&quarantined_to, e))?;
        state.file.set_len(offset).map_err(|e| io(&path, e))?;
        state.file.sync_all().map_err(|e| io(&path, e))?;
        state.len = offset;
        Ok(Corruption {
            offset,
            reason,
            bytes,
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
        Ok(Appended::Yes)
    }

    /// The next unreplayed batch and the offset after it, or `None` when all is
    /// replayed. Damage found here is quarantined and reported.
    pub(crate) fn next_batch(&self) -> Result<Next, SpoolError> {
        let path = self.path();
        let mut state = self.lock();
        let (offset, len) = (state.offset, state.len);
        match read_batch(&mut state.file, offset, len).map_err(|e| io(&path, e))? {
            BatchRead::End => Ok(Next::Empty),
            BatchRead::Batch { records, next } => Ok(Next::Batch { records, next }),
            BatchRead::Damaged(reason) => {
                drop(state);
                Ok(Next::Damaged(self.quarantine(offset, reason)?))
            }
        }
    }

    /// Marks everything before `next` replayed. When all is replayed, the file is
    /// emptied.
    pub(crate) fn consumed(&self, next: u64) -> Result<(), SpoolError> {
        let path = self.path();
        let mut state = self.lock();
        state.offset = next.min(state.len);
        if state.offset == state.len {
            state.file.set_len(0).map_err(|e| io(&path, e))?;
            state.file.sync_all().map_err(|e| io(&path, e))?;
            state.len = 0;
            state.offset = 0;
        }
        let offset_path = self.dir.join(OFFSET_FILE);
        std::fs::write(&offset_path, state.offset.to_le_bytes()).map_err(|e| io(&offset_path, e))
    }

    /// Bytes waiting to be replayed.
    pub(crate) fn pending_bytes(&self) -> u64 {
        let state = self.lock();
        state.len - state.offset
    }
}

/// Every unreplayed record in the spool at `dir`, and the reason reading stopped early.
pub(crate) fn read_all(dir: &Path) -> Result<(Vec<Record>, Option<String>), SpoolError> {
    let path = dir.join(SPOOL_FILE);
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(io(&path, e)),
    };
    let len = file.metadata().map_err(|e| io(&path, e))?.len();
    let mut offset = std::fs::read(dir.join(OFFSET_FILE))
        .ok()
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_le_bytes)
        .min(len);
    let mut all = Vec::new();
    loop {
        match read_batch(&mut file, offset, len).map_err(|e| io(&path, e))? {
            BatchRead::End => return Ok((all, None)),
            BatchRead::Batch { records, next } => {
                all.extend(records);
                offset = next;
            }
            BatchRead::Damaged(reason) => return Ok((all, Some(reason))),
        }
    }
}

/// The next thing to replay.
pub(crate) enum Next {
    Empty,
    Batch { records: Vec<Record>, next: u64 },
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
            match spool.next_batch().unwrap() {
                Next::Empty => return out,
                Next::Batch { records, next } => {
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
        let (spool, damage) = Spool::open(dir.path(), 1 << 20).unwrap();
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
    fn a_reopened_spool_resumes_after_what_was_replayed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, _) = Spool::open(dir.path(), 1 << 20).unwrap();
            spool.append(&records(1, "a")).unwrap();
            spool.append(&records(1, "b")).unwrap();
            let Next::Batch { next, .. } = spool.next_batch().unwrap() else {
                panic!()
            };
            spool.consumed(next).unwrap();
        }
        let (spool, _) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(drain(&spool), vec![records(1, "b")]);
    }

    #[test]
    fn a_damaged_tail_is_quarantined_and_the_intact_batches_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (spool, _) = Spool::open(dir.path(), 1 << 20).unwrap();
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
        let (spool, damage) = Spool::open(dir.path(), 1 << 20).unwrap();
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
            let (spool, _) = Spool::open(dir.path(), 1 << 20).unwrap();
            spool.append(&records(2, "a")).unwrap();
            spool.append(&records(2, "b")).unwrap();
        }
        let path = dir.path().join(SPOOL_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 0x20;
        std::fs::write(&path, bytes).unwrap();
        let (spool, damage) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(damage.unwrap().reason, "checksum mismatch");
        assert_eq!(drain(&spool), vec![records(2, "a")]);
    }

    #[test]
    fn the_cap_refuses_a_batch_that_would_pass_it() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&records(5, "a")).len() as u64;
        let (spool, _) = Spool::open(dir.path(), one * 2).unwrap();
        assert_eq!(spool.append(&records(5, "a")).unwrap(), Appended::Yes);
        assert_eq!(spool.append(&records(5, "b")).unwrap(), Appended::Yes);
        assert_eq!(spool.append(&records(5, "c")).unwrap(), Appended::Full);
        assert_eq!(drain(&spool).len(), 2);
    }
}
