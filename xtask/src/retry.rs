//! Bounded retries for every remote call xtask makes by hand (model sources over HTTPS and
//! S3, the OCI registry push): what is worth another try, how long to wait — what the
//! server's `Retry-After` asks, capped, else a growing backoff —, and when to give up.

use std::fmt::Display;
use std::time::Duration;

use anyhow::Result;
use reqwest::header::{HeaderMap, RETRY_AFTER};

pub const ATTEMPTS: u32 = 3;

/// The longest `Retry-After` honoured: a server asking for more has the caller give up
/// sooner rather than hang.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub enum Failure {
    /// Worth another try (connection trouble, 5xx, throttling, a cut-off body), after what
    /// the server asked for if it did.
    Retry {
        error: anyhow::Error,
        after: Option<Duration>,
    },
    /// Not going to change (404, 403, a bad URL, a local write error).
    Final(anyhow::Error),
}

impl Failure {
    /// A failure worth another try, with no wait asked for.
    pub fn retry(error: anyhow::Error) -> Self {
        Failure::Retry { error, after: None }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by S3, ECR or the hubs, and
/// falls back to the backoff), capped at [`MAX_WAIT`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_WAIT))
}

/// Waits before the `n`th retry: what the server asked, else 250 ms × n².
pub fn pause(n: u32, after: Option<Duration>) {
    std::thread::sleep(after.unwrap_or(Duration::from_millis(250 * u64::from(n * n))));
}

/// Runs `attempt` up to [`ATTEMPTS`] times, pausing between tries, stopping at the first
/// success or final failure.
pub fn with_retries<T>(
    what: &dyn Display,
    attempt: impl FnMut(u32) -> Result<T, Failure>,
) -> Result<T> {
    with_attempts(what, ATTEMPTS, attempt)
}

/// [`with_retries`] with `attempts` tries in all.
pub fn with_attempts<T>(
    what: &dyn Display,
    attempts: u32,
    mut attempt: impl FnMut(u32) -> Result<T, Failure>,
) -> Result<T> {
    let attempts = attempts.max(1);
    let mut last = None;
    for n in 1..=attempts {
        match attempt(n) {
            Ok(v) => return Ok(v),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Retry { error, after }) => {
                if n < attempts {
                    eprintln!("{what}: {error:#}; retrying ({n}/{attempts})");
                    pause(n, after);
                }
                last = Some(error);
            }
        }
    }
    Err(last
        .expect("at least one attempt")
        .context(format!("{what}: gave up after {attempts} attempts")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, "3600".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(MAX_WAIT));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&headers),
            None,
            "the date form falls back to the backoff"
        );
    }

    #[test]
    fn gives_up_after_the_attempts_and_stops_at_a_final_failure() {
        let mut tries = 0;
        let e = with_retries(&"x", |_| -> Result<(), Failure> {
            tries += 1;
            Err(Failure::Retry {
                error: anyhow::anyhow!("busy"),
                after: Some(Duration::ZERO),
            })
        })
        .unwrap_err();
        assert_eq!(tries, ATTEMPTS);
        assert!(
            format!("{e:#}").contains("gave up after 3 attempts"),
            "{e:#}"
        );
        let mut tries = 0;
        with_retries(&"x", |_| -> Result<(), Failure> {
            tries += 1;
            Err(Failure::Final(anyhow::anyhow!("404")))
        })
        .unwrap_err();
        assert_eq!(tries, 1);
    }
}
