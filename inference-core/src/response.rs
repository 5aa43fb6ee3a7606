//! The response object.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct InferenceResponse {
    pub model: String,
    /// First 12 hex digits of the packed file's SHA-256.
    pub model_version: String,
    /// Which store served the model bytes.
    pub source: &'static str,
    /// Outputs in model order, after the `return` filter.
    pub outputs: Vec<(String, Value)>,
    /// Predicted class names, when the manifest gives labels for a classifier.
    pub labels: Option<Vec<String>>,
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
        let prediction = self
            .outputs
            .first()
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null);
        let mut body = json!({
            "model": self.model,
            "model_version": self.model_version,
            "source": self.source,
            "outputs": outputs,
            "prediction": prediction,
        });
        if let Some(labels) = &self.labels {
            body["labels"] = json!(labels);
        }
        body
    }
}
