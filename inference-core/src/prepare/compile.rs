//! Pack-time compilation: the packed ONNX decoded, typed and decluttered exactly as the
//! function would at load, then written in the compiled form (`nnef.rs`), so the function's
//! cold start only reads it and runs codegen.

use std::time::Duration;

use model_lock::{ModelEntry, ModelFormat, TensorSpec};

use super::PrepareError;

/// How long loading `bytes` as `entry` takes, as a cold start would: the best of `runs`
/// loads (decode, declutter, codegen), plus, for the compiled form, setting up its reader
/// once. What `pack-models` compares to keep the faster form.
pub fn load_time(entry: &ModelEntry, bytes: &[u8], runs: usize) -> Result<Duration, PrepareError> {
    let mut best = Duration::MAX;
    for _ in 0..runs.max(1) {
        let loaded = crate::loader::load(bytes, entry)
            .map_err(|e| PrepareError::Compile(format!("cannot load the model: {e}")))?;
        best = best.min(loaded.decode + loaded.declutter + loaded.optimize);
    }
    Ok(match entry.format {
        ModelFormat::Onnx => best,
        ModelFormat::Nnef => best + crate::nnef::setup_time(),
    })
}

/// The compiled form of packed ONNX `onnx`, served with `inputs`.
/// int8 weights the ONNX holds stay int8 in it (see `int8/compiled.rs`).
pub fn compile(onnx: &[u8], inputs: &[TensorSpec]) -> Result<Vec<u8>, PrepareError> {
    let mut folds = Vec::new();
    let typed =
        crate::loader::typed(onnx, inputs, Some(&mut folds)).map_err(PrepareError::Compile)?;
    let mut decluttered = typed
        .into_decluttered()
        .map_err(|e| PrepareError::Compile(format!("cannot declutter the model: {e:#}")))?;
    crate::int8::keep_int8(&mut decluttered, &folds)
        .map_err(|e| PrepareError::Compile(format!("cannot keep the int8 weights: {e:#}")))?;
    crate::nnef::write(&decluttered).map_err(PrepareError::Compile)
}
