//! The compiled form: a model as tract has already decoded, typed and decluttered it, in
//! tract's NNEF container (a tar of `graph.nnef` and one `.dat` per tensor). Written at pack
//! time, read at init, so a cold start skips the protobuf decode, the ONNX translation and
//! the declutter passes and only runs codegen (`into_optimized`).
//!
//! Writer and reader must use the same registries: tract's core, its ONNX and transformer
//! operators, and ours (`inference_core`: the exact GELU tract's declutter makes from
//! `Erf`, and the `ai.onnx.ml` kernels of `ml/`).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tract_nnef::framework::Nnef;
use tract_nnef::internal::*;
use tract_onnx::tract_core::ops::nn::GeluExact;
use tract_onnx::WithOnnx;
use tract_transformers::WithTractTransformers;

/// Our registry's name, written into every compiled model that uses it.
const REGISTRY: &str = "inference_core";

fn registry() -> Registry {
    let mut reg = Registry::new(REGISTRY);
    // tract 0.23.9 serializes the approximate GELU but not the exact one its declutter
    // detects in BERT-style graphs.
    reg.register_unit_element_wise("inference_core_gelu_exact", &GeluExact {});
    crate::ml::register_nnef(&mut reg);
    crate::int8::register_nnef(&mut reg);
    reg
}

/// Built once per process, and not free (NNEF's standard library is parsed, every
/// registry set up): about 8 ms here, which a cold start loading a compiled model pays.
fn framework() -> &'static (Nnef, Duration) {
    static NNEF: OnceLock<(Nnef, Duration)> = OnceLock::new();
    NNEF.get_or_init(|| {
        let started = Instant::now();
        let mut nnef = tract_nnef::nnef()
            .with_onnx()
            .with_tract_transformers()
            .with_registry(registry());
        // Keep ONNX names (`input.1`, `/encoder/...`) verbatim: the lock names inputs so.
        nnef.allow_extended_identifier_syntax(true);
        (nnef, started.elapsed())
    })
}

/// Why a compiled model could not be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NnefError {
    #[cfg(feature = "pack")]
    #[error("tract's NNEF writer panicked on this graph")]
    WriterPanicked,
    #[cfg(feature = "pack")]
    #[error("{0:#}")]
    Write(TractError),
    #[error("cannot read the compiled model: {0:#}")]
    Read(TractError),
}

/// What setting up the reader costs a process, once.
#[cfg(feature = "pack")]
pub(crate) fn setup_time() -> Duration {
    framework().1
}

/// Serializes a decluttered model. Byte-for-byte reproducible (fixed tar timestamps).
#[cfg(feature = "pack")]
pub(crate) fn write(model: &TypedModel) -> Result<Vec<u8>, NnefError> {
    // tract's writer has `todo!()`s for some symbolic expressions: a panic here means
    // "cannot compile this model", not a crash of `pack-models`.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        framework()
            .0
            .write_to_tar_with_config(model, Vec::new(), false, true)
    }))
    .map_err(|_| NnefError::WriterPanicked)?
    .map_err(NnefError::Write)
}

/// Reads a compiled model back: the decluttered graph, ready for `into_optimized`.
pub(crate) fn read(bytes: &[u8]) -> Result<TypedModel, NnefError> {
    framework()
        .0
        .model_for_read(&mut &bytes[..])
        .map_err(NnefError::Read)
}
