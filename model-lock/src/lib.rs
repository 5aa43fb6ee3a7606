//! The packed-models lock (`models/packed/models.lock`) and the static descriptor the
//! build script generates for each embedded model.
//!
//! This crate is deliberately tiny (serde only): it is a build-dependency of `model-pack`,
//! and pulling tract into a build script would compile it twice.

pub mod codegen;
mod embedded;
mod lock;
mod name;

pub use embedded::{EmbeddedModel, PackedModels};
pub use lock::{
    short_hash, Artifact, ClassLabels, DType, Dim, Limits, LockError, LockFile, MemoryCost,
    ModelEntry, ModelFormat, Padding, Plans, ShapeSource, TensorSpec, TextPipeline, TextTask,
    TokenizerEntry, Truncation, LOCK_FILE_NAME, LOCK_VERSION, MAX_BUCKETS, MAX_SHAPE_PLANS,
    VERSION_DIGITS,
};
pub use name::{validate_model_name, MODEL_NAME_RULE};
