//! Running a container image as Lambda does: an OCI image layout (what
//! `cargo xtask build --image` writes) read and checked ([`Layout`]), its layers unpacked in
//! order into an empty root ([`unpack`]), and the entrypoint started there in a private
//! mount namespace ([`crate::FunctionConfig::from_image`]): the root read-only, `/tmp` a
//! size-limited tmpfs, `/proc` and a minimal `/dev`, an unprivileged user. A library or a
//! file the image lacks then fails here as it would on Lambda.

mod hashing;
mod layout;
pub mod spec;
mod unpack;

use std::path::PathBuf;

pub use hashing::Hashing;
pub use layout::Layout;
pub use unpack::unpack;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl ImageError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.into();
        move |source| ImageError::Io { path, source }
    }
}
