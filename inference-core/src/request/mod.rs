//! The request protocol: `{"model", "inputs" | "features" | "text" | "query" + "documents" |
//! "question" + "context", "top_k", "return"}`.

pub(crate) mod strict_json;
pub(crate) mod tensors;

use serde_json::{Map, Value};

use crate::error::{quote, RequestError};
use tensors::describe as kind;

/// Lambda's synchronous payload limit; larger bodies get 413 before any parsing.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

const FIELDS: &[&str] = &[
    "model",
    "inputs",
    "features",
    "text",
    "query",
    "documents",
    "question",
    "context",
    "top_k",
    "return",
];

/// The largest `top_k` a request may ask for (no pipeline has more candidates to rank
/// than `max_batch`, itself at most this).
pub const MAX_TOP_K: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum RequestInputs {
    /// `"inputs": {"name": nested array}`: any model.
    Named(Map<String, Value>),
    /// `"features": [..]` (one row) or `[[..], ..]` (a batch): single-input models.
    Features(Value),
    /// Text for models packed with a tokenizer.
    Text(TextInputs),
}

/// What a text request carries; which ones a model takes depends on its pipeline's task.
#[derive(Debug, Clone, PartialEq)]
pub enum TextInputs {
    /// `"text": "..."` or `["...", ...]` (a batch).
    Texts(Vec<String>),
    /// `"text": [["a", "b"], ...]`: pairs, tokenized together (classification, rerank).
    Pairs(Vec<TextPair>),
    /// `"query": "...", "documents": ["...", ...]`: the query paired with each document.
    QueryDocuments {
        query: String,
        documents: Vec<String>,
    },
    /// `"question"` and `"context"`: two strings, or two lists of the same length (a batch).
    Questions {
        questions: Vec<String>,
        contexts: Vec<String>,
        /// Sent as lists: the answer is a list too.
        batch: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextPair {
    pub first: String,
    pub second: String,
}

impl TextInputs {
    /// Texts, pairs or questions: the rows a request answers.
    pub fn rows(&self) -> usize {
        match self {
            TextInputs::Texts(t) => t.len(),
            TextInputs::Pairs(p) => p.len(),
            TextInputs::QueryDocuments { documents, .. } => documents.len(),
            TextInputs::Questions { questions, .. } => questions.len(),
        }
    }

    /// The request's shape, for errors that say what a model takes instead.
    pub fn describe(&self) -> &'static str {
        match self {
            TextInputs::Texts(_) => "\"text\" as strings",
            TextInputs::Pairs(_) => "\"text\" as pairs",
            TextInputs::QueryDocuments { .. } => "\"query\" and \"documents\"",
            TextInputs::Questions { .. } => "\"question\" and \"context\"",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InferenceRequest {
    pub model: Option<String>,
    pub inputs: RequestInputs,
    /// `"return"`: only these outputs in the response.
    pub return_outputs: Option<Vec<String>>,
    /// `"top_k"`: how many documents (rerank) or answers (question answering) to return.
    pub top_k: Option<usize>,
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
        strict_json::parse_strict(body)
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
        let top_k = match obj.remove("top_k") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(k @ 1..) if k as usize <= MAX_TOP_K => Some(k as usize),
                _ => {
                    return Err(RequestError::bad(format!(
                        "field \"top_k\" must be a whole number from 1 to {MAX_TOP_K}, found {n}"
                    )))
                }
            },
            Some(other) => {
                return Err(RequestError::bad(format!(
                    "field \"top_k\" must be a whole number, found {}",
                    kind(&other)
                )))
            }
        };
        let text = text_inputs(&mut obj)?;
        let inputs = match (obj.remove("inputs"), obj.remove("features"), text) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(RequestError::bad(
                    "give one of \"inputs\", \"features\" or text (\"text\", \"query\" + \"documents\", \"question\" + \"context\"), not several",
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
            (None, None, Some(text)) => RequestInputs::Text(text),
            (None, None, None) => {
                return Err(RequestError::bad(
                    "missing field: give \"inputs\" (an object of named nested arrays), \"features\" (an array), \"text\" (a string, an array of strings or of [text, text] pairs), \"query\" + \"documents\" or \"question\" + \"context\"",
                ))
            }
        };
        if matches!(inputs, RequestInputs::Text(_)) && return_outputs.is_some() {
            return Err(RequestError::bad(
                "field \"return\" selects raw tensor outputs; text requests get the pipeline's answer",
            ));
        }
        if top_k.is_some() && !matches!(inputs, RequestInputs::Text(_)) {
            return Err(RequestError::bad(
                "field \"top_k\" is for rerank and question-answering requests; tensor requests get every output",
            ));
        }
        Ok(InferenceRequest {
            model,
            inputs,
            return_outputs,
            top_k,
        })
    }
}

/// The text fields, taken out of `obj`: at most one of `"text"`, `"query"` + `"documents"`,
/// `"question"` + `"context"`.
fn text_inputs(obj: &mut Map<String, Value>) -> Result<Option<TextInputs>, RequestError> {
    let text = obj.remove("text");
    let rerank = (obj.remove("query"), obj.remove("documents"));
    let qa = (obj.remove("question"), obj.remove("context"));
    let given = [
        text.is_some(),
        rerank.0.is_some() || rerank.1.is_some(),
        qa.0.is_some() || qa.1.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(RequestError::bad(
            "give one of \"text\", \"query\" + \"documents\" or \"question\" + \"context\", not several",
        ));
    }
    if let Some(text) = text {
        return texts(text).map(Some);
    }
    match rerank {
        (None, None) => {}
        (Some(query), Some(documents)) => {
            let query = string("query", query)?;
            let documents = strings("documents", documents)?;
            return Ok(Some(TextInputs::QueryDocuments { query, documents }));
        }
        (Some(_), None) => {
            return Err(RequestError::bad(
                "field \"query\" needs \"documents\": the texts to score against it",
            ))
        }
        (None, Some(_)) => {
            return Err(RequestError::bad(
                "field \"documents\" needs \"query\": the text to score them against",
            ))
        }
    }
    match qa {
        (None, None) => Ok(None),
        (Some(question), Some(context)) => {
            let (questions, contexts, batch) = match (question, context) {
                (Value::String(q), Value::String(c)) => (vec![q], vec![c], false),
                (q @ Value::Array(_), c @ Value::Array(_)) => {
                    let (q, c) = (strings("question", q)?, strings("context", c)?);
                    if q.len() != c.len() {
                        return Err(RequestError::bad(format!(
                            "fields \"question\" and \"context\": {} questions and {} contexts; a batch pairs them one to one",
                            q.len(),
                            c.len()
                        )));
                    }
                    (q, c, true)
                }
                (q, c) => {
                    return Err(RequestError::bad(format!(
                        "fields \"question\" and \"context\" must both be strings, or both arrays of strings (a batch); found {} and {}",
                        kind(&q),
                        kind(&c)
                    )))
                }
            };
            Ok(Some(TextInputs::Questions {
                questions,
                contexts,
                batch,
            }))
        }
        (Some(_), None) => Err(RequestError::bad(
            "field \"question\" needs \"context\": the text the answer is taken from",
        )),
        (None, Some(_)) => Err(RequestError::bad(
            "field \"context\" needs \"question\": what to look for in it",
        )),
    }
}

fn string(field: &str, value: Value) -> Result<String, RequestError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(RequestError::bad(format!(
            "field \"{field}\" must be a string, found {}",
            kind(&other)
        ))),
    }
}

fn strings(field: &str, value: Value) -> Result<Vec<String>, RequestError> {
    let Value::Array(items) = value else {
        return Err(RequestError::bad(format!(
            "field \"{field}\" must be an array of strings, found {}",
            kind(&value)
        )));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s),
            other => Err(RequestError::bad(format!(
                "field \"{field}\": item {i} must be a string, found {}",
                kind(&other)
            ))),
        })
        .collect()
}

/// `"text"`: a string, strings, or `[a, b]` pairs — the first item decides which.
fn texts(value: Value) -> Result<TextInputs, RequestError> {
    let items = match value {
        Value::String(s) => return Ok(TextInputs::Texts(vec![s])),
        Value::Array(items) => items,
        other => {
            return Err(RequestError::bad(format!(
                "field \"text\" must be a string or an array of strings (or of [text, text] pairs), found {}",
                kind(&other)
            )))
        }
    };
    if !matches!(items.first(), Some(Value::Array(_))) {
        return strings("text", Value::Array(items)).map(TextInputs::Texts);
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let found = match &item {
                Value::Array(a) if a.len() != 2 => format!("an array of {} items", a.len()),
                Value::Array(_) => "a pair that is not two strings".to_string(),
                v => kind(v).to_string(),
            };
            if let Value::Array(pair) = item {
                if let Ok([Value::String(first), Value::String(second)]) =
                    <[Value; 2]>::try_from(pair)
                {
                    return Ok(TextPair { first, second });
                }
            }
            Err(RequestError::bad(format!(
                "field \"text\": item {i} must be a pair of strings, [\"a\", \"b\"], as item 0 is; found {found}"
            )))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(TextInputs::Pairs)
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
        assert_eq!(
            r.inputs,
            RequestInputs::Text(TextInputs::Texts(vec!["héllo".into()]))
        );
        assert_eq!(r.top_k, None);
        assert!(from_slice(b"{\"text\": \"\xff\xfe\"}")
            .unwrap_err()
            .to_string()
            .contains("not valid UTF-8 (invalid bytes at offset 10)"));
        let big = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert_eq!(from_slice(&big).unwrap_err().status(), 413);
    }

    #[test]
    fn text_pairs_rerank_and_questions() {
        let text = |body: &str| match from_slice(body.as_bytes()).unwrap().inputs {
            RequestInputs::Text(t) => t,
            other => panic!("not text: {other:?}"),
        };
        let pair = |a: &str, b: &str| TextPair {
            first: a.into(),
            second: b.into(),
        };
        assert_eq!(
            text(r#"{"text":[["q","p"],["q2","p2"]]}"#),
            TextInputs::Pairs(vec![pair("q", "p"), pair("q2", "p2")])
        );
        assert!(err(r#"{"text":[["q","p"],"x"]}"#).contains("item 1 must be a pair"));
        assert!(err(r#"{"text":[["q","p","r"]]}"#).contains("an array of 3 items"));
        assert!(err(r#"{"text":[["q",1]]}"#).contains("item 0 must be a pair"));
        assert!(err(r#"{"text":["q",["a","b"]]}"#).contains("item 1 must be a string"));
        assert_eq!(
            text(r#"{"query":"q","documents":["a","b"]}"#),
            TextInputs::QueryDocuments {
                query: "q".into(),
                documents: vec!["a".into(), "b".into()]
            }
        );
        assert!(err(r#"{"query":"q"}"#).contains("needs \"documents\""));
        assert!(err(r#"{"documents":["a"]}"#).contains("needs \"query\""));
        assert!(err(r#"{"query":["q"],"documents":["a"]}"#).contains("\"query\" must be a string"));
        assert!(err(r#"{"query":"q","documents":"a"}"#).contains("array of strings"));
        assert_eq!(
            text(r#"{"question":"q","context":"c"}"#),
            TextInputs::Questions {
                questions: vec!["q".into()],
                contexts: vec!["c".into()],
                batch: false
            }
        );
        assert_eq!(text(r#"{"question":["q"],"context":["c"]}"#).rows(), 1);
        assert!(err(r#"{"question":["q"],"context":"c"}"#).contains("both be strings"));
        assert!(
            err(r#"{"question":["q","r"],"context":["c"]}"#).contains("2 questions and 1 contexts")
        );
        assert!(err(r#"{"question":"q"}"#).contains("needs \"context\""));
        assert!(err(r#"{"question":"q","context":"c","text":"t"}"#).contains("not several"));
        assert!(err(r#"{"query":"q","documents":[],"context":"c"}"#).contains("not several"));
        let r = from_slice(br#"{"query":"q","documents":["a"],"top_k":3}"#).unwrap();
        assert_eq!(r.top_k, Some(3));
        for bad in ["0", "-1", "1.5", "\"3\"", "1025"] {
            assert!(
                err(&format!(
                    r#"{{"query":"q","documents":["a"],"top_k":{bad}}}"#
                ))
                .contains("\"top_k\""),
                "{bad}"
            );
        }
        assert!(err(r#"{"features":[1],"top_k":1}"#).contains("top_k"));
    }
}
