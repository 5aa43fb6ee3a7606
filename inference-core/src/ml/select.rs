//! `ArrayFeatureExtractor`: picks columns of the last axis. tract's version gathers, so a
//! scalar index drops the axis; onnxruntime keeps it (`[N, C]` and index `2` give
//! `[N, 1]`), and skl2onnx's SVC graphs concatenate those columns on axis 1.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_hir::internal::*;

#[derive(Debug, Clone, PartialEq, Eq)]
struct ArrayFeatureExtractor;

pub fn array_feature_extractor(
    _ctx: &ParsingContext,
    _node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(ArrayFeatureExtractor), vec![]))
}

impl Expansion for ArrayFeatureExtractor {
    fn name(&self) -> StaticName {
        "ArrayFeatureExtractor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.given_2(
            &inputs[0].shape,
            &inputs[1].shape,
            move |s, data, indices| {
                let mut shape: TVec<TDim> = data
                    .iter()
                    .take(data.len().saturating_sub(1))
                    .cloned()
                    .collect();
                if indices.is_empty() {
                    shape.push(1.to_dim());
                } else {
                    shape.extend(indices.iter().cloned());
                }
                s.equals(&outputs[0].shape, shape)
            },
        )
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let last_axis = model.outlet_fact(inputs[0])?.rank() - 1;
        let mut indices = inputs[1];
        if model.outlet_fact(indices)?.rank() == 0 {
            indices = model.wire_node(format!("{prefix}.as_list"), AxisOp::Add(0), &[indices])?[0];
        }
        model.wire_node(prefix, Gather::new(last_axis), &[inputs[0], indices])
    }
}
