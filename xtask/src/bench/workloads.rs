//! What the benchmarks run: the models, the requests both sides receive (the same bytes),
//! and how to read a comparable vector out of each side's answer.

use std::path::PathBuf;

use inference_core::compare;
use serde_json::{json, Value};

use super::setup::{self, Files};

/// How a model is fed, on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{"features": [[...]]}`: the embedded default classifier.
    Tabular,
    /// `{"text": [...]}`: tokenized, run, mean-pooled, normalized.
    Text,
    /// `{"inputs": {"x": [[[[...]]]]}}`: an image batch.
    Image,
}

impl Kind {
    pub fn python_name(self) -> &'static str {
        match self {
            Kind::Tabular => "tabular",
            Kind::Text => "text",
            Kind::Image => "image",
        }
    }
}

/// One request shape, at batch 1 and batch 8.
#[derive(Clone)]
pub struct Workload {
    /// "30 features", "seq 16", "seq 128", "3×128×128".
    pub label: String,
    pub batch1: Vec<u8>,
    pub batch8: Vec<u8>,
}

pub struct BenchModel {
    /// The key on the command line (`--models`) and in the report.
    pub key: &'static str,
    /// The model's name in the bench function (target/bench/models.toml).
    pub packed_name: &'static str,
    pub kind: Kind,
    pub workloads: Vec<Workload>,
    /// What a Python deployment of this model carries: the fp32 model first (onnxruntime's
    /// `MODEL_PATH`), then anything else it reads.
    pub python_files: Vec<PathBuf>,
    /// Whether onnxruntime's own int8 export runs as a side.
    pub ort_int8: bool,
    /// The bench function's name for this model packed with `quantize = "int8-dynamic"`,
    /// measured as a second side of ours.
    pub int8_dynamic: Option<&'static str>,
    /// An absolute cold-start target for ours, in ms, beyond the ratio every model has.
    pub cold_target_ms: Option<f64>,
    /// Ours must start cold in at most this fraction of Python + onnxruntime fp32's time
    /// (both with the machine's cores), and, when set, in at most `pinned_cold_ratio` of it
    /// with both pinned to one core (a Lambda function under 1,769 MB has one vCPU).
    pub cold_ratio: f64,
    pub pinned_cold_ratio: Option<f64>,
}

/// The `--models` keys, in run order.
pub const KEYS: [&str; 3] = ["classifier", "minilm", "vision"];

/// The benchmark model named `key` (one of [`KEYS`]).
pub fn model(key: &str, samples: &Value, files: &Files) -> anyhow::Result<BenchModel> {
    match key {
        "classifier" => classifier(samples),
        "minilm" => Ok(minilm(files)),
        "vision" => Ok(vision(files)),
        _ => anyhow::bail!("--models {key:?}: expected {}", one_of(&KEYS)),
    }
}

/// "a, b or c".
fn one_of(keys: &[&str]) -> String {
    match keys.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => keys.join(""),
    }
}

/// The default classifier's held-out rows (models/default/samples.json).
fn classifier(samples: &Value) -> anyhow::Result<BenchModel> {
    let rows: Vec<Value> = samples["rows"]
        .as_array()
        .or_else(|| samples.as_array())
        .ok_or_else(|| anyhow::anyhow!("models/default/samples.json has no rows"))?
        .iter()
        .map(|r| r.get("features").cloned().unwrap_or_else(|| r.clone()))
        .collect();
    anyhow::ensure!(!rows.is_empty(), "models/default/samples.json has no rows");
    let batch = |n: usize| -> Vec<Value> { rows.iter().cycle().take(n).cloned().collect() };
    Ok(BenchModel {
        key: "classifier",
        packed_name: "breast-cancer",
        kind: Kind::Tabular,
        workloads: vec![Workload {
            label: "30 features".into(),
            batch1: request("breast-cancer", json!({"features": batch(1)})),
            batch8: request("breast-cancer", json!({"features": batch(8)})),
        }],
        python_files: vec![setup::classifier_file()],
        ort_int8: false,
        int8_dynamic: None,
        cold_target_ms: None,
        cold_ratio: 1.0 / 10.0,
        pinned_cold_ratio: None,
    })
}

/// Sentences of 14 common words: 16 tokens with [CLS] and [SEP].
const SHORT: [&str; 8] = [
    "the quick brown fox jumps over the lazy dog near the old river bank",
    "we will meet at the main station after work on friday evening once again",
    "she bought fresh bread and milk from the small shop on the street corner",
    "the new policy will change how many people pay for public health care here",
    "our team won the final game of the season in front of the fans",
    "he could not find his keys so he was late for the first meeting",
    "the city plans to build a new park and school next to the lake",
    "they watched the sun go down from the top of the hill last night",
];

/// A paragraph well over 128 tokens: truncated to 128 on both sides.
const LONG: &str = "the history of the city goes back more than a thousand years, when a small group \
of farmers settled on the banks of the river and built the first houses out of wood and stone. over \
the centuries the town grew into a busy market, then into a center of trade and industry, with \
factories along the water and rail lines that reached every part of the country. today most of the \
old buildings have been turned into offices, shops and homes, and the river is once again a place \
where people walk, run and ride their bikes on long summer evenings. the city council hopes that new \
parks, better public transport and more affordable housing will keep the city a good place to live \
for the next hundred years, while many residents worry that rising prices will push families out.";

/// MiniLM with its matrix products on int8, beside the int8-weights `minilm`.
pub const MINILM_INT8_DYNAMIC: &str = "minilm-int8-dynamic";

fn minilm(files: &Files) -> BenchModel {
    let short = |n: usize| -> Vec<&str> { SHORT.iter().cycle().take(n).copied().collect() };
    let long = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("{} {LONG}", SHORT[i % SHORT.len()]))
            .collect()
    };
    BenchModel {
        key: "minilm",
        packed_name: "minilm",
        kind: Kind::Text,
        workloads: vec![
            Workload {
                label: "seq 16".into(),
                batch1: request("minilm", json!({"text": short(1)})),
                batch8: request("minilm", json!({"text": short(8)})),
            },
            Workload {
                label: "seq 128".into(),
                batch1: request("minilm", json!({"text": long(1)})),
                batch8: request("minilm", json!({"text": long(8)})),
            },
        ],
        python_files: vec![files.minilm_fp32.clone(), files.minilm_tokenizer.clone()],
        ort_int8: true,
        int8_dynamic: Some(MINILM_INT8_DYNAMIC),
        cold_target_ms: Some(100.0),
        cold_ratio: 1.0 / 4.0,
        pinned_cold_ratio: Some(1.0 / 3.0),
    }
}

/// The vision model's input side (pixels per edge).
pub const IMAGE_EDGE: usize = 128;

/// The text detector packed as exported: a plan per request shape, built on its first.
pub const VISION_EXPORTED: &str = "ocr-det-exported";

/// Image sizes (height, width) a warm process sees for the first time: what a new shape's
/// first request costs.
pub const NEW_SHAPES: [(usize, usize); 3] = [(96, 128), (160, 224), (64, 320)];

/// One image of `height` × `width` for `model`, and its label.
pub fn image_request(model: &str, height: usize, width: usize) -> (String, Vec<u8>) {
    let pixels = |c: usize| -> Vec<Vec<f64>> {
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| (((x * 7 + y * 13 + c * 29) % 97) as f64 / 48.5) - 1.0)
                    .collect()
            })
            .collect()
    };
    let body = json!({"inputs": {"x": [[pixels(0), pixels(1), pixels(2)]]}});
    (format!("3×{height}×{width}"), request(model, body))
}

/// Deterministic normalized "pixels" (a fixed-seed LCG), 3 decimals: the same JSON bytes for
/// both sides, and no image library needed.
fn images(n: usize) -> Value {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let unit = (state >> 40) as f64 / (1u64 << 24) as f64;
        ((unit * 4.0 - 2.0) * 1000.0).round() / 1000.0
    };
    let batch: Vec<Value> = (0..n)
        .map(|_| {
            json!((0..3)
                .map(|_| {
                    (0..IMAGE_EDGE)
                        .map(|_| (0..IMAGE_EDGE).map(|_| next()).collect::<Vec<f64>>())
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>())
        })
        .collect();
    Value::Array(batch)
}

fn vision(files: &Files) -> BenchModel {
    BenchModel {
        key: "vision",
        packed_name: "ocr-det",
        kind: Kind::Image,
        workloads: vec![Workload {
            label: format!("3×{IMAGE_EDGE}×{IMAGE_EDGE}"),
            batch1: request("ocr-det", json!({"inputs": {"x": images(1)}})),
            batch8: request("ocr-det", json!({"inputs": {"x": images(8)}})),
        }],
        python_files: vec![files.ocr_det.clone()],
        ort_int8: false,
        int8_dynamic: None,
        cold_target_ms: None,
        cold_ratio: 1.0 / 2.0,
        pinned_cold_ratio: None,
    }
}

fn request(model: &str, mut body: Value) -> Vec<u8> {
    body["model"] = json!(model);
    serde_json::to_vec(&body).expect("a JSON value serializes")
}

impl Workload {
    /// The same requests sent to `model` instead.
    pub fn for_model(&self, model: &str) -> anyhow::Result<Workload> {
        let rename = |bytes: &[u8]| -> anyhow::Result<Vec<u8>> {
            Ok(request(model, serde_json::from_slice(bytes)?))
        };
        Ok(Workload {
            label: self.label.clone(),
            batch1: rename(&self.batch1)?,
            batch8: rename(&self.batch8)?,
        })
    }
}

/// The numbers to compare across sides: embeddings for text, every numeric output (by name,
/// sorted) otherwise. Both sides answer in the same shape.
pub fn comparable(kind: Kind, answer: &Value) -> Option<Vec<Vec<f64>>> {
    match kind {
        Kind::Text => answer["embeddings"]
            .as_array()?
            .iter()
            .map(|row| row.as_array()?.iter().map(Value::as_f64).collect())
            .collect(),
        Kind::Tabular | Kind::Image => {
            let outputs = answer["outputs"].as_object()?;
            let mut names: Vec<&String> = outputs.keys().collect();
            names.sort();
            Some(
                names
                    .into_iter()
                    .map(|n| compare::numbers(&outputs[n]))
                    .collect(),
            )
        }
    }
}

/// The longest text a text answer reports (tokens after truncation).
pub fn max_tokens(answer: &Value) -> Option<u64> {
    answer["tokens"]
        .as_array()?
        .iter()
        .filter_map(Value::as_u64)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_builds_its_model_and_others_are_refused() {
        let files = setup::files(std::path::Path::new("/data"));
        let samples = json!({"rows": [{"features": vec![0.0; 30]}]});
        for key in KEYS {
            let m = model(key, &samples, &files).unwrap();
            assert_eq!(m.key, key);
            assert!(!m.python_files.is_empty() && !m.workloads.is_empty());
        }
        let e = model("resnet", &samples, &files).err().unwrap().to_string();
        assert!(e.contains("expected classifier, minilm or vision"), "{e}");
    }
}
