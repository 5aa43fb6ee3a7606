//! A trailing `ZipMap` turns class probabilities into a list of {class: probability}
//! dictionaries, which is not a tensor. Packing replaces it with the probability tensor it
//! was given, under the same output name, so clients get `[rows, classes]` floats in
//! class-label order.

use tract_onnx::pb::{self, ModelProto};

/// Rewrites every ZipMap that feeds a graph output into an Identity; returns the names of
/// the outputs that changed. Label keys (`classlabels_int64s` or `_strings`) are dropped:
/// the column order already is the class order.
pub fn strip_zipmap(model: &mut ModelProto) -> Vec<String> {
    let Some(graph) = model.graph.as_mut() else {
        return vec![];
    };
    let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut changed = Vec::new();
    for node in graph.node.iter_mut() {
        if node.op_type != "ZipMap" || node.output.len() != 1 || !outputs.contains(&node.output[0])
        {
            continue;
        }
        node.op_type = "Identity".into();
        node.domain = String::new();
        node.attribute.clear();
        changed.push(node.output[0].clone());
    }
    for out in graph
        .output
        .iter_mut()
        .filter(|o| changed.contains(&o.name))
    {
        out.r#type = Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: None,
            })),
            ..Default::default()
        });
    }
    changed
}
