//! `MlOp` in the compiled form: the ONNX node it was parsed from, stored as a `u8` tensor
//! beside the graph, parsed again by the same code at load.

use tract_nnef::internal::*;
use tract_onnx::pb::NodeProto;

use super::op::MlOp;

const PRIMITIVE: &str = "inference_core_ml";

pub(crate) fn register(registry: &mut Registry) {
    registry.register_dumper(dump);
    registry.register_primitive(
        PRIMITIVE,
        &[
            TypeName::Any.tensor().named("input"),
            TypeName::Integer.tensor().named("node"),
        ],
        &[("output", TypeName::Any.tensor())],
        load,
    );
}

fn dump(ast: &mut IntoAst, node: &TypedNode, op: &MlOp) -> TractResult<Option<Arc<RValue>>> {
    let input = ast.mapping[&node.inputs[0]].clone();
    // Named by node id: ONNX node names never reach the tar's paths. (Not `inference…`:
    // tract 0.23.9 reads an argument starting with `inf` as the number infinity.)
    let source = ast.konst_variable(format!("ml_node_{}", node.id), &op.source)?;
    Ok(Some(invocation(PRIMITIVE, &[input, source], &[])))
}

fn load(builder: &mut ModelBuilder, invocation: &ResolvedInvocation) -> TractResult<Value> {
    let input: OutletId = invocation.named_arg_as(builder, "input")?;
    let source: Arc<Tensor> = invocation.named_arg_as(builder, "node")?;
    let node = <NodeProto as prost::Message>::decode(crate::tensor_data::slice_of::<u8>(&source)?)
        .context("an inference_core_ml node that is not an ONNX NodeProto")?;
    builder.wire(super::ml_op(&node)?, &[input])
}
