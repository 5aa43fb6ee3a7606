//! The packed-models lock (`models/packed/models.lock`) and the static descriptor the
//! build script generates for each embedded model.
//!
//! This crate is deliberately tiny (serde only): it is a build-dependency of `model-pack`,
//! and pulling tract into a build script would compile it twice.

pub mod codegen;
mod embedded;
mod limits;
mod lock;
mod name;
mod pipeline;
mod plans;
mod signature;

pub use embedded::{EmbeddedModel, PackedModels};
pub use limits::{Limits, MemoryCost};
pub use lock::{
    short_hash, Artifact, ClassLabels, LockError, LockFile, ModelEntry, ModelFormat,
    TokenizerEntry, LOCK_FILE_NAME, LOCK_VERSION, VERSION_DIGITS,
};
pub use name::{validate_model_name, MODEL_NAME_RULE};
pub use pipeline::{Padding, TextPipeline, TextTask, Truncation};
pub use plans::{Plans, ShapeSource, MAX_BUCKETS, MAX_SHAPE_PLANS};
pub use signature::{DType, Dim, TensorSpec};
