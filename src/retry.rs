//! Retrying with exponential backoff, bounded by a deadline and stopped by
//! cancellation.

use std::{future::Future, time::Duration};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How retries are spaced and bounded.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Give up at this instant.
    pub deadline: Instant,
}

impl Backoff {
    /// Delays from 200 ms doubling to 10 s, giving up after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            deadline: Instant::now() + timeout,
        }
    }

    /// The delay before attempt `n + 1`, for `n` failures so far (n >= 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Why retrying stopped without success.
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E> {
    /// The error was not one to retry.
    #[error("{0}")]
    Permanent(E),
    /// The deadline passed; the last error is kept.
    #[error("gave up after {attempts} attempts: {last}")]
    DeadlineExceeded {
        /// Attempts made.
        attempts: u32,
        /// The last error seen.
        last: E,
    },
    /// Cancelled (SIGTERM).
    #[error("cancelled")]
    Cancelled,
}

/// Runs `op` until it succeeds, fails with an error `is_transient` rejects,
/// the deadline passes, or `cancel` fires.
pub async fn retry<T, E, F, Fut>(
    what: &str,
    backoff: &Backoff,
    cancel: &CancellationToken,
    is_transient: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, RetryError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut failures = 0u32;
    loop {
        let result = tokio::select! {
            r = op() => r,
            () = cancel.cancelled() => return Err(RetryError::Cancelled),
        };
        let error = match result {
            Ok(v) => return Ok(v),
            Err(e) if !is_transient(&e) => return Err(RetryError::Permanent(e)),
            Err(e) => e,
        };
        failures = failures.saturating_add(1);
        let delay = backoff.delay(failures);
        if Instant::now() + delay > backoff.deadline {
            return Err(RetryError::DeadlineExceeded {
                attempts: failures,
                last: error,
            });
        }
        tracing::info!(%error, attempt = failures, ?delay, "{what}: will retry");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return Err(RetryError::Cancelled),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn delays_double_to_the_cap() {
        let b = Backoff::with_timeout(Duration::from_secs(1));
        assert_eq!(b.delay(1), Duration::from_millis(200));
        assert_eq!(b.delay(3), Duration::from_millis(800));
        assert_eq!(b.delay(30), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_then_succeeds() {
        let calls = AtomicU32::new(0);
        let b = Backoff::with_timeout(Duration::from_secs(60));
        let r: Result<u32, RetryError<String>> = retry(
            "t",
            &b,
            &CancellationToken::new(),
            |_| true,
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 3 {
                    Err(format!("fail {n}"))
                } else {
                    Ok(n)
                }
            },
        )
        .await;
        assert_eq!(r.unwrap(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_stop_at_once() {
        let b = Backoff::with_timeout(Duration::from_secs(60));
        let r: Result<(), RetryError<&str>> = retry(
            "t",
            &b,
            &CancellationToken::new(),
            |_| false,
            || async { Err("no") },
        )
        .await;
        assert!(matches!(r, Err(RetryError::Permanent("no"))));
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_bounds_the_retries() {
        let b = Backoff::with_timeout(Duration::from_secs(5));
        let r: Result<(), RetryError<&str>> = retry(
            "t",
            &b,
            &CancellationToken::new(),
            |_| true,
            || async { Err("down") },
        )
        .await;
        match r {
            Err(RetryError::DeadlineExceeded { attempts, last }) => {
                assert!(attempts >= 3, "{attempts}");
                assert_eq!(last, "down");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_stops_waiting() {
        let b = Backoff::with_timeout(Duration::from_secs(3600));
        let cancel = CancellationToken::new();
        cancel.cancel();
        let r: Result<(), RetryError<&str>> =
            retry("t", &b, &cancel, |_| true, std::future::pending).await;
        assert!(matches!(r, Err(RetryError::Cancelled)));
    }
}
