use std::fmt;

/// Why the function cannot start: never served, reported as an init error.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("model {model:?}: checksum mismatch: expected sha256 {expected}, embedded bytes hash to {actual}")]
    ChecksumMismatch {
        model: String,
        expected: String,
        actual: String,
    },
    #[error("model {model:?}: no copy with the build's hash could be found; tried {}", tried.join("; "))]
    NoSource { model: String, tried: Vec<String> },
    #[error("model {model:?}: not embedded in this binary and no fallback store is configured")]
    NotEmbedded { model: String },
    #[error("model {model:?}: cannot be loaded: {message}")]
    Load { model: String, message: String },
    #[error("model {model:?}: invalid lock entry compiled into the binary: {message}")]
    BadEntry { model: String, message: String },
    #[error("the default model {0:?} is not among the packed models")]
    BadDefault(String),
}

/// A request that cannot be answered; maps onto an HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestError {
    /// 400: the request is malformed; the message names the field and what was expected.
    BadRequest(String),
    /// 404: no such model in this function.
    UnknownModel {
        name: String,
        available: Vec<String>,
    },
    /// 413: the payload is over the limit.
    TooLarge { size: usize, limit: usize },
    /// 503: the model exists but cannot be loaded right now.
    Unavailable(String),
    /// 500: a fault on our side. The detail goes to the log, never to the caller.
    Internal(String),
}

impl RequestError {
    pub fn bad(message: impl Into<String>) -> Self {
        RequestError::BadRequest(message.into())
    }

    pub fn status(&self) -> u16 {
        match self {
            RequestError::BadRequest(_) => 400,
            RequestError::UnknownModel { .. } => 404,
            RequestError::TooLarge { .. } => 413,
            RequestError::Unavailable(_) => 503,
            RequestError::Internal(_) => 500,
        }
    }

    /// The message safe to show the caller.
    pub fn public_message(&self) -> String {
        match self {
            RequestError::Internal(_) => "internal error while running the model".to_string(),
            other => other.to_string(),
        }
    }

    /// The JSON error object: `{"error": "...", "status": N}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "error": self.public_message(),
            "status": self.status(),
        });
        if let RequestError::UnknownModel { available, .. } = self {
            body["available_models"] = serde_json::json!(available);
        }
        body
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::BadRequest(m) => f.write_str(m),
            RequestError::UnknownModel { name, available } => write!(
                f,
                "unknown model {name:?}; available models: {}",
                available.join(", ")
            ),
            RequestError::TooLarge { size, limit } => write!(
                f,
                "request body is {size} bytes, over the {limit}-byte limit"
            ),
            RequestError::Unavailable(m) => write!(f, "model unavailable: {m}"),
            RequestError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for RequestError {}
