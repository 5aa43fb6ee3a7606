//! The `ai.onnx.ml` operators tract 0.23 lacks or gets wrong, registered into tract's ONNX
//! parser (one place: `register`). Semantics follow onnxruntime's CPU kernels, the
//! reference implementation the exporters (skl2onnx, onnxmltools) are tested against,
//! including its float32 arithmetic, tie-breaking and binary-classifier conventions.
//! `ArrayFeatureExtractor` is replaced because tract drops the axis for a scalar index.
//! tract's own `Normalizer`, `LinearRegressor`, `LinearClassifier` and `CategoryMapper` stay.

mod attrs;
mod encoders;
mod op;
mod preprocess;
mod select;
mod svm;
mod transform;
mod tree;
mod zipmap;

#[cfg(test)]
mod tests;

pub use zipmap::strip_zipmap;

/// Adds (or, for `TreeEnsembleClassifier`, replaces) the operators in this module.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    let reg = &mut onnx.op_register;
    reg.insert("ArrayFeatureExtractor", select::array_feature_extractor);
    reg.insert("Scaler", preprocess::scaler);
    reg.insert("Binarizer", preprocess::binarizer);
    reg.insert("Imputer", preprocess::imputer);
    reg.insert("OneHotEncoder", encoders::one_hot_encoder);
    reg.insert("LabelEncoder", encoders::label_encoder);
    reg.insert("TreeEnsembleRegressor", tree::regressor);
    reg.insert("TreeEnsembleClassifier", tree::classifier);
    reg.insert("SVMRegressor", svm::regressor);
    reg.insert("SVMClassifier", svm::classifier);
}
