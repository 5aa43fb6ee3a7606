//! The packed models, embedded at build time.
//!
//! `build.rs` reads `models/packed/models.lock` (or `$MODEL_PACK_DIR/models.lock`) and
//! generates one [`model_lock::EmbeddedModel`] per model, its bytes included with
//! `include_bytes_aligned!` so the loader can read them in place from the binary's pages.

pub use model_lock::{EmbeddedModel, PackedModels};

include!(concat!(env!("OUT_DIR"), "/packed_models.rs"));

/// The models this binary was built with.
pub fn packed() -> &'static PackedModels {
    &PACKED
}
