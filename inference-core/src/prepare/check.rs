//! The pack-time proof that a packed model serves: loaded once, exactly as the function loads
//! it (checksum, decode, optimize, tokenizer), then every sample request answered.

use std::time::Instant;

use std::collections::BTreeMap;

use model_lock::{DType, Dim, ModelEntry, TensorSpec, TextPipeline, TextTask};
use serde_json::{json, Value};

use crate::registry::{PackedModel, Registry};
use crate::settings::{LoadMode, Settings};

use super::PrepareError;

/// A successful check.
#[derive(Debug, Clone)]
pub struct Checked {
    /// How long loading took, in milliseconds.
    pub load_ms: f64,
    /// The answer to each sample request, in order.
    pub answers: Vec<Value>,
}

/// Loads `bytes` (and the tokenizer) as the function would, with `entry` as its lock entry,
/// and answers each of `samples`.
pub fn check(
    entry: &ModelEntry,
    bytes: &[u8],
    tokenizer: Option<&[u8]>,
    samples: &[Value],
) -> Result<Checked, PrepareError> {
    let started = Instant::now();
    let model = PackedModel {
        entry: entry.clone(),
        bytes: Some(bytes.to_vec().into()),
        tokenizer: tokenizer.map(|t| t.to_vec().into()),
    };
    let registry = Registry::new(vec![model], None, &Settings::embedded_only(LoadMode::Eager))
        .map_err(PrepareError::Load)?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let answers = samples
        .iter()
        .map(|sample| {
            let mut sample = sample.clone();
            if let Value::Object(obj) = &mut sample {
                obj.insert("model".into(), json!(entry.name));
            }
            registry.handle_value(sample).map_err(PrepareError::Sample)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Checked { load_ms, answers })
}

/// The requests a packed model must answer: the manifest's sample request (or one built
/// from the signature), and for a text model a text request of its task too, since a tensor
/// sample does not exercise the tokenizer and pipeline.
pub fn sample_requests(entry: &ModelEntry, sample: Option<Value>) -> Vec<Value> {
    sample_requests_with(entry, sample, &BTreeMap::new(), &[])
}

/// [`sample_requests`], a generated request giving each string input the value in
/// `strings` (a category the model knows, from [`super::Prepared::string_examples`]) and
/// each input the first of `probes`' shapes (where the graph was typed), and one more
/// request at each further probe shape: a per-shape model is proved on two shapes.
pub fn sample_requests_with(
    entry: &ModelEntry,
    sample: Option<Value>,
    strings: &BTreeMap<String, String>,
    probes: &[BTreeMap<String, Vec<u64>>],
) -> Vec<Value> {
    let mut requests = match (sample, &entry.pipeline) {
        (Some(sample), Some(pipeline)) if !is_text_request(&sample) => {
            vec![sample, text_check_request(pipeline)]
        }
        (Some(sample), _) => vec![sample],
        (None, Some(pipeline)) => vec![text_check_request(pipeline)],
        (None, None) => vec![generated_request(
            &entry.inputs,
            strings,
            probes.first(),
            None,
        )],
    };
    if entry.pipeline.is_none() {
        requests.extend(
            probes
                .iter()
                .skip(1)
                .map(|p| generated_request(&entry.inputs, strings, Some(p), None)),
        );
    }
    requests
}

/// Whether a request carries text (any of the text protocol's fields).
pub(crate) fn is_text_request(request: &Value) -> bool {
    ["text", "query", "question"]
        .iter()
        .any(|k| request.get(k).is_some())
}

/// A small request in the shape the pipeline's task takes.
fn text_check_request(pipeline: &TextPipeline) -> Value {
    match pipeline.task {
        TextTask::Embedding | TextTask::Classification => {
            json!({"text": ["A short sentence to check the pipeline.", "And a second one."]})
        }
        TextTask::Rerank => json!({
            "query": "checking the pipeline",
            "documents": ["A short sentence to check the pipeline.", "And a second one."]
        }),
        TextTask::QuestionAnswering => json!({
            "question": "What does this sentence check?",
            "context": "This short sentence checks the question-answering pipeline."
        }),
    }
}

/// A request of zeros (strings: the example given, else ""), one per input: each input's
/// dims as `probe` gives them, else its symbolic dims at 1; a symbolic first dim `rows`
/// times when given.
pub(crate) fn generated_request(
    inputs: &[TensorSpec],
    strings: &BTreeMap<String, String>,
    probe: Option<&BTreeMap<String, Vec<u64>>>,
    rows: Option<usize>,
) -> Value {
    fn fill(shape: &[usize], leaf: &Value) -> Value {
        match shape.split_first() {
            None => leaf.clone(),
            Some((n, rest)) => Value::Array((0..*n).map(|_| fill(rest, leaf)).collect()),
        }
    }
    let inputs: serde_json::Map<String, Value> = inputs
        .iter()
        .map(|s| {
            let leaf = match s.dtype {
                DType::String => json!(strings.get(&s.name).cloned().unwrap_or_default()),
                _ => json!(0),
            };
            let mut dims: Vec<usize> = match probe.and_then(|p| p.get(&s.name)) {
                Some(dims) => dims.iter().map(|d| *d as usize).collect(),
                None => s
                    .shape
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => *n as usize,
                        Dim::Symbol(_) => 1,
                    })
                    .collect(),
            };
            if let (Some(rows), Some(Dim::Symbol(_))) = (rows, s.shape.first()) {
                dims[0] = rows;
            }
            (s.name.clone(), fill(&dims, &leaf))
        })
        .collect();
    json!({ "inputs": inputs })
}
