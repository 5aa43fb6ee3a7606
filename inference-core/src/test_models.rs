//! Small ONNX graphs built in code for unit tests, the default model's bytes, and lock
//! entries for models built in a test.

use model_lock::{ModelEntry, TensorSpec};
use tract_onnx::pb;

/// The lock entry of a test model `m` with this signature; everything else empty.
pub(crate) fn entry(inputs: Vec<TensorSpec>, outputs: Vec<TensorSpec>) -> ModelEntry {
    ModelEntry {
        name: "m".into(),
        file: "m.onnx".into(),
        format: Default::default(),
        sha256: String::new(),
        size: 0,
        source_sha256: None,
        external_data_sha256: Default::default(),
        artifact: Default::default(),
        embed: true,
        labels: Vec::new(),
        class_labels: None,
        inputs,
        outputs,
        tokenizer: None,
        pipeline: None,
        limits: Default::default(),
        memory: None,
        constants: Default::default(),
        plans: Default::default(),
    }
}

/// A graph of one `ai.onnx.ml` node `name` running `op` on input `x` (element type `elem`)
/// into output `y`. With `dims`, both are declared with that shape; without, the input has
/// no shape and the output no type (tract infers them).
pub(crate) fn one_node_ml(
    name: &str,
    op: &str,
    attributes: Vec<pb::AttributeProto>,
    elem: pb::tensor_proto::DataType,
    dims: Option<&[i64]>,
) -> pb::ModelProto {
    let typed = |name: &str| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem as i32,
                shape: dims.map(|dims| pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| pb::tensor_shape_proto::Dimension {
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(*d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let output = match dims {
        Some(_) => typed("y"),
        None => pb::ValueInfoProto {
            name: "y".into(),
            ..Default::default()
        },
    };
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![
            pb::OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            pb::OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        graph: Some(pb::GraphProto {
            name: "g".into(),
            node: vec![pb::NodeProto {
                name: name.into(),
                op_type: op.into(),
                domain: "ai.onnx.ml".into(),
                input: vec!["x".into()],
                output: vec!["y".into()],
                attribute: attributes,
                ..Default::default()
            }],
            input: vec![typed("x")],
            output: vec![output],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The embedded default model (scikit-learn logistic regression, 30 features, 2 classes).
pub(crate) const DEFAULT_MODEL: &[u8] =
    include_bytes!("../../models/default/breast_cancer_lr.onnx");

/// `y = (x · w1) · w2` with `x` f32 `[batch, k]` and constant `w1` `[k, m]`, `w2` `[m, n]`:
/// two matrix products with constant weights, nodes named `first` and `second`.
pub(crate) fn two_matmuls(w1: (&[f32], [i64; 2]), w2: (&[f32], [i64; 2])) -> pb::ModelProto {
    use pb::tensor_shape_proto::dimension::Value;
    let io = |name: &str, width: i64| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(f32_type([
            Value::DimParam("batch".into()),
            Value::DimValue(width),
        ])),
        ..Default::default()
    };
    let weight = |name: &str, (values, dims): (&[f32], [i64; 2])| pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    };
    let matmul = |name: &str, input: [&str; 2], output: &str| pb::NodeProto {
        name: name.into(),
        op_type: "MatMul".into(),
        input: input.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    };
    opset_17(pb::GraphProto {
        name: "g".into(),
        node: vec![
            matmul("first", ["x", "w1"], "h"),
            matmul("second", ["h", "w2"], "y"),
        ],
        initializer: vec![weight("w1", w1), weight("w2", w2)],
        input: vec![io("x", w1.1[0])],
        output: vec![io("y", w2.1[1])],
        ..Default::default()
    })
}

/// silero VAD's pattern: `x` f32 `[1, sequence]` cut into frames of 256 (`Reshape` to
/// `[1, sequence / 256, 256]`), the frame axis squeezed (one frame: `sequence` = 256) and
/// summed, `y` `[1]`. tract cannot type it while `sequence` is symbolic.
pub(crate) fn frames_squeezed() -> pb::ModelProto {
    use pb::tensor_shape_proto::dimension::Value;
    let int64s = |name: &str, values: &[i64], dims: Vec<i64>| pb::TensorProto {
        name: name.into(),
        dims,
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        int64_data: values.to_vec(),
        ..Default::default()
    };
    let node = |op: &str, input: &[&str], output: &str, attribute: Vec<pb::AttributeProto>| {
        pb::NodeProto {
            name: output.into(),
            op_type: op.into(),
            input: input.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute,
            ..Default::default()
        }
    };
    let int_attr = |name: &str, i: i64| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    };
    opset_17(pb::GraphProto {
        name: "g".into(),
        node: vec![
            node("Shape", &["x"], "shape", vec![]),
            node(
                "Gather",
                &["shape", "one"],
                "len",
                vec![int_attr("axis", 0)],
            ),
            node("Div", &["len", "frame"], "frames", vec![]),
            node(
                "Concat",
                &["ones", "frames", "frame"],
                "target",
                vec![int_attr("axis", 0)],
            ),
            node("Reshape", &["x", "target"], "framed", vec![]),
            node("Squeeze", &["framed", "ones"], "squeezed", vec![]),
            node(
                "ReduceSum",
                &["squeezed", "ones"],
                "y",
                vec![int_attr("keepdims", 0)],
            ),
        ],
        initializer: vec![
            int64s("one", &[1], vec![]),
            int64s("ones", &[1], vec![1]),
            int64s("frame", &[256], vec![1]),
        ],
        input: vec![pb::ValueInfoProto {
            name: "x".into(),
            r#type: Some(f32_type([
                Value::DimValue(1),
                Value::DimParam("sequence".into()),
            ])),
            ..Default::default()
        }],
        output: vec![pb::ValueInfoProto {
            name: "y".into(),
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// A `[dims]` f32 tensor type (fixed or named dims).
fn f32_type(
    dims: impl IntoIterator<Item = pb::tensor_shape_proto::dimension::Value>,
) -> pb::TypeProto {
    pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: pb::tensor_proto::DataType::Float as i32,
            shape: Some(pb::TensorShapeProto {
                dim: dims
                    .into_iter()
                    .map(|v| pb::tensor_shape_proto::Dimension {
                        value: Some(v),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    }
}

/// `graph` as a model of the default domain's opset 17.
fn opset_17(graph: pb::GraphProto) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(graph),
        ..Default::default()
    }
}
