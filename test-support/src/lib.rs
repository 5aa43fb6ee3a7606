//! What the tests share, in one place:
//! - [`fixture`] / [`require_fixtures!`]: the fixtures `cargo xtask test` builds or fetches and
//!   names in the environment. Under plain `cargo test` they are absent: a test that needs one
//!   says so and returns (skipped). `cargo xtask test` sets [`FIXTURES_REQUIRED`], and there
//!   an absent fixture fails the test instead: CI never skips silently.
//! - [`function`]: starting a `bootstrap` under the Runtime API emulator and invoking it.
//! - Real servers on 127.0.0.1, started per test and killed on drop: [`MotoServer`] (moto's
//!   server mode: the S3, Lambda and IAM APIs) and [`HttpServer`] (`python3 -m http.server`
//!   over a directory, standing in for a model hub), and [`LambdaProxy`] in front of moto for
//!   the Lambda APIs moto lacks (provisioned concurrency), and [`RegistryServer`] (Debian's
//!   `docker-registry`, the reference OCI registry, with htpasswd auth).
//! - [`require_root!`]: tests of Lambda's limits (cgroups) and the image sandbox (mount
//!   namespaces) skip, saying so, when not run as root.
//! - [`workspace_root`], [`default_samples`] and [`output_text`].

pub mod function;
pub mod hostile;
mod http;
mod lambda_proxy;
mod moto;
mod registry;

use std::path::{Path, PathBuf};

pub use http::HttpServer;
pub use lambda_proxy::{LambdaProxy, Recorded};
pub use moto::MotoServer;
pub use registry::RegistryServer;

/// Set by `cargo xtask test`: a missing fixture is then a failure, not a skip.
pub const FIXTURES_REQUIRED: &str = "ONNX_LAMBDA_FIXTURES_REQUIRED";

/// The path `cargo xtask test` put in `var`, or `None` (with a line saying the test is
/// skipped and how to run it) under plain `cargo test`.
pub fn fixture(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os(FIXTURES_REQUIRED).is_some() => {
            panic!("{var} is not set although `cargo xtask test` should have set it")
        }
        None => {
            eprintln!(
                "skipped: {var} is not set; run `cargo xtask test`, which builds and fetches the test fixtures"
            );
            None
        }
    }
}

/// Whether every fixture in `vars` is there (each missing one said, as in [`fixture`]).
pub fn fixtures_present(vars: &[&str]) -> bool {
    // Every one is looked up (not `all`, which stops at the first), so each is said.
    let missing = vars.iter().filter(|v| fixture(v).is_none()).count();
    missing == 0
}

/// A fixture's path once [`require_fixtures!`] has checked it is there.
pub fn fixture_path(var: &str) -> PathBuf {
    fixture(var).unwrap_or_else(|| {
        panic!("{var} is not set: run the tests with `cargo xtask test`, which builds the test fixtures")
    })
}

/// Returns from the calling test (skipped) unless every named fixture is there.
#[macro_export]
macro_rules! require_fixtures {
    ($($var:expr),+ $(,)?) => {
        if !$crate::fixtures_present(&[$($var),+]) {
            return;
        }
    };
}

/// Whether this process runs as root (effective uid 0, from `/proc/self/status`): Lambda's
/// limits (cgroups) and the image sandbox (mount namespaces) need it.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Skips the test (returns, saying why) unless it runs as root — under `cargo xtask test`
/// too: a contributor without root runs everything else.
#[macro_export]
macro_rules! require_root {
    ($why:expr) => {
        if !$crate::is_root() {
            eprintln!("skipped: needs root ({}); run as root to include it", $why);
            return;
        }
    };
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support is inside the workspace")
        .to_path_buf()
}

/// `models/default/samples.json`: held-out rows with scikit-learn's probabilities.
pub fn default_samples() -> serde_json::Value {
    let path = workspace_root().join("models/default/samples.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("samples.json is JSON")
}

/// A finished command's stdout and stderr, for assertions and failure messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The text of a command that must have succeeded (else the test fails showing it all).
pub fn succeeded(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "the command failed:\n{}",
        output_text(&out)
    );
    output_text(&out)
}

/// The text of a command that must have failed.
pub fn failed(out: std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "the command should have failed:\n{}",
        output_text(&out)
    );
    output_text(&out)
}

/// A free loopback port (the OS picks it; closed again before the server binds it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral loopback port")
}
