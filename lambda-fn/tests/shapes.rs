//! Models as exported: real pretrained models from pip packages that tract cannot type with
//! their symbolic dims — tf2onnx exports whose batch is `unk__…`, YOLO detectors and
//! PaddleOCR nets with dynamic height and width, silero VAD branching on its sample rate —
//! packed with no shape fixed by hand, served through the real shapes-fixture `bootstrap`,
//! and held to onnxruntime's answers (`lambda-fn/tests/shapes/reference.py`) on several shapes
//! and batch sizes.

use model_lock::{LockFile, Plans, ShapeSource};
use runtime_emulator::Function;
use serde_json::{json, Value};

/// Allowed against onnxruntime: relative 1e-4, measured against at least 1 (a value near
/// zero is judged on the scale of the terms that produced it).
const REL: f64 = 1e-4;

fn reference() -> Value {
    let text = std::fs::read_to_string(test_support::fixture_path("SHAPES_REFERENCE")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn lock() -> LockFile {
    LockFile::read(&test_support::fixture_path("SHAPES_PACKED").join("models.lock")).unwrap()
}

async fn start(env: &[(&str, &str)]) -> Function {
    test_support::function::start(&test_support::fixture_path("SHAPES_BOOTSTRAP"), env).await
}

/// A JSON answer's values in order, and its shape (read from the nesting).
fn flat(v: &Value, shape: &mut Vec<usize>, depth: usize, out: &mut Vec<f64>) {
    match v {
        Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            }
            items.iter().for_each(|i| flat(i, shape, depth + 1, out));
        }
        other => out.push(other.as_f64().unwrap_or(f64::NAN)),
    }
}

/// Differences from onnxruntime's output, as readable lines; the worst relative error seen.
fn compare(what: &str, want: &Value, got: &Value, worst: &mut f64) -> Vec<String> {
    let (mut shape, mut values) = (Vec::new(), Vec::new());
    flat(got, &mut shape, 0, &mut values);
    let want_shape: Vec<usize> = want["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    if shape != want_shape {
        return vec![format!(
            "{what}: shape {shape:?}, onnxruntime's {want_shape:?}"
        )];
    }
    let mut problems = Vec::new();
    for (i, (w, g)) in want["values"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&values)
        .enumerate()
    {
        let w = w.as_f64().unwrap();
        let err = (w - g).abs();
        *worst = worst.max(err / w.abs().max(1.0));
        let within = err <= REL * w.abs().max(1.0);
        if !within && problems.len() < 5 {
            problems.push(format!("{what}[{i}]: {w}, got {g} (error {err:.3e})"));
        }
    }
    problems
}

#[tokio::test]
async fn real_exports_answer_as_onnxruntime_at_every_shape_and_batch() {
    test_support::require_fixtures!("SHAPES_REFERENCE", "SHAPES_BOOTSTRAP", "SHAPES_PACKED");
    let reference = reference();
    let models = reference["models"].as_array().unwrap();
    assert!(models.len() >= 8, "{} models", models.len());
    let f = start(&[]).await;
    let mut problems = Vec::new();
    let (mut compared, mut worst) = (0, 0.0f64);
    for m in models {
        let name = m["name"].as_str().unwrap();
        for (c, case) in m["cases"].as_array().unwrap().iter().enumerate() {
            let answer = test_support::function::invoke(&f, &case["request"]).await;
            if answer.get("error").is_some() {
                problems.push(format!("{name} case {c}: {answer}"));
                continue;
            }
            for (output, want) in case["outputs"].as_object().unwrap() {
                let what = format!("{name} case {c} {output}");
                problems.extend(compare(&what, want, &answer["outputs"][output], &mut worst));
                compared += 1;
            }
        }
    }
    eprintln!("{compared} outputs compared, largest relative error {worst:.3e}");
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    f.kill().await;
}

/// Each model packed as tract can run it, the lock saying so: the tf2onnx exports with
/// their batch at 1 and rows run one by one; the detectors and OCR nets a plan per shape
/// from the ONNX graph; silero with its sample rate packed as a constant. Every one has a
/// measured memory cost.
#[test]
fn the_lock_says_how_each_export_is_served() {
    test_support::require_fixtures!("SHAPES_REFERENCE", "SHAPES_BOOTSTRAP", "SHAPES_PACKED");
    let lock = lock();
    let entry = |name: &str| lock.models.iter().find(|m| m.name == name).unwrap();
    for name in ["magika", "basic-pitch", "opennsfw"] {
        assert_eq!(entry(name).plans, Plans::Rows, "{name}");
        assert_eq!(
            entry(name).inputs[0].shape[0],
            model_lock::Dim::Symbol("batch".into()),
            "{name}: the exporter's unk__ batch is served as the batch"
        );
    }
    for name in ["faceghost", "nudenet", "ocr-det", "ocr-rec"] {
        assert!(
            matches!(
                entry(name).plans,
                Plans::PerShape {
                    rows: true,
                    from: ShapeSource::Onnx,
                    ..
                }
            ),
            "{name}: {:?}",
            entry(name).plans
        );
    }
    let silero = entry("silero-vad");
    assert_eq!(silero.constants["sr"], json!(16000));
    assert!(silero.inputs.iter().all(|i| i.name != "sr"));
    assert!(
        matches!(&silero.plans, Plans::PerShape { declared, prebuild: true, .. } if declared.len() == 2),
        "{:?}",
        silero.plans
    );
    for m in &lock.models {
        let cost = m
            .memory
            .unwrap_or_else(|| panic!("{}: no memory cost", m.name));
        assert!(cost.bytes_per_input_element >= 4, "{}: {cost:?}", m.name);
    }
}

/// A new shape builds its plan on its first request (logged and counted in EMF), later ones
/// reuse it; past `MODEL_MAX_SHAPE_PLANS` the least recently used goes; a shape the graph
/// cannot run is a 400 naming it; and the sample rate fixed at pack time may be sent only
/// as that value.
#[tokio::test]
async fn shapes_are_planned_once_kept_within_the_cap_and_refused_when_impossible() {
    test_support::require_fixtures!("SHAPES_REFERENCE", "SHAPES_BOOTSTRAP", "SHAPES_PACKED");
    let f = start(&[("MODEL_MAX_SHAPE_PLANS", "3")]).await;
    let image = |h: usize, w: usize| json!({"model": "ocr-det", "inputs": {"x": [[vec![vec![0.5; w]; h], vec![vec![0.25; w]; h], vec![vec![0.75; w]; h]]]}});
    let sizes = [(32, 32), (32, 64), (64, 32), (64, 64), (96, 32), (32, 96)];
    for (h, w) in sizes {
        let answer = test_support::function::invoke(&f, &image(h, w)).await;
        assert_eq!(
            answer["outputs"]["sigmoid_0.tmp_0"][0][0]
                .as_array()
                .map(Vec::len),
            Some(h),
            "{answer}"
        );
    }
    // The newest shape again, batched: no new plan (rows run on the one-row plan).
    let mut batch = image(32, 96);
    let row = batch["inputs"]["x"][0].clone();
    batch["inputs"]["x"] = json!([row.clone(), row]);
    let answer = test_support::function::invoke(&f, &batch).await;
    assert_eq!(
        answer["outputs"]["sigmoid_0.tmp_0"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{answer}"
    );
    let built: Vec<Value> = test_support::function::log_lines(&f, "plan built")
        .into_iter()
        .filter(|l| l["model"] == "ocr-det")
        .collect();
    assert_eq!(built.len(), sizes.len(), "one build per shape: {built:?}");
    assert!(built.iter().all(|l| l["build_ms"].as_f64().unwrap() > 0.0));
    let evicted = test_support::function::log_lines(&f, "plan evicted (least recently used)");
    assert_eq!(evicted.len(), sizes.len() - 3, "{evicted:?}");
    let emf: Vec<Value> = test_support::function::json_lines(&f)
        .into_iter()
        .filter(|l| l.get("PlanBuilds").is_some())
        .collect();
    assert_eq!(
        emf.len(),
        sizes.len(),
        "a PlanBuilds count per build: {emf:?}"
    );
    assert!(emf
        .iter()
        .all(|d| d["PlanBuildTime"].is_number() || d["PlanBuildTime"].is_array()));
    // 100 is no multiple of 32: the detector's upsampled features do not line up.
    let answer = test_support::function::invoke(&f, &image(100, 100)).await;
    assert_eq!(answer["status"], 400, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("[1,3,100,100]") && message.contains("It takes x [batch, 3"),
        "{message}"
    );
    // Asked again, refused again without a second attempt.
    let again = test_support::function::invoke(&f, &image(100, 100)).await;
    assert_eq!(again["error"], answer["error"]);
    assert_eq!(
        test_support::function::log_lines(&f, "plan built")
            .iter()
            .filter(|l| l["model"] == "ocr-det")
            .count(),
        sizes.len()
    );
    // The sample rate: fixed to 16 kHz, so 16000 may be sent and 8000 may not.
    let frame = |sr: Option<i64>| {
        let mut inputs =
            json!({"input": [vec![0.01; 512]], "state": vec![vec![vec![0.0; 128]]; 2]});
        if let Some(sr) = sr {
            inputs["sr"] = json!(sr);
        }
        json!({"model": "silero-vad", "inputs": inputs})
    };
    let without = test_support::function::invoke(&f, &frame(None)).await;
    let with = test_support::function::invoke(&f, &frame(Some(16000))).await;
    assert!(without.get("error").is_none(), "{without}");
    assert_eq!(without["outputs"], with["outputs"]);
    let other = test_support::function::invoke(&f, &frame(Some(8000))).await;
    assert_eq!(other["status"], 400, "{other}");
    assert!(
        other["error"]
            .as_str()
            .unwrap()
            .contains("fixes input \"sr\" to 16000"),
        "{other}"
    );
    // Declared and prebuilt at init: silero's frame needed no build.
    assert!(test_support::function::log_lines(&f, "plan built")
        .iter()
        .filter(|l| l["model"] == "silero-vad")
        .all(|l| l["shape"] != "[1,512]; [2,1,128]" || l.get("requestId").is_none()));
    f.kill().await;
}

/// A detector exported with dynamic height and width takes images far larger than the
/// small one it was checked on at pack time: its cap comes from the function's memory and
/// the measured cost per input value, not from the sample's size.
#[tokio::test]
async fn a_detector_takes_an_image_larger_than_any_it_was_packed_with() {
    test_support::require_fixtures!("SHAPES_REFERENCE", "SHAPES_BOOTSTRAP", "SHAPES_PACKED");
    let f = start(&[]).await;
    let (h, w) = (256, 320);
    let request =
        json!({"model": "faceghost", "inputs": {"images": [vec![vec![vec![0.5; w]; h]; 3]]}});
    let answer = test_support::function::invoke(&f, &request).await;
    assert!(answer.get("error").is_none(), "{answer}");
    // YOLO's anchors: one per cell of the 8, 16 and 32-pixel grids.
    let anchors = (h / 8) * (w / 8) + (h / 16) * (w / 16) + (h / 32) * (w / 32);
    assert_eq!(
        answer["outputs"]["output0"][0][0].as_array().unwrap().len(),
        anchors
    );
    f.kill().await;
}
