//! Bounded retries shared by the remote sources.

use std::fmt::Display;
use std::time::Duration;

use anyhow::Result;

pub const ATTEMPTS: u32 = 3;

pub enum Failure {
    /// Worth another try (connection trouble, 5xx, throttling, a cut-off body).
    Retry(anyhow::Error),
    /// Not going to change (404, 403, a bad URL, a local write error).
    Final(anyhow::Error),
}

/// Runs `attempt` up to [`ATTEMPTS`] times with a short linear back-off, stopping at the first
/// success or final failure.
pub fn with_retries<T>(
    what: &dyn Display,
    mut attempt: impl FnMut(u32) -> Result<T, Failure>,
) -> Result<T> {
    let mut last = None;
    for n in 1..=ATTEMPTS {
        match attempt(n) {
            Ok(v) => return Ok(v),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Retry(e)) => {
                if n < ATTEMPTS {
                    eprintln!("{e:#}; retrying ({n}/{ATTEMPTS})");
                    std::thread::sleep(Duration::from_millis(500 * u64::from(n)));
                }
                last = Some(e);
            }
        }
    }
    Err(last
        .expect("ATTEMPTS is at least one")
        .context(format!("{what}: gave up after {ATTEMPTS} attempts")))
}
