//! Real servers on 127.0.0.1 for the tests, started per test and killed on drop:
//! - [`MotoServer`]: moto's server mode, which speaks the S3, Lambda and IAM APIs (the
//!   environment `cargo xtask test` installs; its `moto_server` path is in `MOTO_SERVER`);
//! - [`HttpServer`]: `python3 -m http.server` over a directory, standing in for a model hub.
//!
//! Test helpers: they panic with a clear message when the environment is not set up.

mod http;
mod moto;

pub use http::HttpServer;
pub use moto::MotoServer;

/// A free loopback port (the OS picks it; closed again before the server binds it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral loopback port")
}
