//! What each request and each model load did, as data: the function turns these into
//! metrics. Model names here are only ever the registry's own, so a caller cannot mint new
//! metric dimensions by naming models that do not exist.

use std::time::Duration;

use serde_json::Value;

use crate::error::RequestError;

/// One request's answer and its record.
#[derive(Debug)]
pub struct Answered {
    pub result: Result<Value, RequestError>,
    pub record: RequestRecord,
}

/// What one request did.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// The model that answered or was asked for, when it is one this registry serves.
    pub model: Option<String>,
    /// Which store its bytes came from (`embedded`, `efs`, `s3`), when it ran.
    pub source: Option<&'static str>,
    /// Rows answered (texts, or the batch axis of the inputs); 0 for a rejected request.
    pub rows: usize,
    /// The HTTP status the request was answered with.
    pub status: u16,
    pub duration: Duration,
}

impl RequestRecord {
    /// A request turned away before the registry saw it (an unparsable event, say).
    pub fn rejected(status: u16, duration: Duration) -> Self {
        RequestRecord {
            model: None,
            source: None,
            rows: 0,
            status,
            duration,
        }
    }

    /// `2xx`, `4xx` or `5xx`.
    pub fn status_class(&self) -> &'static str {
        match self.status {
            200..=299 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        }
    }

    /// A request refused for what it asked (malformed, unknown model, over a limit).
    pub fn failed_validation(&self) -> bool {
        (400..500).contains(&self.status)
    }
}

/// One model load, at init or on first use.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelLoad {
    pub model: String,
    /// `embedded`, or the fallback store that served it (`efs`, `s3`).
    pub source: &'static str,
    /// From the start of the load to a runnable model.
    pub duration: Duration,
}

impl ModelLoad {
    pub fn used_fallback(&self) -> bool {
        self.source != "embedded"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_and_validation_failures() {
        let record = |status| RequestRecord::rejected(status, Duration::ZERO);
        assert_eq!(record(200).status_class(), "2xx");
        assert_eq!(record(413).status_class(), "4xx");
        assert_eq!(record(503).status_class(), "5xx");
        assert!(record(400).failed_validation());
        assert!(record(404).failed_validation());
        assert!(!record(200).failed_validation());
        assert!(!record(500).failed_validation());
    }
}
