//! How far a file has been read, and how a file is recognised as unchanged.

use serde::{Deserialize, Serialize};

/// How far a file has been read (the parser's state there is kept beside it).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// The file's size when it was read.
    pub(crate) size: u64,
    /// Its modification time, in nanoseconds since the Unix epoch.
    pub(crate) mtime_ns: u64,
    /// Its inode (0 where there are none).
    pub(crate) inode: u64,
    /// The offset after the last complete line read.
    pub(crate) offset: u64,
    /// For a target sent final records only: the parser state holds records that wait
    /// for the file to go quiet, so the file is looked at again even unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) holding: bool,
}

impl Cursor {
    /// A cursor at `offset` of the file `meta` describes.
    pub(crate) fn at(meta: &std::fs::Metadata, offset: u64) -> Self {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Cursor {
            size: meta.len(),
            mtime_ns,
            inode,
            offset,
            holding: false,
        }
    }

    /// Whether the file is as this cursor saw it (same size, time and inode).
    pub(crate) fn same_file(&self, other: &Cursor) -> bool {
        self.size == other.size && self.mtime_ns == other.mtime_ns && self.inode == other.inode
    }
}
