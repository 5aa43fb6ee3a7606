//! The response object.

pub(crate) mod tensors;

use serde_json::{json, Map, Value};

/// `prediction` repeats the first output only up to this many values.
pub const MAX_PREDICTION_VALUES: usize = 4096;

fn leaf_count(v: &Value) -> usize {
    match v {
        Value::Array(items) => items.iter().map(leaf_count).sum(),
        _ => 1,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InferenceResponse {
    pub model: String,
    /// First 12 hex digits of the packed file's SHA-256.
    pub model_version: String,
    /// Which store served the model bytes.
    pub source: &'static str,
    /// Rows answered: texts, or the batch axis of the inputs.
    pub rows: usize,
    /// Outputs in model order, after the `return` filter.
    pub outputs: Vec<(String, Value)>,
    /// Predicted class names, when the manifest gives labels for a classifier; `None` for a
    /// row whose scores are not finite.
    pub labels: Option<Vec<Option<String>>>,
    /// A text pipeline's answer (`embeddings`, or `labels`/`scores`, with `tokens` and
    /// `truncated`), which takes the place of the raw outputs.
    pub text: Option<Map<String, Value>>,
}

impl InferenceResponse {
    pub fn to_json(&self) -> Value {
        if let Some(text) = &self.text {
            let mut body = json!({
                "model": self.model,
                "model_version": self.model_version,
                "source": self.source,
            });
            if let Value::Object(obj) = &mut body {
                obj.extend(text.clone());
            }
            return body;
        }
        let outputs: Map<String, Value> = self.outputs.iter().cloned().collect();
        // The first output again, for clients that want one thing; only when it is small,
        // so a large output (an embedding, a feature map) does not double the answer.
        let mut body = json!({
            "model": self.model,
            "model_version": self.model_version,
            "source": self.source,
            "outputs": outputs,
        });
        if let Some((_, first)) = self
            .outputs
            .first()
            .filter(|(_, v)| leaf_count(v) <= MAX_PREDICTION_VALUES)
        {
            body["prediction"] = first.clone();
        }
        if let Some(labels) = &self.labels {
            body["labels"] = json!(labels);
            let unlabeled: Vec<usize> = labels
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_none())
                .map(|(i, _)| i)
                .collect();
            if !unlabeled.is_empty() {
                let shown: Vec<String> = unlabeled.iter().take(10).map(|i| i.to_string()).collect();
                let more = match unlabeled.len() - shown.len() {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                body["warnings"] = json!([format!(
                    "rows {}{more} have no label: their scores are not finite (NaN or infinite inputs?)",
                    shown.join(", ")
                )]);
            }
        }
        body
    }
}
