//! Payloads, compressed. Tool results, prompts and conversations make most of an agent
//! trace's bytes, and SQLite writes each byte twice (WAL, then the database), so:
//!
//! - **Blocks**: in a database file, the payloads one write brings for one session are
//!   compressed together, as one zstd frame of up to [`BLOCK_MAX`] bytes in
//!   `payload_blocks`; each row's `payload` is then a 20-byte reference (block, offset,
//!   length). Calls of one conversation repeat its words, keys and often its whole
//!   history, which one frame compresses once (the ingest benchmark: 543 → 224 bytes per
//!   span's payload) at a fraction of the CPU of one frame per row (no entropy tables to
//!   build per payload). A block's `live` counts the rows pointing into it; it goes when
//!   the last of them does (a replaced or deleted record, a duplicate never inserted).
//! - **One frame per payload** for a payload of [`PACK_AT`] bytes or more that has no
//!   company in its write (or is larger than a block), and for every payload of a
//!   database in memory; smaller ones stay JSON text.
//!
//! SQL reads any of them with `sonde_payload(payload)`, which every connection of the
//! store knows: `json_extract(sonde_payload(payload), '$.tool_name')` (block references
//! are read through a second, read-only connection to the same file, since a function
//! cannot query its own).
//!
//! Why zstd at level [`ZSTD_LEVEL`] rather than LZ4: on text its entropy coding halves
//! what LZ4 leaves (measured on the ingest benchmark's conversation text), at a cost
//! well under the writer's. Databases written before keep LZ4 blobs (a 4-byte length,
//! then the block); both read back, told apart by zstd's frame magic.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::rows::RecordRow;

/// Payloads this long or longer are compressed on their own when they cannot share a
/// block.
pub(super) const PACK_AT: usize = 1024;

/// The most payload bytes one block holds (reading one record decompresses its block).
pub(super) const BLOCK_MAX: usize = 128 << 10;

/// zstd's compression level for payloads: its fastest level with entropy coding.
pub(super) const ZSTD_LEVEL: i32 = 1;

/// The largest payload decoded into a buffer reserved from the size its frame states;
/// larger ones (or frames without a size) are decoded as a stream.
const BULK_DECODE_MAX: usize = 64 << 20;

/// Decompressed blocks a reader keeps (a session's records come table by table, so the
/// same blocks come back).
const BLOCKS_KEPT: usize = 64;

/// How long `sonde_payload()`'s own connection waits for a busy database.
const BLOCK_READ_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The first bytes of every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The first bytes of a reference into `payload_blocks`: "SPB" and a format version.
/// (No LZ4 blob of older databases is 20 bytes long and starts so: its first four bytes
/// would claim a 21 MB payload.)
const BLOCK_REF_MAGIC: [u8; 4] = *b"SPB\x01";

/// A reference: magic, block id (i64), offset and length (u32), little-endian.
const BLOCK_REF_LEN: usize = 20;

thread_local! {
    /// One compression context per thread: making one per payload (its tables, a few
    /// hundred KiB of fresh pages) cost as much as the compression itself.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
}

thread_local! {
    /// One decompression context per thread, for the same reason.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// How one row's payload is stored.
pub(super) enum Slot {
    /// As JSON text (`RecordRow::payload`).
    Text,
    /// As its own zstd frame.
    Frame(Vec<u8>),
    /// In the write's block number `block`, at `offset`, `len` bytes.
    InBlock { block: usize, offset: u32, len: u32 },
}

/// Payloads of one session compressed together, for `payload_blocks`.
pub(super) struct Block {
    /// The session whose payloads it holds.
    pub session: crate::rows::SessionKey,
    /// One zstd frame: the payloads end to end.
    pub data: Vec<u8>,
    /// The rows pointing into it.
    pub rows: i64,
}

/// A write's payloads as they will be stored: one slot per row, in order, and the
/// blocks the slots point into.
pub(super) struct Packed {
    pub slots: Vec<Slot>,
    pub blocks: Vec<Block>,
}

/// Decides how each row's payload is stored and compresses it (on the caller's
/// thread): payloads of one session share blocks when `blocks` allows, the rest are
/// compressed alone when long enough and when that saves an eighth or more. Payload
/// text no longer needed is freed.
pub(super) fn pack(rows: &mut [RecordRow], blocks: bool) -> Packed {
    let mut slots: Vec<Slot> = rows.iter().map(|_| Slot::Text).collect();
    let mut packed_blocks = Vec::new();
    COMPRESSOR.with_borrow_mut(|compressor| {
        if compressor.is_none() {
            *compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        let Some(compressor) = compressor else { return };
        if blocks {
            for members in block_members(rows) {
                let mut text =
                    Vec::with_capacity(members.iter().map(|&i| rows[i].payload.len()).sum());
                let mut placed = Vec::with_capacity(members.len());
                for &i in &members {
                    let (Ok(offset), Ok(len)) = (
                        u32::try_from(text.len()),
                        u32::try_from(rows[i].payload.len()),
                    ) else {
                        continue;
                    };
                    text.extend_from_slice(rows[i].payload.as_bytes());
                    placed.push((i, offset, len));
                }
                let Ok(data) = compressor.compress(&text) else {
                    continue;
                };
                let block = packed_blocks.len();
                for &(i, offset, len) in &placed {
                    slots[i] = Slot::InBlock { block, offset, len };
                    rows[i].payload = String::new();
                }
                packed_blocks.push(Block {
                    session: crate::rows::SessionKey::of(&rows[members[0]]),
                    data,
                    rows: i64::try_from(placed.len()).unwrap_or(i64::MAX),
                });
            }
        }
        for (row, slot) in rows.iter_mut().zip(slots.iter_mut()) {
            if !matches!(slot, Slot::Text) || row.payload.len() < PACK_AT {
                continue;
            }
            let Ok(frame) = compressor.compress(row.payload.as_bytes()) else {
                continue;
            };
            if frame.len() < row.payload.len() - row.payload.len() / 8 {
                *slot = Slot::Frame(frame);
                row.payload = String::new();
            }
        }
    });
    Packed {
        slots,
        blocks: packed_blocks,
    }
}

/// The rows that share blocks: per session, in order, cut at [`BLOCK_MAX`] bytes; a
/// block needs two payloads or more, [`PACK_AT`] bytes or more in all (a payload too
/// large for a block is left to be compressed alone).
fn block_members(rows: &[RecordRow]) -> Vec<Vec<usize>> {
    let mut by_session: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    let mut order: Vec<(&str, &str)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if row.payload.len() > BLOCK_MAX {
            continue;
        }
        by_session
            .entry((row.tenant.as_str(), row.context.session_id.as_str()))
            .or_insert_with_key(|session| {
                order.push(*session);
                Vec::new()
            })
            .push(i);
    }
    let mut groups = Vec::new();
    for session in order {
        let Some(members) = by_session.remove(&session) else {
            continue;
        };
        let mut group: Vec<usize> = Vec::new();
        let mut bytes = 0;
        for i in members {
            if bytes + rows[i].payload.len() > BLOCK_MAX {
                groups.push(std::mem::take(&mut group));
                bytes = 0;
            }
            bytes += rows[i].payload.len();
            group.push(i);
        }
        groups.push(group);
    }
    groups.retain(|g| {
        g.len() >= 2 && g.iter().map(|&i| rows[i].payload.len()).sum::<usize>() >= PACK_AT
    });
    groups
}

/// The reference a row stores for its payload in block `block_id`.
pub(super) fn block_ref(block_id: i64, offset: u32, len: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(BLOCK_REF_LEN);
    bytes.extend_from_slice(&BLOCK_REF_MAGIC);
    bytes.extend_from_slice(&block_id.to_le_bytes());
    bytes.extend_from_slice(&offset.to_le_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes
}

/// Block id, offset and length, when `blob` is a reference into `payload_blocks`.
pub(super) fn parse_block_ref(blob: &[u8]) -> Option<(i64, usize, usize)> {
    if blob.len() != BLOCK_REF_LEN || !blob.starts_with(&BLOCK_REF_MAGIC) {
        return None;
    }
    let block = i64::from_le_bytes(blob.get(4..12)?.try_into().ok()?);
    let offset = u32::from_le_bytes(blob.get(12..16)?.try_into().ok()?);
    let len = u32::from_le_bytes(blob.get(16..20)?.try_into().ok()?);
    Some((
        block,
        usize::try_from(offset).ok()?,
        usize::try_from(len).ok()?,
    ))
}

/// The bytes a compressed payload or block holds: zstd frames, or the LZ4 blocks of
/// older databases.
fn unpack_bytes(blob: &[u8]) -> Result<Vec<u8>, String> {
    if blob.starts_with(&ZSTD_MAGIC) {
        // Frames written by `pack` state their size: decode with this thread's context.
        let size = zstd::zstd_safe::get_frame_content_size(blob)
            .ok()
            .flatten()
            .and_then(|n| usize::try_from(n).ok())
            // The size is the blob's word: a damaged one must not reserve memory.
            .filter(|&n| n <= BULK_DECODE_MAX);
        match size {
            Some(size) => DECOMPRESSOR.with_borrow_mut(|decompressor| {
                if decompressor.is_none() {
                    *decompressor = zstd::bulk::Decompressor::new().ok();
                }
                match decompressor {
                    Some(d) => d.decompress(blob, size).map_err(|e| e.to_string()),
                    None => zstd::stream::decode_all(blob).map_err(|e| e.to_string()),
                }
            }),
            None => zstd::stream::decode_all(blob).map_err(|e| e.to_string()),
        }
    } else {
        lz4_flex::decompress_size_prepended(blob).map_err(|e| e.to_string())
    }
}

/// Reads stored payloads, keeping the blocks it decompressed.
#[derive(Default)]
pub(super) struct PayloadReader {
    blocks: HashMap<i64, Vec<u8>>,
}

impl PayloadReader {
    /// The JSON text of a stored payload; `conn` reads the blocks references point to.
    pub(super) fn unpack(
        &mut self,
        conn: Option<&Connection>,
        value: ValueRef<'_>,
    ) -> Result<String, String> {
        let bytes = match value {
            ValueRef::Text(text) => text.to_vec(),
            ValueRef::Blob(blob) => match parse_block_ref(blob) {
                Some((block, offset, len)) => {
                    let conn = conn.ok_or_else(|| {
                        format!("payload block {block} is in a database file this connection cannot read")
                    })?;
                    self.block(conn, block)?
                        .get(offset..offset.saturating_add(len))
                        .ok_or_else(|| {
                            format!("payload block {block} has no bytes {offset}..+{len}")
                        })?
                        .to_vec()
                }
                None => unpack_bytes(blob)?,
            },
            ValueRef::Null => return Ok("{}".to_owned()),
            _ => return Err("payload is neither text nor a blob".to_owned()),
        };
        String::from_utf8(bytes).map_err(|e| e.to_string())
    }

    /// Block `id`, decompressed (once).
    fn block(&mut self, conn: &Connection, id: i64) -> Result<&[u8], String> {
        if !self.blocks.contains_key(&id) {
            let data: Vec<u8> = conn
                .query_row("SELECT data FROM payload_blocks WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("payload block {id} is missing"))?;
            if self.blocks.len() >= BLOCKS_KEPT {
                self.blocks.clear();
            }
            self.blocks.insert(id, unpack_bytes(&data)?);
        }
        self.blocks
            .get(&id)
            .map(Vec::as_slice)
            .ok_or_else(|| format!("payload block {id} is missing"))
    }
}

/// What `sonde_payload()` keeps between calls: the file it reads blocks from, its
/// connection to it (opened at the first reference), and the blocks it decompressed.
struct SqlPayloads {
    file: Option<PathBuf>,
    conn: Option<Connection>,
    reader: PayloadReader,
}

impl SqlPayloads {
    fn unpack(&mut self, value: ValueRef<'_>) -> Result<String, String> {
        let is_ref = matches!(value, ValueRef::Blob(blob) if parse_block_ref(blob).is_some());
        if is_ref
            && self.conn.is_none()
            && let Some(file) = &self.file
        {
            let conn = Connection::open_with_flags(
                file,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|conn| {
                // As patient as the store's own connections with a busy database.
                conn.busy_timeout(BLOCK_READ_BUSY_TIMEOUT)?;
                Ok(conn)
            })
            .map_err(|e| format!("cannot open {} to read payload blocks: {e}", file.display()))?;
            self.conn = Some(conn);
        }
        self.reader.unpack(self.conn.as_ref(), value)
    }
}

/// Registers `sonde_payload(payload)` on a connection to `file` (`None` in memory).
pub(super) fn register(conn: &Connection, file: Option<&Path>) -> rusqlite::Result<()> {
    let state = RefCell::new(SqlPayloads {
        file: file.map(Path::to_path_buf),
        conn: None,
        reader: PayloadReader::default(),
    });
    conn.create_scalar_function(
        "sonde_payload",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let unpacked = match state.try_borrow_mut() {
                Ok(mut state) => state.unpack(ctx.get_raw(0)),
                Err(_) => Err("called from within itself".to_owned()),
            };
            unpacked.map_err(|e| {
                rusqlite::Error::UserFunctionError(format!("sonde_payload: {e}").into())
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_payloads_read_back_in_sql_new_zstd_and_older_lz4() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn, None).unwrap();
        let text = format!(r#"{{"result":"{}"}}"#, "line of output\n".repeat(200));
        let zstd = zstd::bulk::compress(text.as_bytes(), ZSTD_LEVEL).unwrap();
        let lz4 = lz4_flex::compress_prepend_size(text.as_bytes());
        for packed in [zstd, lz4] {
            assert!(packed.len() < text.len() / 4);
            let got: String = conn
                .query_row("SELECT sonde_payload(?1)", [&packed], |r| r.get(0))
                .unwrap();
            assert_eq!(got, text);
        }
        let plain: i64 = conn
            .query_row(
                "SELECT json_extract(sonde_payload('{\"a\":1}'), '$.a')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(plain, 1);
        assert!(
            conn.query_row("SELECT sonde_payload(x'00ff')", [], |r| r
                .get::<_, String>(0))
                .is_err()
        );
        assert!(
            conn.query_row("SELECT sonde_payload(x'28b52ffd00')", [], |r| r
                .get::<_, String>(0))
                .is_err(),
            "a damaged zstd frame is an error, not a panic"
        );
    }
}
