//! A Sonde store as a sync target: records are written by threads of their own while
//! the syncer reads on; replacements replace; cursors are kept in the store itself.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use sonde_model::{Record, SyncCursor};
use sonde_store::TraceStore;

use crate::{SyncError, SyncTarget};

/// Batches a store target lets wait while it writes one (parsing goes on meanwhile).
/// One: with two, a cold sync of 1 GB of transcripts peaked 11–13 MB higher (256–257
/// against 244–246 MB) for no less CPU time.
const STORE_QUEUE_BATCHES: usize = 1;

/// Threads that turn batches into rows and hand them to the store, so that one
/// batch is prepared while the store writes another. Order between them does not
/// matter: a write keeps what is stored and a replacement replaces it, so a
/// replacement overtaking the first version of its record ends the same.
const STORE_WORKERS: usize = 2;

/// Batches sent and not yet stored, and the first failure.
#[derive(Default)]
struct InFlight {
    batches: usize,
    failure: Option<String>,
}

type Shared = Arc<(Mutex<InFlight>, Condvar)>;

/// A batch for the store: new records, and replacements.
type Batch = (Vec<Record>, Vec<Record>);

/// A Sonde store: records are written by threads of their own while the syncer reads
/// on; replacements replace; cursors are kept in the store itself.
pub struct StoreTarget {
    store: Arc<dyn TraceStore>,
    handle: tokio::runtime::Handle,
    jobs: Option<SyncSender<Batch>>,
    workers: Vec<JoinHandle<()>>,
    shared: Shared,
}

impl StoreTarget {
    /// A target writing into `store`, driving its futures on `handle`'s runtime. Call
    /// it from a thread outside that runtime (for instance in `spawn_blocking`).
    pub fn new(store: Arc<dyn TraceStore>, handle: tokio::runtime::Handle) -> Self {
        let (jobs, receiver) = sync_channel(STORE_QUEUE_BATCHES);
        let receiver = Arc::new(Mutex::new(receiver));
        let shared: Shared = Arc::default();
        let workers: Vec<JoinHandle<()>> = (0..STORE_WORKERS)
            .filter_map(|i| {
                let (store, handle, receiver, shared) = (
                    store.clone(),
                    handle.clone(),
                    receiver.clone(),
                    shared.clone(),
                );
                std::thread::Builder::new()
                    .name(format!("sonde-sync-store-{i}"))
                    .spawn(move || store_worker(store, handle, receiver, shared))
                    .ok()
            })
            .collect();
        Self {
            store,
            handle,
            jobs: (!workers.is_empty()).then_some(jobs),
            workers,
            shared,
        }
    }

    fn check(&self) -> Result<(), SyncError> {
        let failure = self.shared.0.lock().map_or_else(
            |_| Some("store writer panicked".into()),
            |f| f.failure.clone(),
        );
        match failure {
            Some(reason) => Err(SyncError::Target {
                target: self.describe(),
                reason,
            }),
            None => Ok(()),
        }
    }

    fn closed(&self) -> SyncError {
        SyncError::Target {
            target: self.describe(),
            reason: "store writer stopped".into(),
        }
    }
}

fn store_worker(
    store: Arc<dyn TraceStore>,
    handle: tokio::runtime::Handle,
    jobs: Arc<Mutex<Receiver<Batch>>>,
    shared: Shared,
) {
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok((records, replacements)) = job else {
            return;
        };
        let failed = shared.0.lock().map(|f| f.failure.is_some()).unwrap_or(true);
        let result = if failed {
            Ok(())
        } else {
            handle.block_on(async {
                store.write(&records).await?;
                store.replace(&replacements).await.map(|_| ())
            })
        };
        if let Ok(mut in_flight) = shared.0.lock() {
            in_flight.batches = in_flight.batches.saturating_sub(1);
            if let Err(e) = result {
                in_flight.failure.get_or_insert(e.to_string());
            }
        }
        shared.1.notify_all();
    }
}

impl SyncTarget for StoreTarget {
    fn describe(&self) -> String {
        format!("store ({})", self.store.backend())
    }

    fn load_cursors(&mut self, source: &str) -> Result<BTreeMap<String, String>, SyncError> {
        self.handle
            .block_on(self.store.sync_cursors(source))
            .map_err(|e| SyncError::Target {
                target: self.describe(),
                reason: e.to_string(),
            })
    }

    fn load_state(&mut self, source: &str, path: &str) -> Result<Option<String>, SyncError> {
        self.handle
            .block_on(self.store.sync_state(source, path))
            .map_err(|e| SyncError::Target {
                target: self.describe(),
                reason: e.to_string(),
            })
    }

    fn send(&mut self, records: Vec<Record>, replacements: Vec<Record>) -> Result<(), SyncError> {
        self.check()?;
        let jobs = self.jobs.as_ref().ok_or_else(|| self.closed())?;
        if let Ok(mut in_flight) = self.shared.0.lock() {
            in_flight.batches += 1;
        }
        jobs.send((records, replacements))
            .map_err(|_| self.closed())
    }

    fn flush(&mut self) -> Result<(), SyncError> {
        let (lock, done) = &*self.shared;
        let mut in_flight = lock.lock().map_err(|_| self.closed())?;
        while in_flight.batches > 0 {
            in_flight = done.wait(in_flight).map_err(|_| self.closed())?;
        }
        drop(in_flight);
        self.check()
    }

    fn save_cursors(&mut self, source: &str, cursors: Vec<SyncCursor>) -> Result<(), SyncError> {
        self.handle
            .block_on(self.store.save_sync_cursors(source, &cursors))
            .map_err(|e| SyncError::Target {
                target: self.describe(),
                reason: e.to_string(),
            })
    }
}

impl Drop for StoreTarget {
    fn drop(&mut self) {
        self.jobs.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
