//! Large payloads, compressed. Tool results, prompts and file contents make most of an
//! agent trace's bytes; SQLite writes each byte twice (WAL, then the database), so
//! payloads of [`PACK_AT`] bytes or more are stored zstd-compressed as a BLOB (smaller
//! ones stay JSON text). SQL reads either with `sonde_payload(payload)`, which every
//! connection of the store knows: `json_extract(sonde_payload(payload), '$.tool_name')`.
//!
//! Why zstd at level [`ZSTD_LEVEL`] rather than LZ4: on text its entropy coding halves
//! what LZ4 leaves (measured on the ingest benchmark's conversation text), at a cost
//! well under the writer's. Databases written before keep LZ4 blobs (a 4-byte length,
//! then the block); both read back, told apart by zstd's frame magic.

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;

use crate::rows::RecordRow;

/// Payloads this long or longer are compressed.
pub(super) const PACK_AT: usize = 1024;

/// zstd's compression level for payloads: its fastest level with entropy coding.
pub(super) const ZSTD_LEVEL: i32 = 1;

/// The largest payload decoded into a buffer reserved from the size its frame states;
/// larger ones (or frames without a size) are decoded as a stream.
const BULK_DECODE_MAX: usize = 64 << 20;

/// The first bytes of every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

thread_local! {
    /// One compression context per thread: making one per payload (its tables, a few
    /// hundred KiB of fresh pages) cost as much as the compression itself.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// One decompression context per thread, for the same reason.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Compresses the payloads worth it (those that shrink by an eighth or more).
pub(super) fn pack(rows: &mut [RecordRow]) {
    COMPRESSOR.with_borrow_mut(|compressor| {
        if compressor.is_none() {
            *compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        let Some(compressor) = compressor else { return };
        for row in rows.iter_mut().filter(|r| r.payload.len() >= PACK_AT) {
            let Ok(packed) = compressor.compress(row.payload.as_bytes()) else {
                continue;
            };
            if packed.len() < row.payload.len() - row.payload.len() / 8 {
                row.packed_payload = Some(packed);
            }
        }
    });
}

/// The bytes a packed payload holds: zstd frames, or the LZ4 blocks of older databases.
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

/// The JSON text of a stored payload, compressed or not.
pub(super) fn unpack(value: ValueRef<'_>) -> Result<String, String> {
    match value {
        ValueRef::Text(text) => String::from_utf8(text.to_vec()).map_err(|e| e.to_string()),
        ValueRef::Blob(blob) => {
            unpack_bytes(blob).and_then(|bytes| String::from_utf8(bytes).map_err(|e| e.to_string()))
        }
        ValueRef::Null => Ok("{}".to_owned()),
        _ => Err("payload is neither text nor a blob".to_owned()),
    }
}

/// Registers `sonde_payload(payload)` on a connection.
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "sonde_payload",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            unpack(ctx.get_raw(0)).map_err(|e| {
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
        register(&conn).unwrap();
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
