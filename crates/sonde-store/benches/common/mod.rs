//! What the store's benchmarks share: timing a query and printing its time.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

/// The median of three runs (one run when it takes more than two seconds).
pub async fn time<T, F: Future<Output = T>>(mut f: impl FnMut() -> F) -> Duration {
    let started = Instant::now();
    std::hint::black_box(f().await);
    let first = started.elapsed();
    if first > Duration::from_secs(2) {
        return first;
    }
    let mut runs = vec![first];
    for _ in 0..2 {
        let started = Instant::now();
        std::hint::black_box(f().await);
        runs.push(started.elapsed());
    }
    runs.sort();
    runs[1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
