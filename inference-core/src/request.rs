//! The request protocol: `{"model", "inputs" | "features" | "text", "return"}`.

use serde_json::{Map, Value};

use crate::error::{quote, RequestError};
use crate::tensor_json::describe as kind;

/// Lambda's synchronous payload limit; larger bodies get 413 before any parsing.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

const FIELDS: &[&str] = &["model", "inputs", "features", "text", "return"];

#[derive(Debug, Clone, PartialEq)]
pub enum RequestInputs {
    /// `"inputs": {"name": nested array}`: any model.
    Named(Map<String, Value>),
    /// `"features": [..]` (one row) or `[[..], ..]` (a batch): single-input models.
    Features(Value),
    /// `"text": "..."` or `["...", ...]` (a batch): models packed with a tokenizer.
    Text(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct InferenceRequest {
    pub model: Option<String>,
    pub inputs: RequestInputs,
    /// `"return"`: only these outputs in the response.
    pub return_outputs: Option<Vec<String>>,
}

impl InferenceRequest {
    /// A request body as JSON, before its fields are read (by [`InferenceRequest::from_value`]).
    pub fn json(body: &[u8]) -> Result<Value, RequestError> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(RequestError::TooLarge {
                size: body.len(),
                limit: MAX_REQUEST_BYTES,
            });
        }
        if let Err(e) = std::str::from_utf8(body) {
            return Err(RequestError::bad(format!(
                "request body is not valid UTF-8 (invalid bytes at offset {}); JSON text must be UTF-8",
                e.valid_up_to()
            )));
        }
        crate::json::parse_strict(body)
    }

    pub fn from_value(value: Value) -> Result<Self, RequestError> {
        let Value::Object(mut obj) = value else {
            return Err(RequestError::bad(
                "request must be a JSON object like {\"model\": \"name\", \"inputs\": {...}} or {\"features\": [...]}",
            ));
        };
        if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(RequestError::bad(format!(
                "unknown field {}; expected one of {}",
                quote(unknown),
                FIELDS.join(", ")
            )));
        }
        let model = match obj.remove("model") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                model_lock::validate_model_name(&s)
                    .map_err(|e| RequestError::bad(format!("field \"model\": {e}")))?;
                Some(s)
            }
            Some(other) => {
                return Err(RequestError::bad(format!(
                    "field \"model\" must be a string, found {}",
                    kind(&other)
                )))
            }
        };
        let return_outputs = match obj.remove("return") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        other => Err(RequestError::bad(format!(
                            "field \"return\" must be an array of output names, found {} in it",
                            kind(&other)
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => {
                return Err(RequestError::bad(format!(
                    "field \"return\" must be an array of output names, found {}",
                    kind(&other)
                )))
            }
        };
        let text = obj.remove("text");
        let inputs = match (obj.remove("inputs"), obj.remove("features"), text) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(RequestError::bad(
                    "give one of \"inputs\", \"features\" or \"text\", not several",
                ))
            }
            (Some(Value::Object(map)), None, None) => RequestInputs::Named(map),
            (Some(other), None, None) => {
                return Err(RequestError::bad(format!(
                    "field \"inputs\" must be an object mapping input names to nested arrays, found {}",
                    kind(&other)
                )))
            }
            (None, Some(v @ Value::Array(_)), None) => RequestInputs::Features(v),
            (None, Some(other), None) => {
                return Err(RequestError::bad(format!(
                    "field \"features\" must be an array (one row) or an array of rows, found {}",
                    kind(&other)
                )))
            }
            (None, None, Some(text)) => RequestInputs::Text(texts(text)?),
            (None, None, None) => {
                return Err(RequestError::bad(
                    "missing field: give \"inputs\" (an object of named nested arrays), \"features\" (an array) or \"text\" (a string or an array of strings)",
                ))
            }
        };
        if matches!(inputs, RequestInputs::Text(_)) && return_outputs.is_some() {
            return Err(RequestError::bad(
                "field \"return\" selects raw tensor outputs; text requests get the pipeline's answer",
            ));
        }
        Ok(InferenceRequest {
            model,
            inputs,
            return_outputs,
        })
    }
}

fn texts(value: Value) -> Result<Vec<String>, RequestError> {
    match value {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                other => Err(RequestError::bad(format!(
                    "field \"text\": item {i} must be a string, found {}",
                    kind(&other)
                ))),
            })
            .collect(),
        other => Err(RequestError::bad(format!(
            "field \"text\" must be a string or an array of strings, found {}",
            kind(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request body parsed as the registry parses it.
    fn from_slice(body: &[u8]) -> Result<InferenceRequest, RequestError> {
        InferenceRequest::from_value(InferenceRequest::json(body)?)
    }

    fn err(body: &str) -> String {
        from_slice(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn parses_and_rejects() {
        let r = from_slice(br#"{"model":"m","features":[1,2],"return":["a"]}"#).unwrap();
        assert_eq!(r.model.as_deref(), Some("m"));
        assert_eq!(r.return_outputs, Some(vec!["a".to_string()]));
        assert!(err("{").contains("malformed JSON"));
        assert!(err("[]").contains("JSON object"));
        assert!(err(r#"{"model":1,"features":[]}"#).contains("\"model\" must be a string"));
        assert!(err(r#"{"model":"../x","features":[]}"#).contains("does not match"));
        assert!(err(r#"{"features":{}}"#).contains("\"features\" must be an array"));
        assert!(err(r#"{"inputs":[]}"#).contains("\"inputs\" must be an object"));
        assert!(err(r#"{"feature":[]}"#).contains("unknown field"));
        assert!(err(r#"{}"#).contains("missing field"));
        assert!(err(r#"{"text":"a","features":[1]}"#).contains("not several"));
        assert!(err(r#"{"text":["a",1]}"#).contains("item 1 must be a string"));
        assert!(err(r#"{"text":{}}"#).contains("string or an array of strings"));
        assert!(err(r#"{"text":"a","return":["x"]}"#).contains("\"return\""));
        let r = from_slice(r#"{"text":"héllo"}"#.as_bytes()).unwrap();
        assert_eq!(r.inputs, RequestInputs::Text(vec!["héllo".into()]));
        assert!(from_slice(b"{\"text\": \"\xff\xfe\"}")
            .unwrap_err()
            .to_string()
            .contains("not valid UTF-8 (invalid bytes at offset 10)"));
        let big = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(from_slice(&big).unwrap_err().status(), 413);
    }
}
