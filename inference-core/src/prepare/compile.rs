//! Pack-time compilation: the packed ONNX decoded, typed and decluttered exactly as the
//! function would at load, then written in the compiled form (`nnef.rs`), so the function's
//! cold start only reads it and runs codegen.

use model_lock::TensorSpec;

use super::PrepareError;

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
