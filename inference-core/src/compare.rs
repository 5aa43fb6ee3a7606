//! Comparing two answers: the one rule for pack-time int8 drift, the benchmark's agreement
//! with onnxruntime and the tests' checks against reference outputs.
//!
//! Zero vectors: two zero vectors are identical (cosine 1); a zero vector against a non-zero
//! one shares no direction (cosine 0). A NaN anywhere makes the cosine NaN, which every
//! `>=` bound rejects.

use serde_json::{Map, Value};

/// Cosine similarity of two equally long vectors.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if dot.is_nan() || na.is_nan() || nb.is_nan() {
        return f64::NAN;
    }
    match (na == 0.0, nb == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        (false, false) => dot / (na * nb),
    }
}

/// The largest absolute difference between two equally long vectors; NaN anywhere makes it
/// infinite.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |worst: f64, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            worst.max(d)
        }
    })
}

/// Every number in a nested JSON array, in order; `null` (a non-finite float in our answers)
/// is NaN, booleans are 0 and 1, strings are skipped.
pub fn numbers(value: &Value) -> Vec<f64> {
    fn walk(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Number(n) => out.push(n.as_f64().unwrap_or(f64::NAN)),
            Value::Bool(b) => out.push(f64::from(u8::from(*b))),
            Value::Null => out.push(f64::NAN),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out
}

/// The numbers of an answer worth comparing, by name: a raw answer's `outputs`, or a text
/// pipeline's `embeddings` / `probabilities` / rerank `scores`, or question answering's
/// answer scores. Rankings and spans are left out: they follow from the scores, and where
/// two candidates tie (a repetitive text) rounding may pick either.
pub fn comparable(answer: &Value) -> Map<String, Value> {
    if let Some(Value::Object(outputs)) = answer.get("outputs") {
        return outputs.clone();
    }
    let mut found: Map<String, Value> = ["embeddings", "probabilities", "scores"]
        .iter()
        .filter_map(|k| answer.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let mut scores = Vec::new();
    answer_scores(answer, &mut scores);
    if !scores.is_empty() {
        found.insert("answer scores".into(), Value::from(scores));
    }
    found
}

/// The score of every question-answering answer (`{"answer", "score", "start", "end"}`) in
/// a response, at the top level or in `answers` lists, in order.
fn answer_scores(value: &Value, scores: &mut Vec<Value>) {
    match value {
        Value::Object(o) if o.contains_key("answer") => {
            scores.push(o.get("score").cloned().unwrap_or(Value::Null));
        }
        Value::Object(o) => {
            if let Some(answers) = o.get("answers") {
                answer_scores(answers, scores);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| answer_scores(i, scores)),
        _ => {}
    }
}

/// How far one answer is from another, over every float in every compared output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drift {
    pub cosine: f64,
    pub max_abs: f64,
}

impl Drift {
    /// The worst output of `got` against `want` (both whole answers): the lowest cosine and the
    /// largest absolute error, each output compared on its own (an integer passthrough output
    /// must not dilute a drifting float one). Missing outputs or different lengths are the
    /// worst possible drift.
    pub fn between(want: &Value, got: &Value) -> Drift {
        let worst_possible = Drift {
            cosine: f64::NAN,
            max_abs: f64::INFINITY,
        };
        let (want, got) = (comparable(want), comparable(got));
        if want.is_empty() {
            return worst_possible;
        }
        let mut worst = Drift {
            cosine: 1.0,
            max_abs: 0.0,
        };
        for (name, w) in &want {
            let a = numbers(w);
            let b = numbers(got.get(name).unwrap_or(&Value::Null));
            if a.len() != b.len() {
                return worst_possible;
            }
            let cosine = cosine(&a, &b);
            // NaN compares false: keep it as the worst.
            worst.cosine = if cosine.is_nan() || worst.cosine.is_nan() {
                f64::NAN
            } else {
                worst.cosine.min(cosine)
            };
            worst.max_abs = worst.max_abs.max(max_abs_diff(&a, &b));
        }
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zero_vectors_and_nan_follow_one_rule() {
        assert_eq!(cosine(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 0.0]), 0.0);
        assert!(cosine(&[f64::NAN, 1.0], &[1.0, 1.0]).is_nan());
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
        assert_eq!(max_abs_diff(&[f64::NAN], &[1.0]), f64::INFINITY);
    }

    #[test]
    fn rerank_and_question_answers_are_compared_by_their_scores() {
        let qa = json!({"answer": "1886", "score": 0.6, "start": 100, "end": 104});
        assert_eq!(Drift::between(&qa, &qa).max_abs, 0.0);
        let lower = json!({"answer": "1886 is", "score": 0.5, "start": 100, "end": 107});
        assert!((Drift::between(&qa, &lower).max_abs - 0.1).abs() < 1e-12);
        let listed = json!({"answers": [[qa.clone(), lower.clone()], [qa.clone()]]});
        assert_eq!(comparable(&listed)["answer scores"], json!([0.6, 0.5, 0.6]));
        let ranked = json!({"scores": [0.2, 0.9], "ranking": [1, 0]});
        let other = json!({"scores": [0.3, 0.9], "ranking": [1, 0]});
        assert!((Drift::between(&ranked, &other).max_abs - 0.1).abs() < 1e-12);
    }

    #[test]
    fn drift_is_the_worst_output_of_the_answer() {
        let want = json!({"outputs": {"label": [1, 0], "p": [[0.9, 0.1], [0.2, 0.8]]}});
        let same = Drift::between(&want, &want);
        assert_eq!((same.cosine, same.max_abs), (1.0, 0.0));
        let got = json!({"outputs": {"label": [1, 0], "p": [[0.8, 0.2], [0.2, 0.8]]}});
        let d = Drift::between(&want, &got);
        assert!(d.cosine < 1.0 && (d.max_abs - 0.1).abs() < 1e-9, "{d:?}");
        // A missing output, a shorter one or a null value is the worst drift.
        for got in [
            json!({"outputs": {"label": [1, 0]}}),
            json!({"outputs": {"label": [1, 0], "p": [[0.9, 0.1]]}}),
        ] {
            let d = Drift::between(&want, &got);
            assert!(d.cosine.is_nan() && d.max_abs.is_infinite(), "{got}: {d:?}");
        }
        let d = Drift::between(
            &json!({"embeddings": [[1.0, 0.0]]}),
            &json!({"embeddings": [[null, 0.0]]}),
        );
        assert!(d.cosine.is_nan() && d.max_abs.is_infinite(), "{d:?}");
    }
}
