//! Why one store's copy of a model was not used. Each names the place (a path or an
//! `s3://` URL) and what was wrong; `fetch` lists one per store tried.

use std::time::Duration;

use crate::checksum::HashMismatch;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("{place}: {source}")]
    Io {
        place: String,
        source: std::io::Error,
    },
    #[error("{place}: resolves to {real}, outside the store {root}; skipped")]
    OutsideStore {
        place: String,
        real: String,
        root: String,
    },
    #[error("{place}: not a regular file; skipped")]
    NotAFile { place: String },
    #[error("{place}: {actual} bytes, the build expects {expected}; {then}")]
    WrongSize {
        place: String,
        actual: u64,
        expected: u64,
        /// What was done instead ("skipped without reading it", "not downloaded").
        then: &'static str,
    },
    #[error("{place}: more than the {expected} bytes the build expects; not used")]
    TooLong { place: String, expected: u64 },
    #[error("{place}: wrong contents (sha256 {}, the build expects {}); not used", .mismatch.actual, .mismatch.expected)]
    WrongContents {
        place: String,
        mismatch: HashMismatch,
    },
    #[error("{}gave up after the {:.1} s fallback budget (MODEL_FALLBACK_BUDGET_SECS)",
        .place.as_ref().map(|p| format!("{p}: ")).unwrap_or_default(), .budget.as_secs_f64())]
    OutOfTime {
        place: Option<String>,
        budget: Duration,
    },
    #[error("no time left in the fallback budget")]
    NoTimeLeft,
    #[error("{place}: {detail}")]
    S3 { place: String, detail: String },
    /// The thread or runtime a read runs on could not start, or panicked.
    #[error("{0}")]
    Worker(&'static str),
}

impl StoreError {
    pub(crate) fn io(place: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> StoreError {
        let place = place.to_string();
        move |source| StoreError::Io { place, source }
    }
}
