//! Everything about serving a packed model that is not Lambda-specific: the model registry,
//! checksum verification, loading through tract, the JSON request protocol and response
//! encoding. Usable from a plain Rust program or a test; `lambda-fn` only adds event glue.

pub mod checksum;
pub mod error;
pub mod fallback;
pub mod int8;
pub mod loader;
pub mod ml;
pub mod registry;
pub mod request;
pub mod response;
pub mod tensor_json;
pub mod text;
pub mod threads;

pub use error::{InitError, RequestError};
pub use fallback::FallbackConfig;
pub use loader::{LoadedModel, PhaseTimings};
pub use registry::{LoadMode, Options, Registry, DEFAULT_MAX_LOADED};
pub use request::{InferenceRequest, MAX_REQUEST_BYTES};
pub use response::InferenceResponse;

pub use model_lock::{EmbeddedModel, ModelEntry, PackedModels};
