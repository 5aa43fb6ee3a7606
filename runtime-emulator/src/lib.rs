//! A local stand-in for the AWS Lambda execution environment, on 127.0.0.1:
//!
//! - [`RuntimeApi`]: the documented Runtime API (2018-06-01): `/runtime/invocation/next`,
//!   `/runtime/invocation/{id}/response`, `/runtime/invocation/{id}/error` and
//!   `/runtime/init/error`, with the request-id, deadline, function-ARN and trace headers.
//! - [`Function`]: a real `bootstrap` process started against it, with the environment
//!   Lambda sets, under the CPU share and memory limit Lambda gives its memory size (a
//!   cgroup), its log lines captured; out-of-memory kills, crashes and timeouts answered as
//!   Lambda answers them, the next invocation re-initialising.
//! - [`image`]: a container image (OCI layout) checked and unpacked, so [`Function`] runs its
//!   entrypoint from that root, in a private mount namespace, as Lambda would.
//! - [`front_door`]: an HTTP server that turns each request into an API Gateway v2 event.
//! - [`events`]: builders for the event shapes a function receives.
//!
//! Used by `cargo xtask local`/`invoke`, the end-to-end tests and the benchmarks.

mod cgroup;
pub mod events;
pub mod front_door;
mod function;
pub mod http_util;
pub mod image;
mod runtime_api;
mod sandbox;

pub use cgroup::{Limits, Unavailable};
pub use function::{Function, FunctionConfig, ImageRoot, MAX_PAYLOAD_BYTES};
pub use runtime_api::{Outcome, RuntimeApi};

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("the function did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the request is {0} bytes; Lambda accepts at most 6,291,456 (RequestEntityTooLargeException)")]
    RequestTooLarge(usize),
    #[error("the function reported an init error: {0}")]
    Init(serde_json::Value),
    #[error("emulator I/O: {0}")]
    Io(#[from] std::io::Error),
}
