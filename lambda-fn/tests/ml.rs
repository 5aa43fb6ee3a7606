//! Classical ML exports (scikit-learn pipelines, tree ensembles, SVMs, XGBoost, LightGBM)
//! through the real ml-fixture `bootstrap`, compared with onnxruntime's outputs on the same
//! files and rows. `lambda-fn/tests/ml/train.py` trains the models on data sets that ship with
//! scikit-learn and records onnxruntime's answers; `cargo xtask test` packs them as they
//! come (ZipMaps stripped) into one function.

use model_lock::{Dim, LockFile};
use runtime_emulator::{Function, FunctionConfig};
use serde_json::{json, Value};

/// Error allowed against onnxruntime: relative 1e-5, measured against at least 1 so that a
/// margin that cancels to near zero (an SVM decision value summed over hundreds of support
/// vectors, where float32 accumulation order alone moves the result by ~1e-6) is judged on
/// the scale of the terms that produced it.
const REL: f64 = 1e-5;

fn expected() -> Value {
    let text = std::fs::read_to_string(test_support::fixture_path("ML_EXPECTED")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn flatten(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other.clone()),
    }
}

/// Differences between onnxruntime's output (`want`) and ours, as readable lines, and the
/// largest relative error seen among floats.
fn compare(what: &str, want: &Value, got: &Value, worst: &mut f64) -> Vec<String> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten(want, &mut a);
    flatten(got, &mut b);
    if a.len() != b.len() {
        return vec![format!(
            "{what}: {} values expected, got {}: {got}",
            a.len(),
            b.len()
        )];
    }
    let mut problems = Vec::new();
    for (i, (w, g)) in a.iter().zip(&b).enumerate() {
        // String class labels: exactly the names onnxruntime answers.
        if let Some(name) = w.as_str() {
            if g.as_str() != Some(name) {
                problems.push(format!("{what}[{i}]: label {w}, got {g}"));
            }
            continue;
        }
        match (w.as_i64(), w.as_f64(), g.as_f64()) {
            // Labels: exact.
            (Some(wi), _, _) if w.is_i64() || w.is_u64() => {
                if g.as_i64() != Some(wi) {
                    problems.push(format!("{what}[{i}]: label {w}, got {g}"));
                }
            }
            (_, Some(wf), Some(gf)) => {
                let err = (wf - gf).abs();
                if wf.abs() > 0.0 {
                    *worst = worst.max(err / wf.abs());
                }
                if err > REL * wf.abs().max(1.0) {
                    problems.push(format!("{what}[{i}]: {wf}, got {gf} (error {err:.3e})"));
                }
            }
            _ => problems.push(format!("{what}[{i}]: {w}, got {g}")),
        }
    }
    problems
}

#[tokio::test]
async fn every_model_matches_onnxruntime_single_rows_and_batches() {
    test_support::require_fixtures!("ML_EXPECTED", "ML_BOOTSTRAP", "ML_PACKED");
    let expected = expected();
    let models = expected["models"].as_array().unwrap();
    assert!(
        models.len() >= 24,
        "train.py exported {} models",
        models.len()
    );
    let refused = models
        .iter()
        .flat_map(|m| m["cases"].as_array().unwrap())
        .filter(|c| c.get("error").is_some())
        .count();
    assert!(
        refused >= 1,
        "a case onnxruntime refuses (an unknown category)"
    );
    let f = Function::start(FunctionConfig::new(test_support::fixture_path(
        "ML_BOOTSTRAP",
    )))
    .await
    .expect("bootstrap starts");
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut worst = 0.0f64;
    for m in models {
        let name = m["name"].as_str().unwrap();
        for (c, case) in m["cases"].as_array().unwrap().iter().enumerate() {
            // Named inputs (string columns beside numeric ones), or one feature matrix.
            let inputs = match case.get("inputs") {
                Some(named) => named.clone(),
                None => json!({"input": case["rows"]}),
            };
            let rows = inputs
                .as_object()
                .and_then(|i| i.values().next())
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let answer =
                test_support::function::invoke(&f, &json!({"model": name, "inputs": inputs})).await;
            if case.get("error").is_some() {
                // onnxruntime refused it (an unknown category): so must we, as the caller's
                // mistake.
                let message = answer["error"].as_str().unwrap_or_default();
                if answer["status"] != 400 || !message.contains("categories") {
                    problems.push(format!("{name} case {c}: expected a 400, got {answer}"));
                }
                continue;
            }
            if answer.get("error").is_some() {
                problems.push(format!("{name} case {c}: {answer}"));
                continue;
            }
            for (output, want) in case["outputs"].as_object().unwrap() {
                let got = &answer["outputs"][output];
                let what = format!("{name} case {c} ({rows} rows) {output}");
                problems.extend(compare(&what, want, got, &mut worst));
                checked += 1;
            }
        }
    }
    eprintln!("{checked} outputs compared, largest relative error {worst:.3e}");
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    f.kill().await;
}

/// Classifiers trained on species names: the lock keeps the names (the model's labels, the
/// manifest being silent) and which output answers them, and the function's `labels` and
/// label output are the names onnxruntime gives.
#[tokio::test]
async fn string_class_labels_are_answered_as_names() {
    test_support::require_fixtures!("ML_EXPECTED", "ML_BOOTSTRAP", "ML_PACKED");
    let lock =
        LockFile::read(&test_support::fixture_path("ML_PACKED").join("models.lock")).unwrap();
    let expected = expected();
    let f = Function::start(FunctionConfig::new(test_support::fixture_path(
        "ML_BOOTSTRAP",
    )))
    .await
    .expect("bootstrap starts");
    let mut named = 0;
    for m in expected["models"].as_array().unwrap() {
        let Some(classes) = m["classes"].as_array() else {
            continue;
        };
        named += 1;
        let name = m["name"].as_str().unwrap();
        let entry = lock.models.iter().find(|e| e.name == name).unwrap();
        let classes: Vec<String> = classes
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(entry.labels, classes, "{name}");
        let class_labels = entry.class_labels.as_ref().expect("class labels recorded");
        assert_eq!(class_labels.names, classes, "{name}");
        let case = &m["cases"][3];
        let answer = test_support::function::invoke(
            &f,
            &json!({"model": name, "inputs": {"input": case["rows"]}}),
        )
        .await;
        for output in &class_labels.outputs {
            assert_eq!(answer["outputs"][output], case["outputs"][output], "{name}");
            assert_eq!(
                answer["labels"], case["outputs"][output],
                "{name}: {answer}"
            );
        }
    }
    assert!(named >= 5, "train.py exported the species models");
    f.kill().await;
}

/// An export with its tensors in a side file: packing fetched, pinned and inlined it.
#[test]
fn external_data_is_pinned_and_inlined() {
    test_support::require_fixtures!("ML_EXPECTED", "ML_BOOTSTRAP", "ML_PACKED");
    let packed = test_support::fixture_path("ML_PACKED");
    let lock = LockFile::read(&packed.join("models.lock")).unwrap();
    let expected = expected();
    let mut external = 0;
    for m in expected["models"].as_array().unwrap() {
        let Some(files) = m["external_data"].as_array().filter(|f| !f.is_empty()) else {
            continue;
        };
        external += 1;
        let name = m["name"].as_str().unwrap();
        let entry = lock.models.iter().find(|e| e.name == name).unwrap();
        let pinned: Vec<&str> = entry
            .external_data_sha256
            .keys()
            .map(String::as_str)
            .collect();
        let wanted: Vec<&str> = files.iter().map(|f| f.as_str().unwrap()).collect();
        assert_eq!(pinned, wanted, "{name}");
        // One packed file, at least as large as the side file it absorbed.
        let data_file = test_support::fixture_path("ML_EXPECTED").with_file_name(wanted[0]);
        let data = std::fs::metadata(data_file).unwrap().len();
        assert!(
            entry.size >= data,
            "{name}: packed {} < data {data}",
            entry.size
        );
    }
    assert!(
        external >= 1,
        "train.py exported a model with external data"
    );
}

/// Packing served what onnxruntime calls `output_probability` as a tensor (the ZipMap is
/// gone) and gave skl2onnx's unnamed batch dimension a symbol.
#[test]
fn zipmaps_are_stripped_and_batch_dims_are_symbolic() {
    test_support::require_fixtures!("ML_EXPECTED", "ML_BOOTSTRAP", "ML_PACKED");
    let lock =
        LockFile::read(&test_support::fixture_path("ML_PACKED").join("models.lock")).unwrap();
    let expected = expected();
    let mut zipmapped = 0;
    for m in expected["models"].as_array().unwrap() {
        let entry = lock
            .models
            .iter()
            .find(|e| e.name == m["name"].as_str().unwrap())
            .expect("every exported model is packed");
        let input = &entry.inputs[0];
        assert!(
            matches!(input.shape[0], Dim::Symbol(_)),
            "{}: batch dim {:?}",
            entry.name,
            input.shape
        );
        if m["zipmap"].as_bool().unwrap_or(false) {
            zipmapped += 1;
            let probs = entry
                .outputs
                .iter()
                .find(|o| o.name == "output_probability")
                .unwrap_or_else(|| panic!("{}: outputs {:?}", entry.name, entry.outputs));
            assert_eq!(probs.shape.len(), 2, "{}: {:?}", entry.name, probs.shape);
            assert!(matches!(probs.shape[0], Dim::Symbol(_)));
        }
    }
    assert!(
        zipmapped >= 2,
        "the fixture has models exported with ZipMap"
    );
}
