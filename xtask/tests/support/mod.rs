//! What the xtask integration tests share: the fixtures `cargo xtask test` builds, and
//! invoking a function under the Runtime API emulator.

// Each test crate uses its own part of this module.
#![allow(dead_code)]
use std::path::PathBuf;
use std::time::Duration;

use runtime_emulator::{Function, Outcome};
use serde_json::Value;

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A path `cargo xtask test` passes in the environment.
pub fn env_path(var: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is not set: run the tests with `cargo xtask test`, which builds the test fixtures")
    })
}

/// One invocation that must produce a response; the function's logs on failure.
pub async fn invoke(f: &Function, request: &Value) -> Value {
    match f
        .invoke(serde_json::to_vec(request).unwrap(), TIMEOUT)
        .await
    {
        Ok(Outcome::Response(body)) => serde_json::from_slice(&body).expect("JSON response"),
        other => panic!(
            "invocation failed: {other:?}\nlogs:\n{}",
            f.logs().join("\n")
        ),
    }
}
