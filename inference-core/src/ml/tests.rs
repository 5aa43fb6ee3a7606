//! The operators the scikit-learn test models do not exercise, each on a one-node graph
//! run through tract with this module registered, checked against values worked out from
//! the ONNX specification.

use tract_onnx::pb;
use tract_onnx::prelude::*;

fn attr(name: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..attr(name)
    }
}

fn floats(name: &str, v: &[f32]) -> pb::AttributeProto {
    pb::AttributeProto {
        r#type: pb::attribute_proto::AttributeType::Floats as i32,
        floats: v.to_vec(),
        ..attr(name)
    }
}

fn float(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f: v,
        ..attr(name)
    }
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..attr(name)
    }
}

/// Runs `op` (ai.onnx.ml) with `attributes` on `input`; its single output.
fn run(op: &str, attributes: Vec<pb::AttributeProto>, input: Tensor) -> TractResult<Tensor> {
    let elem = match input.datum_type() {
        DatumType::I64 => pb::tensor_proto::DataType::Int64,
        _ => pb::tensor_proto::DataType::Float,
    };
    let model = crate::test_models::one_node_ml("n", op, attributes, elem, None);
    let mut onnx = tract_onnx::onnx();
    super::register(&mut onnx);
    let mut m = onnx.model_for_proto_model(&model)?;
    m.set_input_fact(
        0,
        InferenceFact::dt_shape(input.datum_type(), input.shape()),
    )?;
    let plan = m.into_optimized()?.into_runnable()?;
    let mut out = plan.run(tvec![input.into_tvalue()])?;
    Ok(out.remove(0).into_tensor())
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn i64s(t: &Tensor) -> Vec<i64> {
    t.to_plain_array_view::<i64>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn scaler_per_column_and_broadcast() {
    let x = tensor2(&[[1f32, 2.0], [3.0, 4.0]]);
    let y = run(
        "Scaler",
        vec![floats("offset", &[1.0, 2.0]), floats("scale", &[2.0])],
        x,
    )
    .unwrap();
    assert_eq!(f32s(&y), vec![0.0, 0.0, 4.0, 4.0]);
}

#[test]
fn binarizer_and_imputer() {
    let y = run(
        "Binarizer",
        vec![float("threshold", 0.5)],
        tensor2(&[[0.2f32, 0.5, 0.7]]),
    )
    .unwrap();
    assert_eq!(f32s(&y), vec![0.0, 0.0, 1.0]);
    let x = tensor2(&[[f32::NAN, 1.0], [2.0, f32::NAN]]);
    let y = run(
        "Imputer",
        vec![
            floats("imputed_value_floats", &[10.0, 20.0]),
            float("replaced_value_float", f32::NAN),
        ],
        x,
    )
    .unwrap();
    assert_eq!(f32s(&y), vec![10.0, 1.0, 2.0, 20.0]);
    let y = run(
        "Imputer",
        vec![
            ints("imputed_value_int64s", &[7]),
            int("replaced_value_int64", -1),
        ],
        tensor2(&[[-1i64, 3]]),
    )
    .unwrap();
    assert_eq!(i64s(&y), vec![7, 3]);
}

#[test]
fn one_hot_encoder_unknown_categories() {
    let x = tensor2(&[[3i64], [5], [9]]);
    let y = run(
        "OneHotEncoder",
        vec![ints("cats_int64s", &[3, 5])],
        x.clone(),
    )
    .unwrap();
    assert_eq!(y.shape(), &[3, 1, 2]);
    assert_eq!(f32s(&y), vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    let e = run(
        "OneHotEncoder",
        vec![ints("cats_int64s", &[3, 5]), int("zeros", 0)],
        x,
    )
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("9 is not one of the categories"),
        "{e:#}"
    );
}

#[test]
fn label_encoder_maps_and_defaults() {
    let y = run(
        "LabelEncoder",
        vec![
            ints("keys_int64s", &[1, 2]),
            ints("values_int64s", &[10, 20]),
            int("default_int64", -5),
        ],
        tensor1(&[2i64, 1, 3]),
    )
    .unwrap();
    assert_eq!(i64s(&y), vec![20, 10, -5]);
    let y = run(
        "LabelEncoder",
        vec![
            floats("keys_floats", &[0.5, f32::NAN]),
            floats("values_floats", &[1.5, 9.0]),
        ],
        tensor1(&[0.5f32, f32::NAN, 2.0]),
    )
    .unwrap();
    let v = f32s(&y);
    assert_eq!((v[0], v[1]), (1.5, 9.0));
    assert!(
        v[2] == 0.0 && v[2].is_sign_negative(),
        "default -0.0, got {}",
        v[2]
    );
}
