//! The compiled form and fixed-shape plans end to end, through the real text-fixture
//! `bootstrap`: the PP-OCRv4 text detector (a conv net) is packed three times — compiled,
//! compiled with a batch-1 plan run row by row, and as ONNX — and the first two must answer
//! a batch of images as the ONNX form does. (The same fixture's MiniLM is compiled, runs
//! bucket plans and is held to onnxruntime by text.rs; the classical-ML fixture's models are
//! compiled and held to it by ml.rs.)

use model_lock::{LockFile, ModelFormat, Plans, LOCK_FILE_NAME};
use serde_json::{json, Value};

/// Two 64×64 images of dark glyph-like strokes on a light page (normalized to [-1, 1] as
/// PaddleOCR feeds it): what a text detector answers with a varied probability map.
fn images() -> Value {
    let page = |shift: usize| -> Vec<Vec<f64>> {
        (0..64)
            .map(|y| {
                (0..64)
                    .map(|x| {
                        let line = (y + shift) % 20;
                        let cell = (x + shift) % 7;
                        let ink = (4..14).contains(&line)
                            && (4..60).contains(&x)
                            && (cell == 0 || (cell < 5 && (line == 4 || line == 8 || line == 13)));
                        if ink {
                            -1.0
                        } else {
                            1.0
                        }
                    })
                    .collect()
            })
            .collect()
    };
    let image = |shift: usize| json!([page(shift), page(shift), page(shift)]);
    json!([image(0), image(3)])
}

fn numbers(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| numbers(i, out)),
        Value::Number(n) => out.push(n.as_f64().unwrap()),
        other => panic!("not a number: {other}"),
    }
}

#[tokio::test]
async fn a_compiled_conv_net_and_its_row_by_row_plan_answer_as_its_onnx_form() {
    test_support::require_fixtures!("TEXT_BOOTSTRAP", "TEXT_PACKED");
    let lock =
        LockFile::read(&test_support::fixture_path("TEXT_PACKED").join(LOCK_FILE_NAME)).unwrap();
    let format = |name: &str| lock.model(name).unwrap().format;
    assert_eq!(format("ocr-det"), ModelFormat::Nnef);
    assert_eq!(format("ocr-det-rows"), ModelFormat::Nnef);
    assert_eq!(format("ocr-det-onnx"), ModelFormat::Onnx);
    assert_eq!(format("minilm"), ModelFormat::Nnef);
    let plans = |name: &str| lock.model(name).unwrap().plans.clone();
    assert_eq!(plans("ocr-det"), Plans::Symbolic);
    assert_eq!(plans("ocr-det-rows"), Plans::Rows);
    assert_eq!(plans("ocr-det-onnx"), Plans::Symbolic);
    assert!(matches!(plans("minilm"), Plans::Buckets { .. }));

    let f = test_support::function::start(
        &test_support::fixture_path("TEXT_BOOTSTRAP"),
        &[("MODEL_LOAD", "eager")],
    )
    .await;
    let answer = |model: &str| {
        let request = json!({"model": model, "inputs": {"x": images()}});
        let f = &f;
        async move { test_support::function::invoke(f, &request).await }
    };
    let (compiled, onnx) = (answer("ocr-det").await, answer("ocr-det-onnx").await);
    let rows = answer("ocr-det-rows").await;
    let output = |a: &Value| -> Vec<f64> {
        let outputs = a["outputs"].as_object().unwrap_or_else(|| panic!("{a}"));
        let mut out = Vec::new();
        numbers(outputs.values().next().unwrap(), &mut out);
        out
    };
    let (c, o, r) = (output(&compiled), output(&onnx), output(&rows));
    assert_eq!(c.len(), 2 * 64 * 64, "a probability map per image");
    let spread =
        o.iter().cloned().fold(f64::MIN, f64::max) - o.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 0.01, "the map is not a constant: {spread}");
    let worst = |x: &[f64]| -> f64 {
        assert_eq!(x.len(), o.len());
        x.iter()
            .zip(&o)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    };
    let compiled = worst(&c);
    assert!(
        compiled <= inference_core::prepare::COMPILED_MAX_DRIFT.max_abs,
        "compiled and ONNX answers differ by {compiled}"
    );
    // Row by row on the batch-1 plan: other kernels, the same answers up to their rounding.
    let row_by_row = worst(&r);
    assert!(
        row_by_row <= inference_core::prepare::PLANS_MAX_DRIFT.max_abs,
        "row-by-row and ONNX answers differ by {row_by_row}"
    );
}
