//! Everything about serving a packed model that is not Lambda-specific: the model registry,
//! checksum verification, loading through tract, the JSON request protocol and response
//! encoding, and the pack-time preparation that proves a model serves before it is packed.
//! Usable from a plain Rust program or a test; `lambda-fn` only adds event glue.
//!
//! Public: [`Registry`] and what it takes ([`PackedModel`], [`Settings`]), the fallback
//! stores' layout and S3 client ([`fallback`]), and the SHA-256 rule; with the `pack`
//! feature (xtask's, never the function's), `prepare` (pack time) and `compare` (answers
//! against answers). Everything else is internal.

mod checksum;
#[cfg(feature = "pack")]
pub mod compare;
mod constant_if;
mod error;
pub mod fallback;
mod int8;
mod loader;
mod lookup;
mod ml;
mod nnef;
mod plans;
#[cfg(feature = "pack")]
pub mod prepare;
mod registry;
mod request;
mod response;
pub mod settings;
mod tensor_data;
#[cfg(test)]
mod test_models;
mod text;
mod threads;
mod work;

pub use checksum::{sha256_hex, verify_sha256, HashMismatch};
pub use error::{quote, InitError, RequestError};
pub use fallback::FallbackConfig;
pub use plans::PlanCacheLimits;
pub use registry::{
    Answered, ModelBytes, ModelLoad, PackedModel, PlanBuild, Registry, RequestRecord,
};
pub use request::strict_json::parse_strict;
pub use request::MAX_REQUEST_BYTES;
pub use settings::{LoadMode, Settings, SettingsError};
pub use threads::set_intra_op_threads;

pub use model_lock::{EmbeddedModel, ModelEntry, PackedModels};
