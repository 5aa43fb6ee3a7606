//! The `ai.onnx.ml` operators tract 0.23 lacks or gets wrong, registered into tract's ONNX
//! parser (one place: `register`). Semantics follow onnxruntime's CPU kernels, the
//! reference implementation the exporters (skl2onnx, onnxmltools) are tested against,
//! including its float32 arithmetic, tie-breaking and binary-classifier conventions.
//! `ArrayFeatureExtractor` is replaced because tract drops the axis for a scalar index.
//! String inputs (categories) flow as tract's `String` tensors into `encoders.rs`.
//! tract's own `Normalizer`, `LinearRegressor`, `LinearClassifier` and `CategoryMapper` stay.

mod attrs;
mod encoders;
mod nnef;
mod op;
mod preprocess;
mod select;
mod svm;
mod transform;
mod tree;

#[cfg(test)]
mod tests;

pub use encoders::UnknownCategory;
pub(crate) use nnef::register as register_nnef;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use op::MlOp;

type Parse = fn(&NodeProto) -> TractResult<Arc<dyn op::Kernel>>;

/// Every operator here that runs as an [`MlOp`], by ONNX op type, with its parser.
const KERNELS: [(&str, Parse); 9] = [
    ("Scaler", preprocess::scaler),
    ("Binarizer", preprocess::binarizer),
    ("Imputer", preprocess::imputer),
    ("OneHotEncoder", encoders::one_hot_encoder),
    ("LabelEncoder", encoders::label_encoder),
    ("TreeEnsembleRegressor", tree::regressor),
    ("TreeEnsembleClassifier", tree::classifier),
    ("SVMRegressor", svm::regressor),
    ("SVMClassifier", svm::classifier),
];

/// Adds (or, for `TreeEnsembleClassifier`, replaces) the operators in this module.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    let reg = &mut onnx.op_register;
    reg.insert("ArrayFeatureExtractor", select::array_feature_extractor);
    for (op_type, _) in KERNELS {
        reg.insert(op_type, parse);
    }
}

fn parse(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(ml_op(node)?), vec![]))
}

/// The op for one `ai.onnx.ml` node; the ONNX parser and the compiled form's loader both
/// come here, so a reloaded model runs the very kernels the ONNX one did.
pub(crate) fn ml_op(node: &NodeProto) -> TractResult<MlOp> {
    let Some((_, parse)) = KERNELS.iter().find(|(op_type, _)| *op_type == node.op_type) else {
        bail!(
            "{:?} is not an operator of inference_core's ai.onnx.ml set",
            node.op_type
        );
    };
    let kernel = parse(node)?;
    let source = NodeProto {
        name: String::new(),
        input: Vec::new(),
        output: Vec::new(),
        doc_string: String::new(),
        ..node.clone()
    };
    let bytes = prost::Message::encode_to_vec(&source);
    let source = tensor1(&bytes).into_arc_tensor();
    Ok(MlOp { kernel, source })
}
