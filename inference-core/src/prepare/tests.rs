use serde_json::json;
use tract_onnx::pb;

use super::*;
use crate::test_models::{one_node_ml, DEFAULT_MODEL};
use model_lock::{DType, Dim, ModelEntry, Plans};

fn entry(prepared: &Prepared) -> ModelEntry {
    ModelEntry {
        name: "m".into(),
        file: "m.onnx".into(),
        format: Default::default(),
        sha256: crate::sha256_hex(&prepared.packed),
        size: prepared.packed.len() as u64,
        source_sha256: None,
        external_data_sha256: Default::default(),
        artifact: Default::default(),
        embed: true,
        labels: vec![],
        class_labels: None,
        inputs: prepared.signature.inputs.clone(),
        outputs: prepared.signature.outputs.clone(),
        tokenizer: None,
        pipeline: None,
        limits: Default::default(),
        memory: None,
        constants: Default::default(),
        plans: Default::default(),
    }
}

#[test]
fn the_default_model_prepares_and_answers_a_generated_request() {
    let prepared = prepare(DEFAULT_MODEL, Quantize::None, &[]).unwrap();
    assert_eq!(prepared.packed, DEFAULT_MODEL, "nothing to change");
    assert_eq!(prepared.original, DEFAULT_MODEL);
    assert!(prepared.zipmaps_removed.is_empty());
    let input = &prepared.signature.inputs[0];
    assert_eq!(input.dtype, DType::F32);
    assert_eq!(
        input.shape,
        vec![Dim::Symbol("batch".into()), Dim::Fixed(30)]
    );

    let entry = entry(&prepared);
    let samples = sample_requests(&entry, None);
    assert_eq!(samples.len(), 1);
    let checked = check(&entry, &prepared.packed, None, &samples).unwrap();
    assert_eq!(checked.answers.len(), 1);
    assert_eq!(checked.answers[0]["model"], "m");
    // Whole answers, as pack compares them.
    let drift = Drift::between(&checked.answers[0], &checked.answers[0]);
    assert!(
        (drift.cosine - 1.0).abs() < 1e-12 && drift.max_abs == 0.0,
        "{drift:?}"
    );
    MaxDrift::default().allows(drift).unwrap();

    // A sample the model cannot answer names the problem.
    let e = check(
        &entry,
        &prepared.packed,
        None,
        &[json!({"features": [1, 2]})],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("sample request") && e.contains("expects 30"),
        "{e}"
    );
    // Bytes that are not the entry's fail its checksum.
    let e = check(&entry, b"other bytes", None, &samples)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not load") && e.contains("checksum"), "{e}");
}

#[test]
fn overrides_fix_dims_and_must_name_an_input() {
    let fixed = [InputOverride {
        name: "features".into(),
        shape: vec![Dim::Fixed(4), Dim::Fixed(30)],
    }];
    let prepared = prepare(DEFAULT_MODEL, Quantize::None, &fixed).unwrap();
    assert_eq!(prepared.signature.inputs[0].shape, fixed[0].shape);
    let wrong = [InputOverride {
        name: "pixels".into(),
        shape: vec![Dim::Fixed(1)],
    }];
    let e = prepare(DEFAULT_MODEL, Quantize::None, &wrong)
        .unwrap_err()
        .to_string();
    assert!(e.contains("override names input \"pixels\""), "{e}");
}

/// A registry serving `prepared` as `entry` says, loaded now.
fn registry_of(entry: ModelEntry, prepared: &Prepared) -> crate::Registry {
    let model = crate::registry::PackedModel {
        entry,
        bytes: Some(prepared.packed.clone().into()),
        tokenizer: None,
    };
    crate::Registry::new(
        vec![model],
        None,
        &crate::Settings::embedded_only(crate::LoadMode::Eager),
    )
    .unwrap()
}

#[test]
fn a_graph_tract_cannot_type_symbolically_is_served_a_plan_per_shape() {
    let bytes = prost::Message::encode_to_vec(&crate::test_models::frames_squeezed());
    let prepared = prepare(&bytes, Quantize::None, &[]).unwrap();
    let signature = &prepared.signature;
    let Typing::Concrete { why, rows } = &signature.typing else {
        panic!("per-shape typing expected: {signature:?}")
    };
    assert!(why.contains("symbolic dims"), "{why}");
    // The model's own batch of 1 is served row by row.
    assert!(*rows);
    assert_eq!(
        signature.inputs[0].shape,
        vec![Dim::Symbol("batch".into()), Dim::Symbol("sequence".into())]
    );
    assert_eq!(
        signature.outputs[0].shape,
        vec![Dim::Symbol("batch".into())]
    );
    // One frame of 256 is the only size it types at.
    assert_eq!(signature.probes.len(), 1);
    assert_eq!(signature.probes[0]["x"], vec![1, 256]);
    // Packed so, it answers the shapes it takes and refuses the others with a 400.
    let entry = ModelEntry {
        plans: Plans::PerShape {
            rows: true,
            from: model_lock::ShapeSource::Onnx,
            declared: Vec::new(),
            prebuild: false,
        },
        ..entry(&prepared)
    };
    let samples = sample_requests_with(&entry, None, &Default::default(), &signature.probes);
    let checked = check(&entry, &prepared.packed, None, &samples).unwrap();
    assert_eq!(checked.answers.len(), 1);
    let registry = registry_of(entry.clone(), &prepared);
    let ones = |rows: usize, len: usize| json!({ "inputs": { "x": vec![vec![1.0; len]; rows] } });
    let answer = registry.handle_value(ones(3, 256)).unwrap();
    assert_eq!(answer["outputs"]["y"], json!([256.0, 256.0, 256.0]));
    let e = registry.handle_value(ones(1, 300)).unwrap_err();
    assert_eq!(e.status(), 400, "{e}");
    assert!(e.to_string().contains("[1,300]"), "{e}");
}

#[test]
fn a_graph_that_types_at_no_size_tried_gets_shape_advice() {
    // Frames of 200: none of the sizes tried is one frame.
    let mut model = crate::test_models::frames_squeezed();
    for t in &mut model.graph.as_mut().unwrap().initializer {
        if t.name == "frame" {
            t.int64_data = vec![200];
        }
    }
    let bytes = prost::Message::encode_to_vec(&model);
    let e = prepare(&bytes, Quantize::None, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("symbolic input dims (sequence)"), "{e}");
    assert!(e.contains("the model declares x: [1, sequence] f32"), "{e}");
    assert!(e.contains("shapes = [{ x = [1, <sequence>] }]"), "{e}");
    assert!(
        e.contains("[model.inputs.x]\n    shape = [1, <sequence>]"),
        "{e}"
    );
    // The advice works: a declared shape, or the dim fixed.
    let inputs = InputSettings {
        shapes: vec![[("x".to_string(), vec![1, 200])].into()],
        ..Default::default()
    };
    let prepared =
        prepare_with_external_data(&bytes, &Default::default(), Quantize::None, &inputs).unwrap();
    assert!(matches!(prepared.signature.typing, Typing::Concrete { .. }));
    let fixed = [InputOverride {
        name: "x".into(),
        shape: vec![Dim::Fixed(1), Dim::Fixed(200)],
    }];
    let prepared = prepare(&bytes, Quantize::None, &fixed).unwrap();
    assert_eq!(prepared.signature.outputs[0].shape, vec![Dim::Fixed(1)]);
}

#[test]
fn an_input_fixed_to_a_value_is_folded_and_may_still_be_sent_if_equal() {
    let bytes = prost::Message::encode_to_vec(&crate::test_models::frames_squeezed());
    let fixed = |value: serde_json::Value| InputSettings {
        constants: [("x".to_string(), value)].into(),
        ..Default::default()
    };
    let prepare_fixed = |value| {
        prepare_with_external_data(&bytes, &Default::default(), Quantize::None, &fixed(value))
    };
    // A value of another rank than the input's, or for no input, is refused naming it.
    let e = prepare_fixed(json!([2.0, 2.0])).unwrap_err().to_string();
    assert!(e.contains("[model.inputs.x] value has shape [2]"), "{e}");
    let e = prepare_with_external_data(
        &bytes,
        &Default::default(),
        Quantize::None,
        &InputSettings {
            constants: [("nope".to_string(), json!(1))].into(),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("the model has no input \"nope\""), "{e}");
    // One frame of ones, fixed: the graph has no input left, and folds to its answer.
    let one_frame = json!([vec![1.0; 256]]);
    let prepared = prepare_fixed(one_frame.clone()).unwrap();
    assert!(prepared.signature.inputs.is_empty());
    assert_eq!(prepared.signature.typing, Typing::Symbolic);
    let entry = ModelEntry {
        constants: [("x".to_string(), one_frame.clone())].into(),
        ..entry(&prepared)
    };
    let registry = registry_of(entry, &prepared);
    let answer = registry.handle_value(json!({ "inputs": {} })).unwrap();
    assert_eq!(answer["outputs"]["y"], json!([256.0]));
    // Sent anyway: the same value is fine, another is a 400 naming the constant.
    let answer = registry
        .handle_value(json!({ "inputs": { "x": one_frame } }))
        .unwrap();
    assert_eq!(answer["outputs"]["y"], json!([256.0]));
    let e = registry
        .handle_value(json!({ "inputs": { "x": [vec![2.0; 256]] } }))
        .unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("fixes input \"x\""), "{e}");
}

#[test]
fn drift_beyond_the_limit_says_what_to_change() {
    let limit = MaxDrift::default();
    let e = limit
        .allows(Drift {
            cosine: 0.95,
            max_abs: 0.01,
        })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("int8 drift too large") && e.contains("cosine 0.95000"),
        "{e}"
    );
    assert!(limit
        .allows(Drift {
            cosine: f64::NAN,
            max_abs: 0.0
        })
        .is_err());
}

/// An operator nobody implements (`DictVectorizer`: maps in) and an out-of-scope use of one
/// we do (`LabelEncoder` over strings) fail at pack time, named with their node.
#[test]
fn unsupported_operators_fail_at_pack_time() {
    use prost::Message as _;
    for (op, attribute, expected) in [
        ("DictVectorizer", None, "DictVectorizer"),
        (
            "LabelEncoder",
            Some(pb::AttributeProto {
                name: "keys_tensor".into(),
                r#type: pb::attribute_proto::AttributeType::Tensor as i32,
                t: Some(pb::TensorProto::default()),
                ..Default::default()
            }),
            "keys_tensor/values_tensor (ai.onnx.ml 4) are not supported",
        ),
    ] {
        let model = one_node_ml(
            "scale_features",
            op,
            attribute.into_iter().collect(),
            pb::tensor_proto::DataType::Float,
            Some(&[2]),
        );
        let e = prepare(&model.encode_to_vec(), Quantize::None, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected) && e.contains("scale_features"), "{e}");
    }
}

#[test]
fn bytes_that_are_not_onnx_fail_to_decode() {
    let e = prepare(b"this is not ONNX", Quantize::None, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("ONNX"), "{e}");
}

#[test]
fn the_compiled_form_must_answer_as_the_onnx_did() {
    let answer = |p: f64| json!({"outputs": {"probabilities": [[p, 1.0 - p]]}});
    let onnx = vec![answer(0.25), answer(0.5)];
    // Float rounding passes...
    let drift = same_answers(&onnx, &[answer(0.25 + 1e-7), answer(0.5)]).unwrap();
    assert!(drift.max_abs < 1e-6, "{drift:?}");
    // ...a different answer fails, with the numbers.
    let e = same_answers(&onnx, &[answer(0.25), answer(0.5001)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("answers the sample request differently") && e.contains("compile = \"never\""),
        "{e}"
    );
    // So does a missing answer.
    assert!(same_answers(&onnx, &[answer(0.25)]).is_err());
}

#[test]
fn a_compiled_model_loads_and_answers_as_its_onnx() {
    let prepared = prepare(DEFAULT_MODEL, Quantize::None, &[]).unwrap();
    let onnx = entry(&prepared);
    let compiled_bytes = compile(&prepared.packed, &onnx.inputs).unwrap();
    let compiled = ModelEntry {
        format: model_lock::ModelFormat::Nnef,
        sha256: crate::sha256_hex(&compiled_bytes),
        size: compiled_bytes.len() as u64,
        ..onnx.clone()
    };
    let samples = sample_requests(&onnx, None);
    let a = check(&onnx, &prepared.packed, None, &samples).unwrap();
    let b = check(&compiled, &compiled_bytes, None, &samples).unwrap();
    same_answers(&a.answers, &b.answers).unwrap();
    // Reproducible: the same graph compiles to the same bytes.
    assert_eq!(
        compile(&prepared.packed, &onnx.inputs).unwrap(),
        compiled_bytes
    );
    // The lock's signature is checked against the compiled graph's.
    let mut wrong = compiled.clone();
    wrong.inputs[0].name = "other".into();
    let e = check(&wrong, &compiled_bytes, None, &samples)
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not match the lock's signature"), "{e}");
}

#[test]
fn row_plans_are_proved_against_the_symbolic_plan_and_timed() {
    let prepared = prepare(DEFAULT_MODEL, Quantize::None, &[]).unwrap();
    let entry = entry(&prepared);
    let candidates = candidates(
        &entry,
        &default_buckets(128),
        &prepared.signature.typing,
        &[],
        false,
    );
    // Not a text model: no buckets.
    assert_eq!(candidates, vec![Plans::Symbolic, Plans::Rows]);
    let row: Vec<f64> = (0..30).map(|i| i as f64 * 0.37).collect();
    let requests = timing_requests(&entry, &[json!({ "features": row })]);
    // The sample, the sample as noise, and both as batches of 8 rows.
    assert_eq!(requests.len(), 4);
    assert_ne!(requests[1], requests[0]);
    assert!(requests[1]["features"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| (-1.0..=1.0).contains(&v.as_f64().unwrap())));
    assert_eq!(requests[3]["features"].as_array().unwrap().len(), 8);
    let timings = time_plans(&entry, &prepared.packed, None, &requests, &candidates, 2).unwrap();
    assert_eq!(timings.len(), 2);
    for t in &timings {
        assert!(t.drift.max_abs <= 1e-5, "{t:?}");
        assert_eq!(t.medians.len(), requests.len());
        assert!(t.medians.iter().all(|m| !m.is_zero()), "{t:?}");
    }
}

#[test]
fn auto_keeps_a_concrete_plan_only_when_a_tenth_faster_request_by_request() {
    let timing = |plans: Plans, ms: &[u64]| PlanTiming {
        plans,
        medians: ms
            .iter()
            .map(|m| std::time::Duration::from_millis(*m))
            .collect(),
        drift: Drift {
            cosine: 1.0,
            max_abs: 0.0,
        },
    };
    let symbolic = || timing(Plans::Symbolic, &[10, 100]);
    assert_eq!(
        fastest(&[symbolic(), timing(Plans::Rows, &[8, 80])]),
        Plans::Rows
    );
    assert_eq!(
        fastest(&[symbolic(), timing(Plans::Rows, &[9, 98])]),
        Plans::Symbolic,
        "within a tenth: noise"
    );
    // Faster in total, on the big request, but slower on the small one: the ratios decide.
    assert_eq!(
        fastest(&[symbolic(), timing(Plans::Rows, &[18, 80])]),
        Plans::Symbolic
    );
    let buckets = Plans::Buckets {
        lengths: vec![16, 32],
    };
    assert_eq!(
        fastest(&[
            symbolic(),
            timing(Plans::Rows, &[8, 80]),
            timing(buckets.clone(), &[5, 70])
        ]),
        buckets
    );
}

#[test]
fn default_buckets_double_up_to_max_length() {
    assert_eq!(default_buckets(128), vec![16, 32, 64, 128]);
    assert_eq!(default_buckets(100), vec![16, 32, 64, 100]);
    assert_eq!(default_buckets(8), vec![8]);
    let long = default_buckets(8192);
    assert_eq!(long.len(), model_lock::MAX_BUCKETS);
    assert_eq!(long.last(), Some(&8192));
}

/// `(x · w1) · w2` where the first product is exact on int8 (integer activations and
/// weights, every row and column reaching ±127, so both scales are 1) and the second is not.
fn exact_then_lossy() -> (Vec<u8>, ModelEntry, Vec<serde_json::Value>) {
    use prost::Message as _;
    const K: usize = 64;
    const N: usize = 16;
    let w1: Vec<f32> = (0..K * K)
        .map(|i| match (i / K, i % K) {
            (r, c) if r == c => 127.0,
            (r, c) => ((r * 7 + c * 3) % 41) as f32 - 20.0,
        })
        .collect();
    let w2: Vec<f32> = (0..K * N).map(|i| (i as f32 * 0.7).sin() * 0.37).collect();
    let onnx =
        crate::test_models::two_matmuls((&w1, [K as i64, K as i64]), (&w2, [K as i64, N as i64]))
            .encode_to_vec();
    let prepared = prepare(&onnx, Quantize::None, &[]).unwrap();
    let row = |shift: usize| -> Vec<f32> {
        (0..K)
            .map(|j| match j {
                0 => 127.0,
                j => ((j * 5 + shift) % 61) as f32 - 30.0,
            })
            .collect()
    };
    let samples = vec![
        json!({"inputs": {"x": [row(0)]}}),
        json!({"inputs": {"x": [row(1), row(2), row(3)]}}),
    ];
    (onnx, entry(&prepared), samples)
}

#[test]
fn int8_dynamic_runs_the_products_on_int8_kernels_within_max_drift() {
    let (onnx, entry, samples) = exact_then_lossy();
    let reference = check(&entry, &onnx, None, &samples).unwrap().answers;
    // The outputs are in the thousands: only the cosine says how close they are.
    let gate = MaxDrift {
        cosine: 0.999,
        max_abs: f64::INFINITY,
    };
    let dynamic = int8_dynamic(&entry, &onnx, None, &samples, &reference, gate).unwrap();
    eprintln!("{:?}", dynamic.drift);
    assert_eq!(dynamic.int8.len(), 2, "{:?}", dynamic.int8);
    assert!(dynamic.f32.is_empty());
    // Quantized activations show in the answers, within the gate.
    assert!(dynamic.drift.max_abs > 0.0, "{:?}", dynamic.drift);
    assert!(dynamic.drift.cosine >= 0.999, "{:?}", dynamic.drift);
    // The compiled form loads with tract's integer kernels for both products.
    let compiled = ModelEntry {
        format: model_lock::ModelFormat::Nnef,
        sha256: crate::sha256_hex(&dynamic.bytes),
        size: dynamic.bytes.len() as u64,
        ..entry.clone()
    };
    let loaded = crate::loader::load(&dynamic.bytes, &compiled, Default::default()).unwrap();
    assert!(
        loaded.kernels.contains("_mmm_i32_"),
        "kernels: {}",
        loaded.kernels
    );
    // The answers the pack measured are the ones the compiled form gives.
    let again = check(&compiled, &dynamic.bytes, None, &samples).unwrap();
    assert_eq!(again.answers, dynamic.checked.answers);
}

#[test]
fn int8_dynamic_keeps_f32_only_the_products_that_break_the_gate() {
    let (onnx, entry, samples) = exact_then_lossy();
    let reference = check(&entry, &onnx, None, &samples).unwrap().answers;
    // Tighter than the second product's rounding, looser than the first's (none).
    let strict = MaxDrift {
        cosine: 0.999_999_9,
        max_abs: 1e-3,
    };
    let dynamic = int8_dynamic(&entry, &onnx, None, &samples, &reference, strict).unwrap();
    assert_eq!(dynamic.int8.len(), 1, "{dynamic:?}");
    assert_eq!(dynamic.f32.len(), 1, "{dynamic:?}");
    assert!(dynamic.int8[0].contains("first"), "{:?}", dynamic.int8);
    assert!(dynamic.f32[0].contains("second"), "{:?}", dynamic.f32);
    assert_eq!(dynamic.drift.max_abs, 0.0, "{:?}", dynamic.drift);

    // Nothing passes a gate of exact answers on a sample the first product cannot carry
    // exactly: the pack fails and says what to do.
    let fractional = vec![
        json!({"inputs": {"x": [(0..64).map(|j| j as f64 * 0.013 - 0.4).collect::<Vec<_>>()]}}),
    ];
    let reference = check(&entry, &onnx, None, &fractional).unwrap().answers;
    let exact = MaxDrift {
        cosine: 1.0,
        max_abs: 0.0,
    };
    let e = int8_dynamic(&entry, &onnx, None, &fractional, &reference, exact)
        .unwrap_err()
        .to_string();
    assert!(e.contains("quantize = \"int8\""), "{e}");
}

#[test]
fn int8_dynamic_needs_a_product_with_a_constant_weight() {
    // The default model's weights are 30 values: too small to quantize.
    let prepared = prepare(DEFAULT_MODEL, Quantize::None, &[]).unwrap();
    let entry = entry(&prepared);
    let samples = sample_requests(&entry, None);
    let reference = check(&entry, &prepared.packed, None, &samples)
        .unwrap()
        .answers;
    let e = int8_dynamic(
        &entry,
        &prepared.packed,
        None,
        &samples,
        &reference,
        MaxDrift::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no matrix product"), "{e}");
}
