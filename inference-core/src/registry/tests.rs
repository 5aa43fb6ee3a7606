//! The registry on owned copies of the default model: eager and lazy loading, the LRU of
//! models loaded on demand, and every load error.

use serde_json::{json, Value};

use super::*;
use crate::prepare::{prepare, Quantize};
use crate::test_models::DEFAULT_MODEL;

fn entry(name: &str, bytes: &[u8]) -> ModelEntry {
    let signature = prepare(DEFAULT_MODEL, Quantize::None, &[])
        .unwrap()
        .signature;
    ModelEntry {
        name: name.into(),
        file: format!("{name}.onnx"),
        format: Default::default(),
        sha256: crate::sha256_hex(bytes),
        size: bytes.len() as u64,
        source_sha256: None,
        external_data_sha256: Default::default(),
        artifact: Default::default(),
        embed: true,
        labels: vec!["malignant".into(), "benign".into()],
        class_labels: None,
        inputs: signature.inputs,
        outputs: signature.outputs,
        tokenizer: None,
        pipeline: None,
        limits: Default::default(),
        memory: None,
        constants: Default::default(),
        plans: Default::default(),
    }
}

fn model(name: &str) -> PackedModel {
    PackedModel {
        entry: entry(name, DEFAULT_MODEL),
        bytes: Some(DEFAULT_MODEL.to_vec().into()),
        tokenizer: None,
    }
}

fn settings(load: LoadMode, max_loaded: usize) -> Settings {
    Settings {
        max_loaded,
        ..Settings::embedded_only(load)
    }
}

fn request(model: &str) -> Value {
    json!({"model": model, "features": vec![0.5; 30]})
}

impl Registry {
    fn loaded_names(&self) -> Vec<&str> {
        self.slots
            .iter()
            .filter(|s| s.loaded.lock().unwrap().is_some())
            .map(|s| s.model.entry.name.as_str())
            .collect()
    }
}

#[test]
fn lazy_models_load_on_first_use_and_the_least_recently_used_go() {
    let models = ["a", "b", "c"].map(model).to_vec();
    let registry = Registry::new(models, Some("a"), &settings(LoadMode::Lazy, 2)).unwrap();
    assert!(registry.loaded_names().is_empty(), "nothing loads at init");
    for name in ["a", "b"] {
        registry.handle_value(request(name)).unwrap();
    }
    assert_eq!(registry.loaded_names(), ["a", "b"]);
    // "a" again, so "b" is the least recently used when "c" arrives.
    registry.handle_value(request("a")).unwrap();
    let answer = registry.handle_value(request("c")).unwrap();
    assert_eq!(answer["model"], "c");
    assert_eq!(registry.loaded_names(), ["a", "c"]);
    // An evicted model loads again on its next request.
    assert_eq!(registry.handle_value(request("b")).unwrap()["model"], "b");
    assert_eq!(registry.loaded_names(), ["b", "c"]);
}

#[test]
fn eager_models_load_at_init_and_are_never_evicted() {
    let models = ["a", "b", "c"].map(model).to_vec();
    let registry = Registry::new(models, None, &settings(LoadMode::Eager, 1)).unwrap();
    assert_eq!(registry.loaded_names(), ["a", "b", "c"]);
    for name in ["c", "b", "a"] {
        registry.handle_value(request(name)).unwrap();
    }
    assert_eq!(registry.loaded_names(), ["a", "b", "c"]);
    // Several models and no default: the request must name one.
    let e = registry
        .handle_value(json!({"features": vec![0.5; 30]}))
        .unwrap_err();
    assert!(e.to_string().contains("field \"model\" is required"), "{e}");
}

#[test]
fn a_copy_with_the_wrong_hash_is_a_checksum_mismatch() {
    let mut m = model("m");
    m.entry.sha256 = "ab".repeat(32);
    let e = Registry::new(vec![m], None, &settings(LoadMode::Eager, 8)).unwrap_err();
    match &e {
        InitError::ChecksumMismatch {
            model,
            expected,
            actual,
        } => {
            assert_eq!(model, "m");
            assert_eq!(expected, &"ab".repeat(32));
            assert_eq!(actual, &crate::sha256_hex(DEFAULT_MODEL));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bytes_with_the_right_hash_that_tract_cannot_read_are_a_load_error() {
    let junk = b"not a model".to_vec();
    let m = PackedModel {
        entry: entry("m", &junk),
        bytes: Some(junk.into()),
        tokenizer: None,
    };
    let e = Registry::new(vec![m], None, &settings(LoadMode::Eager, 8)).unwrap_err();
    assert!(
        matches!(&e, InitError::Load { model, message } if model == "m" && message.contains("cannot decode ONNX")),
        "{e:?}"
    );
}

#[test]
fn a_model_without_bytes_or_fallback_is_unavailable_on_use() {
    let mut m = model("m");
    m.bytes = None;
    let registry = Registry::new(vec![m], None, &settings(LoadMode::Eager, 8)).unwrap();
    let e = registry.handle_value(request("m")).unwrap_err();
    assert_eq!(e.status(), 503);
    assert!(e.to_string().contains("not embedded in this binary"), "{e}");
}

#[test]
fn a_text_model_without_its_tokenizer_does_not_load() {
    let mut m = model("m");
    m.entry.pipeline = Some(model_lock::TextPipeline {
        max_length: 16,
        normalize: true,
        max_batch: 4,
        ..model_lock::TextPipeline::new(model_lock::TextTask::Embedding)
    });
    let e = Registry::new(vec![m], None, &settings(LoadMode::Eager, 8)).unwrap_err();
    assert!(e.to_string().contains("needs a tokenizer"), "{e}");
}

#[test]
fn a_default_that_is_not_served_is_refused() {
    let e = Registry::new(vec![model("m")], Some("x"), &settings(LoadMode::Lazy, 8)).unwrap_err();
    assert!(
        matches!(e, InitError::BadDefault(ref d) if d == "x"),
        "{e:?}"
    );
}

#[test]
fn an_embedded_entry_must_match_what_the_build_recorded() {
    let entry = entry("m", DEFAULT_MODEL);
    let json: &'static str = Box::leak(entry.to_json().into_boxed_str());
    let models: &'static [model_lock::EmbeddedModel] =
        Box::leak(Box::new([model_lock::EmbeddedModel {
            name: "m",
            sha256: "00",
            size: DEFAULT_MODEL.len() as u64,
            bytes: Some(DEFAULT_MODEL),
            tokenizer: None,
            entry_json: json,
        }]));
    let packed = PackedModels {
        default_model: None,
        models,
    };
    let e = Registry::embedded(&packed, &settings(LoadMode::Eager, 8)).unwrap_err();
    assert!(matches!(e, InitError::BadEntry { .. }), "{e:?}");
}

#[test]
fn a_panic_while_answering_is_a_500_and_the_next_request_is_served() {
    let r = Registry::new(vec![model("m")], None, &settings(LoadMode::Eager, 8)).unwrap();
    let answered = r.answered(|_| panic!("a kernel fell over"));
    assert_eq!(answered.record.status, 500);
    let e = answered.result.unwrap_err();
    assert_eq!(e.status(), 500);
    assert!(e.log_message().contains("a kernel fell over"), "{e}");
    assert!(
        !e.public_message().contains("kernel"),
        "details stay in the log"
    );
    assert!(r.handle_value(request("m")).is_ok());
}

#[test]
fn rows_with_non_finite_scores_have_no_label_and_the_answer_says_so() {
    use prost::Message as _;
    use tract_onnx::pb;
    // A pass-through Scaler: its scores are its inputs, so a NaN input is a NaN score.
    let floats = |name: &str| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Floats as i32,
        floats: vec![if name == "scale" { 1.0 } else { 0.0 }; 2],
        ..Default::default()
    };
    let proto = crate::test_models::one_node_ml(
        "scores",
        "Scaler",
        vec![floats("offset"), floats("scale")],
        pb::tensor_proto::DataType::Float,
        Some(&[2, 2]),
    );
    let bytes = proto.encode_to_vec();
    let prepared = prepare(&bytes, Quantize::None, &[]).unwrap();
    let entry = ModelEntry {
        inputs: prepared.signature.inputs,
        outputs: prepared.signature.outputs,
        ..entry("s", &bytes)
    };
    let scaler = PackedModel {
        entry,
        bytes: Some(bytes.into()),
        tokenizer: None,
    };
    let r = Registry::new(vec![scaler], None, &settings(LoadMode::Eager, 8)).unwrap();
    let answer = r
        .handle_value(json!({"features": [[0.2, 0.7], ["NaN", 0.5]]}))
        .unwrap();
    assert_eq!(answer["labels"][0], "benign", "{answer}");
    assert!(answer["labels"][1].is_null(), "{answer}");
    let warning = answer["warnings"][0].as_str().unwrap();
    assert!(warning.contains("rows 1 have no label"), "{warning}");
}

#[test]
fn prediction_repeats_only_a_small_first_output() {
    let r = Registry::new(vec![model("m")], None, &settings(LoadMode::Eager, 8)).unwrap();
    let small = r.handle_value(request("m")).unwrap();
    assert_eq!(small["prediction"], small["outputs"]["label"]);
    let rows = crate::response::MAX_PREDICTION_VALUES + 1;
    let big = r
        .handle_value(json!({"features": vec![vec![0.5; 30]; rows]}))
        .unwrap();
    assert!(big.get("prediction").is_none(), "not doubled");
    assert_eq!(big["outputs"]["label"].as_array().unwrap().len(), rows);
}

#[test]
fn a_first_use_load_gets_only_the_invocations_remaining_time() {
    let store = tempfile::tempdir().unwrap();
    let copy = store.path().join(crate::fallback::relative_path(
        "m",
        &crate::sha256_hex(DEFAULT_MODEL),
        model_lock::ModelFormat::Onnx,
    ));
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::write(&copy, DEFAULT_MODEL).unwrap();
    let mut m = model("m");
    m.bytes = None;
    let mut with_store = settings(LoadMode::Lazy, 8);
    with_store.fallback.efs_dir = Some(store.path().to_path_buf());
    let registry = Registry::new(vec![m], None, &with_store).unwrap();

    // No time left: the store is not waited for, and the 503 says why.
    let e = registry
        .handle_value_until(request("m"), Some(std::time::Instant::now()))
        .result
        .unwrap_err();
    assert_eq!(e.status(), 503);
    assert!(e.to_string().contains("invocation's remaining time"), "{e}");
    // Time enough: the same store serves.
    let later = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let answer = registry
        .handle_value_until(request("m"), Some(later))
        .result
        .unwrap();
    assert_eq!(answer["source"], "efs");
}

#[test]
fn an_image_model_loads_at_init_from_the_image_before_the_other_stores() {
    let image = tempfile::tempdir().unwrap();
    let efs = tempfile::tempdir().unwrap();
    let rel = crate::fallback::relative_path(
        "m",
        &crate::sha256_hex(DEFAULT_MODEL),
        model_lock::ModelFormat::Onnx,
    );
    for dir in [image.path(), efs.path()] {
        std::fs::create_dir_all(dir.join(&rel).parent().unwrap()).unwrap();
        std::fs::write(dir.join(&rel), DEFAULT_MODEL).unwrap();
    }
    let image_model = || {
        let mut m = model("m");
        m.bytes = None;
        m.entry.artifact = model_lock::Artifact::Image;
        m
    };
    let mut s = settings(LoadMode::Eager, 8);
    s.fallback.image_dir = Some(image.path().to_path_buf());
    s.fallback.efs_dir = Some(efs.path().to_path_buf());
    let registry = Registry::new(vec![image_model()], None, &s).unwrap();
    let loads = registry.take_loads();
    assert_eq!(loads.len(), 1, "loaded at init, not on first use");
    let answer = registry.handle_value(request("m")).unwrap();
    assert_eq!(answer["source"], "image");

    // A corrupt image copy fails its hash and the next store serves.
    let mut bad = DEFAULT_MODEL.to_vec();
    bad[100] ^= 1;
    std::fs::write(image.path().join(&rel), &bad).unwrap();
    let registry = Registry::new(vec![image_model()], None, &s).unwrap();
    let answer = registry.handle_value(request("m")).unwrap();
    assert_eq!(answer["source"], "efs");

    // Without the image's directory (the binary run outside its image) it waits for a
    // request, like an `embed = false` model.
    s.fallback.image_dir = None;
    let registry = Registry::new(vec![image_model()], None, &s).unwrap();
    assert!(registry.take_loads().is_empty());
}
