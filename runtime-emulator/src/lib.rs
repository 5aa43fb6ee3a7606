//! A local stand-in for the AWS Lambda execution environment, on 127.0.0.1:
//!
//! - [`RuntimeApi`]: the documented Runtime API (2018-06-01): `/runtime/invocation/next`,
//!   `/runtime/invocation/{id}/response`, `/runtime/invocation/{id}/error` and
//!   `/runtime/init/error`, with the request-id, deadline, function-ARN and trace headers.
//! - [`Function`]: a real `bootstrap` process started against it, with the environment
//!   Lambda sets, its log lines captured.
//! - [`front_door`]: an HTTP server that turns each request into an API Gateway v2 event.
//! - [`events`]: builders for the event shapes a function receives.
//!
//! Used by `cargo xtask local`/`invoke`, the end-to-end tests and the benchmarks.

pub mod events;
pub mod front_door;
mod function;
pub mod http_util;
mod runtime_api;

pub use function::{Function, FunctionConfig};
pub use runtime_api::{Outcome, RuntimeApi};

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("the function did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the function process exited ({0}) before answering")]
    Exited(String),
    #[error("the function reported an init error: {0}")]
    Init(serde_json::Value),
    #[error("emulator I/O: {0}")]
    Io(#[from] std::io::Error),
}
