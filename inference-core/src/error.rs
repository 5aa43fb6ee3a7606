use std::fmt;

/// How much of a caller's string an error message quotes.
pub const QUOTE_CHARS: usize = 64;
/// The longest error message a caller or a log line ever gets.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// A caller-supplied string as error messages quote it: escaped, and cut to
/// [`QUOTE_CHARS`] characters with the full length said, so a multi-megabyte name cannot
/// make a multi-megabyte error or log line.
pub fn quote(s: &str) -> String {
    let count = s.chars().count();
    if count <= QUOTE_CHARS {
        return format!("{s:?}");
    }
    let head: String = s.chars().take(QUOTE_CHARS).collect();
    format!("{head:?}… ({count} characters)")
}

/// `message` cut to [`MAX_MESSAGE_CHARS`] characters.
fn bounded(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}… (message cut)", &message[..at]),
        None => message,
    }
}

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
    /// 413: the request asks for more work than a limit allows; the message names the limit.
    OverLimit(String),
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
            RequestError::TooLarge { .. } | RequestError::OverLimit(_) => 413,
            RequestError::Unavailable(_) => 503,
            RequestError::Internal(_) => 500,
        }
    }

    /// The message safe to show the caller (and to log): bounded in length.
    pub fn public_message(&self) -> String {
        match self {
            RequestError::Internal(_) => "internal error while running the model".to_string(),
            other => bounded(other.to_string()),
        }
    }

    /// The full detail for the log line, bounded in length (an internal error's detail
    /// names our own state, never the request body).
    pub fn log_message(&self) -> String {
        bounded(self.to_string())
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
                "unknown model {}; available models: {}",
                quote(name),
                available.join(", ")
            ),
            RequestError::TooLarge { size, limit } => write!(
                f,
                "request body is {size} bytes, over the {limit}-byte limit"
            ),
            RequestError::OverLimit(m) => f.write_str(m),
            RequestError::Unavailable(m) => write!(f, "model unavailable: {m}"),
            RequestError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for RequestError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_strings_are_quoted_short_and_messages_bounded() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let long = "é".repeat(10_000);
        let q = quote(&long);
        assert!(
            q.chars().count() < 100 && q.ends_with("(10000 characters)"),
            "{q}"
        );
        let e = RequestError::bad("x".repeat(1_000_000));
        assert!(e.public_message().chars().count() <= MAX_MESSAGE_CHARS + 20);
        assert!(e.log_message().chars().count() <= MAX_MESSAGE_CHARS + 20);
        let e = RequestError::UnknownModel {
            name: "m".repeat(1_000_000),
            available: vec!["a".into()],
        };
        assert!(e.public_message().len() < 200, "{}", e.public_message());
    }
}
