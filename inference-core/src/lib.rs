//! Everything about serving a packed model that is not Lambda-specific: the model registry,
//! checksum verification, loading through tract, the JSON request protocol and response
//! encoding, and the pack-time preparation that proves a model serves before it is packed.
//! Usable from a plain Rust program or a test; `lambda-fn` only adds event glue.
//!
//! Public: [`Registry`] and what it takes ([`PackedModel`], [`Settings`]), [`prepare`]
//! (pack time), [`compare`] (answers against answers), the fallback stores' layout and S3
//! client ([`fallback`]), and the SHA-256 rule. Everything else is internal.

mod checksum;
pub mod compare;
mod constant_if;
mod error;
pub mod fallback;
mod int8;
mod json;
mod loader;
mod lookup;
mod ml;
mod nnef;
mod plans;
pub mod prepare;
mod registry;
mod request;
mod response;
pub mod settings;
mod tensor_json;
#[cfg(test)]
mod test_models;
mod text;
mod threads;
mod work;

pub use checksum::{sha256_hex, verify_sha256};
pub use error::{quote, InitError, RequestError};
pub use fallback::FallbackConfig;
pub use json::parse_strict;
pub use plans::PlanCacheLimits;
pub use registry::{
    Answered, ModelBytes, ModelLoad, PackedModel, PlanBuild, Registry, RequestRecord,
};
pub use request::MAX_REQUEST_BYTES;
pub use settings::{LoadMode, Settings, SettingsError};
pub use threads::set_intra_op_threads;

pub use model_lock::{EmbeddedModel, ModelEntry, PackedModels};
