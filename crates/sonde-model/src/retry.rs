//! How deliveries are retried: one policy for every sink (the store writer, the OTLP
//! exporter, the Langfuse target) — exponential back-off with random jitter (backon's),
//! capped, and a server's `Retry-After` honoured.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The longest `Retry-After` a sender waits for: a server asking for more is retried
/// then (and the attempt counted) rather than holding the caller for minutes.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Attempts, and the waits between them: doubling from `first_delay` up to `max_delay`,
/// each wait lengthened by a random part of itself (so that senders that failed together
/// do not retry together).
///
/// ```
/// use std::time::Duration;
/// let policy = sonde_model::RetryPolicy::new(4, Duration::from_millis(100), Duration::from_secs(1));
/// let waits: Vec<Duration> = policy.delays().collect();
/// assert_eq!(waits.len(), 3, "three waits between four attempts");
/// assert!(waits.iter().all(|w| *w >= Duration::from_millis(100) && *w <= Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the second attempt (before jitter).
    pub first_delay: Duration,
    /// The longest wait (before jitter).
    pub max_delay: Duration,
}

/// What one attempt came to, when it did not succeed.
#[derive(Debug)]
pub enum Attempt<E> {
    /// Worth another try (a connection failure, 429, 5xx), after `after` when the
    /// server said so (`Retry-After`).
    Retry {
        /// What went wrong.
        error: E,
        /// How long the server asked to wait.
        after: Option<Duration>,
    },
    /// Not worth another (a refusal that would come again).
    Fail(E),
}

impl RetryPolicy {
    /// A policy of `attempts` attempts (at least one) with waits from `first_delay`
    /// doubling up to `max_delay`.
    pub const fn new(attempts: u32, first_delay: Duration, max_delay: Duration) -> Self {
        Self {
            attempts: if attempts == 0 { 1 } else { attempts },
            first_delay,
            max_delay,
        }
    }

    fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
    }

    /// The waits between this policy's attempts (`attempts - 1` of them).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        self.builder()
            .with_max_times(self.attempts.saturating_sub(1) as usize)
            .build()
    }

    /// The same waits without end, for work that must get through eventually (a
    /// spool's replay): they stay at `max_delay` (plus jitter) once there.
    ///
    /// ```
    /// use std::time::Duration;
    /// let policy = sonde_model::RetryPolicy::new(2, Duration::from_millis(1), Duration::from_millis(4));
    /// assert_eq!(policy.endless_delays().take(100).count(), 100);
    /// ```
    pub fn endless_delays(&self) -> impl Iterator<Item = Duration> + use<> {
        self.builder().without_max_times().build()
    }

    /// Runs `attempt` until it succeeds, fails for good, or the attempts run out,
    /// sleeping this thread between tries (for blocking senders; an async one sleeps
    /// on its runtime over [`RetryPolicy::delays`]). A `Retry-After` longer than the
    /// planned wait is waited for instead, up to [`MAX_RETRY_AFTER`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use sonde_model::{Attempt, RetryPolicy};
    /// let policy = RetryPolicy::new(3, Duration::from_millis(1), Duration::from_millis(2));
    /// let mut tries = 0;
    /// let result: Result<u32, &str> = policy.run_blocking(|| {
    ///     tries += 1;
    ///     if tries < 3 { Err(Attempt::Retry { error: "busy", after: None }) } else { Ok(tries) }
    /// });
    /// assert_eq!(result, Ok(3));
    /// let refused: Result<(), &str> = policy.run_blocking(|| Err(Attempt::Fail("no")));
    /// assert_eq!(refused, Err("no"));
    /// ```
    pub fn run_blocking<T, E>(
        &self,
        mut attempt: impl FnMut() -> Result<T, Attempt<E>>,
    ) -> Result<T, E> {
        let mut delays = self.delays();
        loop {
            match attempt() {
                Ok(value) => return Ok(value),
                Err(Attempt::Fail(error)) => return Err(error),
                Err(Attempt::Retry { error, after }) => match delays.next() {
                    Some(planned) => std::thread::sleep(retry_wait(planned, after)),
                    None => return Err(error),
                },
            }
        }
    }
}

/// The wait before the next attempt: the planned one, or the server's `Retry-After`
/// when longer (up to [`MAX_RETRY_AFTER`]).
///
/// ```
/// use std::time::Duration;
/// use sonde_model::retry_wait;
/// let s = Duration::from_secs;
/// assert_eq!(retry_wait(s(1), None), s(1));
/// assert_eq!(retry_wait(s(1), Some(s(5))), s(5));
/// assert_eq!(retry_wait(s(1), Some(s(3600))), s(60));
/// ```
pub fn retry_wait(planned: Duration, after: Option<Duration>) -> Duration {
    after.map_or(planned, |after| after.min(MAX_RETRY_AFTER).max(planned))
}

/// A `Retry-After` header's wait: delay-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2026 07:28:00 GMT`, counted from now; a date past is no wait).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(sonde_model::parse_retry_after("120"), Some(Duration::from_secs(120)));
/// assert_eq!(sonde_model::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
/// assert_eq!(sonde_model::parse_retry_after("soon"), None);
/// ```
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_and_are_not_all_alike() {
        let policy = RetryPolicy::new(8, Duration::from_millis(10), Duration::from_millis(80));
        let waits: Vec<Duration> = policy.delays().collect();
        assert_eq!(waits.len(), 7);
        // Each wait is its planned delay plus up to as much again.
        let planned = [10, 20, 40, 80, 80, 80, 80];
        for (wait, planned) in waits.iter().zip(planned) {
            let planned = Duration::from_millis(planned);
            assert!(
                *wait >= planned && *wait <= planned * 2,
                "{wait:?} for {planned:?}"
            );
        }
        let again: Vec<Duration> = policy.delays().collect();
        assert_ne!(
            waits, again,
            "jitter is random, not seeded from the clock's start"
        );
    }

    #[test]
    fn a_policy_of_one_attempt_never_waits() {
        let policy = RetryPolicy::new(0, Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(policy.attempts, 1);
        assert_eq!(policy.delays().count(), 0);
        let mut tries = 0;
        let result: Result<(), &str> = policy.run_blocking(|| {
            tries += 1;
            Err(Attempt::Retry {
                error: "down",
                after: None,
            })
        });
        assert_eq!((result, tries), (Err("down"), 1));
    }
}
