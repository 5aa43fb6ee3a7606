//! What the benchmarks run: the models, the requests both sides receive (the same bytes),
//! and how to read a comparable vector out of each side's answer.

use serde_json::{json, Value};

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
}

/// The default classifier's held-out rows (models/default/samples.json).
pub fn classifier(samples: &Value) -> anyhow::Result<BenchModel> {
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

pub fn minilm() -> BenchModel {
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
    }
}

/// The vision model's input side (pixels per edge).
pub const IMAGE_EDGE: usize = 128;

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

pub fn vision() -> BenchModel {
    BenchModel {
        key: "vision",
        packed_name: "ocr-det",
        kind: Kind::Image,
        workloads: vec![Workload {
            label: format!("3×{IMAGE_EDGE}×{IMAGE_EDGE}"),
            batch1: request("ocr-det", json!({"inputs": {"x": images(1)}})),
            batch8: request("ocr-det", json!({"inputs": {"x": images(8)}})),
        }],
    }
}

fn request(model: &str, mut body: Value) -> Vec<u8> {
    body["model"] = json!(model);
    serde_json::to_vec(&body).expect("a JSON value serializes")
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
                    .map(|n| {
                        let mut flat = Vec::new();
                        flatten(&outputs[n], &mut flat);
                        flat
                    })
                    .collect(),
            )
        }
    }
}

fn flatten(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        Value::Number(n) => out.extend(n.as_f64()),
        Value::Bool(b) => out.push(*b as u8 as f64),
        _ => {}
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
