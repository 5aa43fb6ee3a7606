//! Extractive question answering as the Hugging Face question-answering pipeline does it:
//! each (question, context) pair tokenized together, a context longer than one window split
//! into overlapping windows (`max_length`, `stride`, only the context cut); per window the
//! start and end logits outside the context masked and softmaxed, every span inside the
//! context of at most `max_answer_length` tokens scored `p(start) × p(end)`; the best spans
//! over all windows, widened to whole words and cut from the original context by character
//! offsets. With `handle_impossible_answer`, "no answer" (the `[CLS]` span) competes with
//! the lowest score it gets in any window.

use model_lock::{DType, ModelEntry, TextTask};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokenizers::{EncodeInput, Encoding};

use super::{Encoded, PipelineOutput, TextField, TextModel, MAX_CHARS_PER_TOKEN};
use crate::error::RequestError;

/// The start and end logits of every window, `[windows, sequence]` row-major.
pub(super) struct Logits<'a> {
    pub shape: &'a [usize],
    pub start: &'a [f32],
    pub end: &'a [f32],
}

/// Rows of a question-answering batch: every window of every context, in order.
pub(super) struct Windows {
    pub encodings: Vec<Encoding>,
    /// The question each window belongs to.
    pub window_of: Vec<usize>,
}

/// One answer as the response carries it: `start` and `end` count characters (Unicode code
/// points, as Python indexes strings) of the context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Answer {
    pub answer: String,
    pub score: f64,
    pub start: usize,
    pub end: usize,
}

/// A span of one window, in tokens (inclusive), with its score.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    start: usize,
    end: usize,
    score: f64,
}

/// What one window offers: its best spans, and the "no answer" score.
#[derive(Debug)]
struct WindowSpans {
    spans: Vec<Span>,
    null_score: Option<f64>,
}

/// The start and end logits: outputs named for them (`start_logits`, `end_logits` in every
/// Hugging Face export), else the first two float outputs of rank 2.
pub(super) fn outputs(entry: &ModelEntry) -> Result<PipelineOutput, String> {
    let usable = |ix: &usize| {
        let o = &entry.outputs[*ix];
        matches!(o.dtype, DType::F32 | DType::F64 | DType::F16)
            && (o.shape.len() == 2
                || (o.shape.len() == 3 && o.shape[2] == model_lock::Dim::Fixed(1)))
    };
    let named = |word: &str| {
        (0..entry.outputs.len())
            .filter(usable)
            .find(|ix| entry.outputs[*ix].name.to_lowercase().contains(word))
    };
    let (start, end) = match (named("start"), named("end")) {
        (Some(start), Some(end)) if start != end => (start, end),
        _ => {
            let float: Vec<usize> = (0..entry.outputs.len()).filter(usable).collect();
            match float.as_slice() {
                [start, end, ..] => (*start, *end),
                _ => {
                    return Err(format!(
                        "question-answering pipeline: the model needs start and end logits, two float outputs of shape [batch, sequence]; its outputs are {}",
                        entry
                            .outputs
                            .iter()
                            .map(|o| o.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
    };
    Ok(PipelineOutput::Span { start, end })
}

impl TextModel {
    /// Every (question, context) pair tokenized into its windows, after the limits: a
    /// question must leave more than `stride` tokens of each window to the context, and the
    /// contexts together must fit in `max_batch` windows.
    pub(super) fn encode_questions(
        &self,
        questions: &[String],
        contexts: &[String],
        batch: bool,
    ) -> Result<Windows, RequestError> {
        debug_assert_eq!(self.pipeline.task, TextTask::QuestionAnswering);
        let p = &self.pipeline;
        let stride = p.stride();
        let question = TextField {
            indexed: batch,
            ..TextField::list("question", "question", "questions")
        };
        let context = TextField {
            indexed: batch,
            ..TextField::list("context", "context", "contexts")
        };
        self.check_batch(questions.len(), question)?;
        self.check_texts(
            questions.iter().map(String::as_str),
            question,
            self.max_chars(),
        )?;
        // What max_batch windows can hold, whatever the questions' lengths.
        let max_context_chars =
            (p.max_batch * (p.max_length - stride) + stride).saturating_mul(MAX_CHARS_PER_TOKEN);
        self.check_texts(
            contexts.iter().map(String::as_str),
            context,
            max_context_chars,
        )?;
        let total: usize = contexts.iter().map(String::len).sum();
        if total > max_context_chars {
            let chars: usize = contexts.iter().map(|c| c.chars().count()).sum();
            if chars > max_context_chars {
                return Err(RequestError::OverLimit(format!(
                    "field \"context\": {chars} characters in all; this model reads at most {} windows of {} tokens per request (pipeline.max_batch, max_length), so at most {max_context_chars} characters: send fewer or shorter contexts",
                    p.max_batch, p.max_length
                )));
            }
        }
        // tokenizers asserts (panics) when a window has no more room than the stride.
        let most = p
            .max_length
            .saturating_sub(self.pair_special_tokens)
            .saturating_sub(stride + 1);
        for (i, q) in questions.iter().enumerate() {
            let tokens = match self.tokenizer.encode(q.as_str(), false) {
                Ok(e) if e.len() <= most => continue,
                Ok(e) => e.len().to_string(),
                // Over max_length: the pair truncation refuses a lone text that long.
                Err(_) => format!("more than {}", p.max_length),
            };
            return Err(RequestError::bad(format!(
                "{} is {tokens} tokens; with max_length {} and stride {stride}, a question may have at most {most} tokens so that every window keeps room for the context: send a shorter question",
                question.at(i),
                p.max_length
            )));
        }
        let inputs: Vec<EncodeInput> = questions
            .iter()
            .zip(contexts)
            .map(|(q, c)| (q.as_str(), c.as_str()).into())
            .collect();
        let encoded = self.tokenize(inputs, context)?;
        let mut windows = Windows {
            encodings: Vec::new(),
            window_of: Vec::new(),
        };
        for (i, mut enc) in encoded.into_iter().enumerate() {
            for (seq, field) in [question, context].into_iter().enumerate() {
                if super::content_tokens(&enc, seq) == 0 {
                    return Err(RequestError::bad(format!(
                        "{} has no tokens once normalized (only control or zero-width characters?); there is nothing to read",
                        field.at(i)
                    )));
                }
            }
            // The first window, then the rest in order (as the Python pipeline flattens them).
            let mut rest = enc.take_overflowing();
            windows.encodings.push(enc);
            windows.window_of.push(i);
            while !rest.is_empty() {
                let mut next = rest.remove(0);
                let nested = next.take_overflowing();
                windows.encodings.push(next);
                windows.window_of.push(i);
                rest.splice(0..0, nested);
            }
            if windows.encodings.len() > p.max_batch {
                return Err(RequestError::OverLimit(format!(
                    "field \"context\": the contexts need more than {} windows of {} tokens (stride {stride}), more than this model runs in one request (pipeline.max_batch): send fewer or shorter contexts",
                    p.max_batch, p.max_length
                )));
            }
        }
        Ok(windows)
    }

    /// The best answers to each question over all its windows.
    pub(super) fn answer_questions(
        &self,
        encoded: &Encoded,
        logits: &Logits,
    ) -> Result<Map<String, Value>, RequestError> {
        let (rows, seq) = match logits.shape {
            [rows, seq] | [rows, seq, 1] => (*rows, *seq),
            other => {
                return Err(RequestError::Internal(format!(
                    "start and end logits have shape {other:?}, expected [windows, sequence]"
                )))
            }
        };
        if rows != encoded.encodings.len() || logits.start.len() != rows * seq {
            return Err(RequestError::Internal(format!(
                "{rows} rows of logits for {} windows",
                encoded.encodings.len()
            )));
        }
        let request = &encoded.request;
        let top_k = request.top_k.unwrap_or(1);
        let mut per_question = Vec::with_capacity(request.rows);
        for (question, context) in request.contexts.iter().enumerate() {
            let mut candidates: Vec<(usize, Span)> = Vec::new();
            let mut null_score: Option<f64> = None;
            for row in (0..rows).filter(|r| encoded.window_of[*r] == question) {
                let enc = &encoded.encodings[row];
                let ids = enc.get_ids();
                let allowed: Vec<bool> = enc
                    .get_sequence_ids()
                    .iter()
                    .zip(enc.get_attention_mask())
                    .zip(ids)
                    .map(|((s, mask), id)| {
                        *mask == 1 && (*s == Some(1) || Some(*id) == self.cls_id)
                    })
                    .collect();
                let null_at = self
                    .cls_id
                    .and_then(|cls| ids.iter().position(|id| *id == cls));
                let window = best_spans(
                    &logits.start[row * seq..(row + 1) * seq],
                    &logits.end[row * seq..(row + 1) * seq],
                    &allowed,
                    null_at,
                    self.pipeline.max_answer_length,
                    top_k,
                );
                if let Some(null) = window.null_score {
                    null_score = Some(null_score.map_or(null, |n: f64| n.min(null)));
                }
                candidates.extend(window.spans.into_iter().map(|s| (row, s)));
            }
            let mut answers: Vec<Answer> = candidates
                .into_iter()
                .map(|(row, span)| {
                    let (start, end) = char_span(&encoded.encodings[row], span);
                    Answer {
                        answer: char_slice(context, start, end),
                        score: span.score,
                        start,
                        end,
                    }
                })
                .collect();
            if self.pipeline.handle_impossible_answer {
                answers.push(Answer {
                    answer: String::new(),
                    score: null_score.unwrap_or(0.0),
                    start: 0,
                    end: 0,
                });
            }
            // Stable: equal scores keep window and token order.
            answers.sort_by(|a, b| b.score.total_cmp(&a.score));
            answers.truncate(top_k);
            per_question.push(answers);
        }
        let shaped = |answers: Vec<Answer>| -> Value {
            match request.top_k {
                Some(_) => json!(answers),
                // One answer, as an object; a question with no span at all answers "".
                None => json!(answers.into_iter().next().unwrap_or(Answer {
                    answer: String::new(),
                    score: 0.0,
                    start: 0,
                    end: 0,
                })),
            }
        };
        let mut body = Map::new();
        if request.batch {
            body.insert(
                "answers".into(),
                Value::Array(per_question.into_iter().map(shaped).collect()),
            );
        } else {
            let answers = per_question.into_iter().next().unwrap_or_default();
            match (shaped(answers), request.top_k) {
                (Value::Object(one), None) => body.extend(one),
                (list, _) => {
                    body.insert("answers".into(), list);
                }
            }
        }
        Ok(body)
    }
}

/// The best `top_k` spans of one window. Tokens not `allowed` (the question, special
/// tokens, padding) are masked before each softmax; `null_at` (the `[CLS]` position) gives
/// the "no answer" score and is then excluded; a span is at most `max_answer_length` tokens.
fn best_spans(
    start: &[f32],
    end: &[f32],
    allowed: &[bool],
    null_at: Option<usize>,
    max_answer_length: usize,
    top_k: usize,
) -> WindowSpans {
    let mut p_start = masked_softmax(start, allowed);
    let mut p_end = masked_softmax(end, allowed);
    let null_score = null_at.map(|i| p_start[i] * p_end[i]);
    if let Some(i) = null_at {
        p_start[i] = 0.0;
        p_end[i] = 0.0;
    }
    let n = allowed.len();
    let mut spans = Vec::new();
    for s in (0..n).filter(|s| allowed[*s] && Some(*s) != null_at) {
        for e in (s..n.min(s + max_answer_length)).filter(|e| allowed[*e]) {
            spans.push(Span {
                start: s,
                end: e,
                score: p_start[s] * p_end[e],
            });
        }
    }
    // Highest first; equal scores keep token order (the sort is stable).
    spans.sort_by(|a, b| b.score.total_cmp(&a.score));
    spans.truncate(top_k);
    WindowSpans { spans, null_score }
}

/// Softmax over the allowed positions; the others get 0 (the pipeline sets them to -10000
/// first, which underflows to 0 the same way).
fn masked_softmax(logits: &[f32], allowed: &[bool]) -> Vec<f64> {
    let max = logits
        .iter()
        .zip(allowed)
        .filter(|(_, a)| **a)
        .map(|(x, _)| *x as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits
        .iter()
        .zip(allowed)
        .map(|(x, a)| if *a { (*x as f64 - max).exp() } else { 0.0 })
        .collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter()
        .map(|v| if sum > 0.0 { v / sum } else { 0.0 })
        .collect()
}

/// A span's characters in the context: widened to the words its first and last tokens
/// belong to (a sub-word start or end would cut a word), else the tokens' own offsets.
fn char_span(enc: &Encoding, span: Span) -> (usize, usize) {
    let word = |token: usize| enc.token_to_word(token).map(|(_, w)| w);
    if let (Some(first), Some(last)) = (word(span.start), word(span.end)) {
        if let (Some(a), Some(b)) = (enc.word_to_chars(first, 1), enc.word_to_chars(last, 1)) {
            return (a.0, b.1);
        }
    }
    let offsets = enc.get_offsets();
    (offsets[span.start].0, offsets[span.end].1)
}

/// Characters `start..end` of `text`, by code point (never inside a UTF-8 sequence).
fn char_slice(text: &str, start: usize, end: usize) -> String {
    text.chars()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_stay_in_the_context_and_within_the_answer_length() {
        // Positions: 0 [CLS], 1-2 question, 3 [SEP], 4-7 context, 8 [SEP], 9 padding.
        let allowed = [
            true, false, false, false, true, true, true, true, false, false,
        ];
        // The question and padding have the highest logits: masked, they never win.
        let start = [0.0, 9.0, 9.0, 0.0, 1.0, 4.0, 0.0, 0.0, 9.0, 9.0];
        let end = [0.0, 9.0, 9.0, 0.0, 0.0, 0.0, 2.0, 5.0, 9.0, 9.0];
        let w = best_spans(&start, &end, &allowed, Some(0), 2, 3);
        // Best unconstrained would be 5..7 (3 tokens); at most 2 tokens allowed.
        assert_eq!((w.spans[0].start, w.spans[0].end), (5, 6));
        assert!(w
            .spans
            .iter()
            .all(|s| s.end >= s.start && s.end - s.start < 2));
        assert!(w
            .spans
            .iter()
            .all(|s| allowed[s.start] && allowed[s.end] && s.start != 0));
        assert!(w.spans.windows(2).all(|p| p[0].score >= p[1].score));
        let p_start = masked_softmax(&start, &allowed);
        let p_end = masked_softmax(&end, &allowed);
        assert!((w.spans[0].score - p_start[5] * p_end[6]).abs() < 1e-12);
        assert!((w.null_score.unwrap() - p_start[0] * p_end[0]).abs() < 1e-12);
        assert!((p_start.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(p_start[1], 0.0);
    }

    #[test]
    fn a_window_with_no_context_has_no_spans() {
        let allowed = [true, false, false];
        let w = best_spans(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], &allowed, Some(0), 5, 1);
        assert!(w.spans.is_empty());
        assert_eq!(w.null_score, Some(1.0));
    }

    #[test]
    fn char_slices_count_code_points() {
        let text = "née 東京 🚗 car";
        assert_eq!(char_slice(text, 0, 3), "née");
        assert_eq!(char_slice(text, 4, 6), "東京");
        assert_eq!(char_slice(text, 7, 8), "🚗");
        assert_eq!(char_slice(text, 9, 12), "car");
        assert_eq!(char_slice(text, 9, 99), "car");
    }
}
