//! The sink worker: a dedicated thread that takes records from recording callers and
//! hands them to the sink in batches, so callers never wait on I/O.

use std::sync::Arc;
use std::thread::JoinHandle;

use sonde_model::Record;
use tokio::sync::{mpsc, oneshot};

use crate::{SinkError, TraceSink};

/// Records waiting for the worker before recording callers wait (back-pressure).
pub const QUEUE_CAPACITY: usize = 65_536;
/// The most records handed to the sink in one batch.
pub const MAX_BATCH: usize = 4_096;
/// After a batch, the worker waits this long for more records before it parks. While
/// it lingers, recording callers queue records without waking it (a wake is a syscall,
/// dearer than everything else a record costs); records reach the sink at most this
/// much later.
pub const BATCH_LINGER: std::time::Duration = std::time::Duration::from_millis(1);

// Records are nearly every command; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Command {
    Record(Record),
    Flush(oneshot::Sender<Result<(), SinkError>>),
}

/// The sending side, held by the tracer; the thread ends when it is dropped.
pub(crate) struct SinkWorker {
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl SinkWorker {
    pub(crate) fn spawn(sink: Arc<dyn TraceSink>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("sonde-sink".into())
            .spawn(move || run(sink, rx))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues a record; waits (asynchronously) only when the queue is full.
    pub(crate) async fn send(&self, record: Record) -> Result<(), SinkError> {
        let tx = self.tx.as_ref().ok_or(SinkError::Closed)?;
        tx.send(Command::Record(record))
            .await
            .map_err(|_| SinkError::Closed)
    }

    /// Waits until everything queued before this call is written and flushed; returns
    /// the first error since the previous flush.
    pub(crate) async fn flush(&self) -> Result<(), SinkError> {
        let tx = self.tx.as_ref().ok_or(SinkError::Closed)?;
        let (done, answer) = oneshot::channel();
        tx.send(Command::Flush(done))
            .await
            .map_err(|_| SinkError::Closed)?;
        answer.await.map_err(|_| SinkError::Closed)?
    }
}

impl Drop for SinkWorker {
    fn drop(&mut self) {
        // Closing the channel lets the thread write what is queued, flush and end;
        // joining makes sure nothing recorded is lost when the tracer goes away.
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(sink: Arc<dyn TraceSink>, mut rx: mpsc::Receiver<Command>) {
    let mut batch: Vec<Record> = Vec::with_capacity(MAX_BATCH);
    let mut failure: Option<SinkError> = None;
    let write = |batch: &mut Vec<Record>, failure: &mut Option<SinkError>| {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = sink.write(batch) {
            tracing::error!(error = %e, records = batch.len(), "sink write failed");
            failure.get_or_insert(e);
        }
        batch.clear();
    };
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        loop {
            let Some(command) = next.take() else {
                // Drained: write, then linger once for more before parking.
                write(&mut batch, &mut failure);
                std::thread::sleep(BATCH_LINGER);
                match rx.try_recv() {
                    Ok(command) => {
                        next = Some(command);
                        continue;
                    }
                    Err(_) => break,
                }
            };
            match command {
                Command::Record(record) => {
                    batch.push(record);
                    if batch.len() >= MAX_BATCH {
                        write(&mut batch, &mut failure);
                    }
                }
                Command::Flush(done) => {
                    write(&mut batch, &mut failure);
                    let result = match failure.take() {
                        Some(e) => Err(e),
                        None => sink.flush(),
                    };
                    let _ = done.send(result);
                }
            }
            next = rx.try_recv().ok();
        }
    }
    write(&mut batch, &mut failure);
    if let Err(e) = sink.flush() {
        tracing::error!(error = %e, "sink flush at shutdown failed");
    }
}
