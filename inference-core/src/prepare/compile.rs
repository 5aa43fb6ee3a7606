//! Pack-time compilation: the packed ONNX decoded, typed and decluttered exactly as the
//! function would at load, then written in the compiled form (`nnef.rs`), so the function's
//! cold start only reads it and runs codegen.

use std::time::Duration;

use model_lock::{ModelEntry, ModelFormat, TensorSpec};
use tract_onnx::prelude::TypedModel;

use crate::int8::Folded;

use super::PrepareError;

/// How long loading `bytes` as `entry` takes, as a cold start would: the best of `runs`
/// loads (decode, declutter, codegen), plus, for the compiled form, setting up its reader
/// once. What `pack-models` compares to keep the faster form.
pub fn load_time(entry: &ModelEntry, bytes: &[u8], runs: usize) -> Result<Duration, PrepareError> {
    let mut best = Duration::MAX;
    for _ in 0..runs.max(1) {
        let loaded = crate::loader::load(bytes, entry, Default::default())
            .map_err(|e| PrepareError::Compile(format!("cannot load the model: {e}")))?;
        best = best.min(loaded.decode + loaded.declutter + loaded.optimize);
    }
    Ok(match entry.format {
        ModelFormat::Onnx => best,
        ModelFormat::Nnef => best + crate::nnef::setup_time(),
    })
}

/// The lock entry of `bytes`, the compiled form of the model `onnx` describes.
pub fn compiled_entry(onnx: &ModelEntry, bytes: &[u8]) -> ModelEntry {
    let format = ModelFormat::Nnef;
    ModelEntry {
        file: format!("{}.{}", onnx.name, format.extension()),
        format,
        sha256: crate::sha256_hex(bytes),
        size: bytes.len() as u64,
        ..onnx.clone()
    }
}

/// The compiled form of packed ONNX `onnx`, served with `inputs`.
/// int8 weights the ONNX holds stay int8 in it (see `int8/compiled.rs`).
pub fn compile(onnx: &[u8], inputs: &[TensorSpec]) -> Result<Vec<u8>, PrepareError> {
    Decluttered::new(onnx, inputs)?.write(None)
}

/// Packed ONNX decoded, typed and decluttered once, to be written in the compiled form as
/// is or with int8-dynamic products (`quantize = "int8-dynamic"` writes it several times
/// while it searches for the products that must stay f32).
pub(crate) struct Decluttered {
    model: TypedModel,
    folds: Vec<Folded>,
}

impl Decluttered {
    pub(crate) fn new(onnx: &[u8], inputs: &[TensorSpec]) -> Result<Self, PrepareError> {
        let mut folds = Vec::new();
        let typed =
            crate::loader::typed(onnx, inputs, Some(&mut folds), crate::loader::Hints::Kept)
                .map_err(|e| PrepareError::Compile(e.to_string()))?;
        let model = typed
            .into_decluttered()
            .map_err(|e| PrepareError::Compile(format!("cannot declutter the model: {e:#}")))?;
        Ok(Decluttered { model, folds })
    }

    /// The products int8-dynamic can run on int8, in graph order.
    pub(crate) fn products(&self) -> Result<Vec<String>, PrepareError> {
        crate::int8::products(&self.model).map_err(|e| PrepareError::Compile(format!("{e:#}")))
    }

    /// The compiled form; with `Some(keep_f32)`, every product but those on int8.
    pub(crate) fn write(&self, int8_dynamic: Option<&[String]>) -> Result<Vec<u8>, PrepareError> {
        let mut model = self.model.clone();
        if let Some(keep_f32) = int8_dynamic {
            crate::int8::rewrite_dynamic(&mut model, keep_f32).map_err(|e| {
                PrepareError::Compile(format!("cannot put the products on int8: {e:#}"))
            })?;
        }
        crate::int8::keep_int8(&mut model, &self.folds)
            .map_err(|e| PrepareError::Compile(format!("cannot keep the int8 weights: {e:#}")))?;
        crate::nnef::write(&model).map_err(|e| PrepareError::Compile(e.to_string()))
    }
}
