//! Text models: the packed `tokenizer.json` turns request text — single texts, pairs, or a
//! question and its context — into the model's `input_ids` / `attention_mask` /
//! `token_type_ids`, and the pipeline turns its output into embeddings (mean pooling),
//! classes (softmax), relevance scores (`rerank.rs`) or answer spans
//! (`question_answering.rs`).

mod pooling;
mod question_answering;
mod rerank;

use std::borrow::Cow;

use model_lock::{DType, ModelEntry, Padding, TextPipeline, TextTask, Truncation};
use serde_json::{json, Map, Value};
use tokenizers::utils::padding::pad_encodings;
use tokenizers::{
    EncodeInput, Encoding, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams,
    TruncationStrategy,
};
use tract_onnx::prelude::*;

use crate::error::RequestError;
use crate::request::{TextInputs, TextPair};
use crate::tensor_data::slice_of;

/// Text longer than `max_length × this` characters is refused before tokenizing.
pub const MAX_CHARS_PER_TOKEN: usize = 32;

/// Which tokenizer field feeds a model input.
#[derive(Debug, Clone, Copy)]
enum FeedSource {
    Ids,
    Mask,
    TypeIds,
}

/// One model input: what feeds it and its element type.
#[derive(Debug, Clone, Copy)]
struct Feed {
    source: FeedSource,
    dtype: DType,
}

/// The model outputs a pipeline reads.
#[derive(Debug, Clone, Copy)]
enum PipelineOutput {
    /// Pooled, classified or scored.
    One(usize),
    /// Question answering's start and end logits.
    Span { start: usize, end: usize },
}

/// A text model's tokenizer and pipeline, built once at load.
pub struct TextModel {
    /// Truncation set for the pipeline (padding is done here: see `pad`).
    tokenizer: Tokenizer,
    /// The tokenizer file's pad token, id and side.
    padding: PaddingParams,
    pipeline: TextPipeline,
    feeds: Vec<Feed>,
    output: PipelineOutput,
    /// Sequence lengths a batch is padded up to, when the model runs per-length plans.
    plans: model_lock::Plans,
    /// Tokens the tokenizer's template adds around a pair (`[CLS] a [SEP] b [SEP]`: 3).
    pair_special_tokens: usize,
    /// The id of the token a pair starts with (`[CLS]`), which question answering scores as
    /// "no answer".
    cls_id: Option<u32>,
}

impl std::fmt::Debug for TextModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextModel")
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

/// Tokenized texts, ready to run, with what the answer needs to read the outputs back.
pub struct Encoded {
    pub inputs: TVec<TValue>,
    /// One per row, padded: masks, and for question answering offsets and sequence ids.
    encodings: Vec<Encoding>,
    /// Tokens per text after truncation, special tokens included.
    tokens: Vec<usize>,
    truncated: Vec<bool>,
    /// Question answering: which question each row (a window of its context) belongs to.
    window_of: Vec<usize>,
    /// What the request asked for that shapes the answer.
    request: TextRequest,
}

/// The parts of a text request the answer is shaped by.
#[derive(Debug, Clone)]
struct TextRequest {
    rows: usize,
    top_k: Option<usize>,
    /// Question answering sent as lists: answer with a list.
    batch: bool,
    /// Question answering: the contexts, to cut answers from.
    contexts: Vec<String>,
}

/// A request field of text, as error messages name it and its items.
#[derive(Debug, Clone, Copy)]
struct TextField {
    name: &'static str,
    noun: &'static str,
    plural: &'static str,
    /// Whether the field holds a list whose items are named by index.
    indexed: bool,
    /// Which member of a pair, when it is one.
    member: &'static str,
}

impl TextField {
    const TEXT: TextField = TextField::list("text", "text", "texts");
    const PAIR: TextField = TextField::list("text", "pair", "pairs");
    const DOCUMENTS: TextField = TextField::list("documents", "document", "documents");
    const QUERY: TextField = TextField {
        indexed: false,
        ..TextField::list("query", "query", "queries")
    };

    const fn list(name: &'static str, noun: &'static str, plural: &'static str) -> Self {
        TextField {
            name,
            noun,
            plural,
            indexed: true,
            member: "",
        }
    }

    /// `field "text": text 3`, or `field "context"` for a field of one string.
    fn at(self, i: usize) -> String {
        match self.indexed {
            true => format!("field \"{}\": {} {i}{}", self.name, self.noun, self.member),
            false => format!("field \"{}\"", self.name),
        }
    }
}

/// Where a pair request's rows and members come from.
#[derive(Debug, Clone, Copy)]
enum PairFields {
    /// `"text": [[a, b], …]`.
    Pairs,
    /// `"query"` with each of `"documents"`.
    QueryDocuments,
}

impl PairFields {
    /// The rows' field, then the first and the second member's.
    fn fields(self) -> (TextField, TextField, TextField) {
        match self {
            PairFields::Pairs => (
                TextField::PAIR,
                TextField {
                    member: " (its first text)",
                    ..TextField::PAIR
                },
                TextField {
                    member: " (its second text)",
                    ..TextField::PAIR
                },
            ),
            PairFields::QueryDocuments => {
                (TextField::DOCUMENTS, TextField::QUERY, TextField::DOCUMENTS)
            }
        }
    }
}

impl TextModel {
    /// Checks that the tokenizer parses and that every model input is one a tokenizer can
    /// feed; errors are load errors (pack-models reports them).
    pub fn new(entry: &ModelEntry, tokenizer_json: &[u8]) -> Result<Self, String> {
        let pipeline = entry
            .pipeline
            .clone()
            .ok_or("the model has no text pipeline")?;
        pipeline.validate()?;
        let mut tokenizer = Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| format!("tokenizer.json does not load: {e}"))?;
        // The tokenizer file's own padding (often fixed at 128) would pad every text to the
        // same length; the pipeline's settings decide instead, in `pad`.
        let padding = tokenizer.get_padding().cloned().unwrap_or_default();
        tokenizer.with_padding(None);
        let truncation = match pipeline.truncation() {
            Truncation::Off => None,
            Truncation::LongestFirst => Some(TruncationStrategy::LongestFirst),
            Truncation::OnlySecond => Some(TruncationStrategy::OnlySecond),
        };
        let stride = match pipeline.task {
            TextTask::QuestionAnswering => pipeline.stride(),
            _ => 0,
        };
        tokenizer
            .with_truncation(truncation.map(|strategy| TruncationParams {
                max_length: pipeline.max_length,
                strategy,
                stride,
                ..Default::default()
            }))
            .map_err(|e| format!("tokenizer truncation settings: {e}"))?;
        let pair_special_tokens = tokenizer
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, true));
        let cls_id = tokenizer
            .encode(("a", "b"), true)
            .ok()
            .filter(|e| e.get_special_tokens_mask().first() == Some(&1))
            .and_then(|e| e.get_ids().first().copied());

        let feeds = entry
            .inputs
            .iter()
            .map(|spec| {
                let source = match spec.name.as_str() {
                    "input_ids" => FeedSource::Ids,
                    "attention_mask" => FeedSource::Mask,
                    "token_type_ids" => FeedSource::TypeIds,
                    other => {
                        return Err(format!(
                            "text pipeline: the model input {other:?} is not one a tokenizer provides (input_ids, attention_mask, token_type_ids)"
                        ))
                    }
                };
                if !matches!(spec.dtype, DType::I64 | DType::I32) {
                    return Err(format!(
                        "text pipeline: input {:?} is {}, expected an integer type",
                        spec.name, spec.dtype
                    ));
                }
                Ok(Feed {
                    source,
                    dtype: spec.dtype,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !feeds.iter().any(|f| matches!(f.source, FeedSource::Ids)) {
            return Err("text pipeline: the model has no input_ids input".into());
        }
        let output = match pipeline.task {
            TextTask::QuestionAnswering => question_answering::outputs(entry)?,
            _ => PipelineOutput::One(single_output(entry, &pipeline)?),
        };
        Ok(TextModel {
            tokenizer,
            padding,
            pipeline,
            feeds,
            output,
            plans: entry.plans.clone(),
            pair_special_tokens,
            cls_id,
        })
    }

    /// Whether this model's task takes `inputs` (and `top_k`): checked before the model is
    /// loaded, so a wrong request never waits for a load.
    pub fn accepts(
        pipeline: &TextPipeline,
        inputs: &TextInputs,
        top_k: Option<usize>,
    ) -> Result<(), RequestError> {
        let ok = matches!(
            (pipeline.task, inputs),
            (TextTask::Embedding, TextInputs::Texts(_))
                | (
                    TextTask::Classification,
                    TextInputs::Texts(_) | TextInputs::Pairs(_)
                )
                | (
                    TextTask::Rerank,
                    TextInputs::Pairs(_) | TextInputs::QueryDocuments { .. }
                )
                | (TextTask::QuestionAnswering, TextInputs::Questions { .. })
        );
        if !ok {
            let wants = match pipeline.task {
                TextTask::Embedding => "\"text\": a string or an array of strings",
                TextTask::Classification => {
                    "\"text\": a string, an array of strings, or an array of [text, text] pairs"
                }
                TextTask::Rerank => {
                    "\"query\" and \"documents\", or \"text\": an array of [query, document] pairs"
                }
                TextTask::QuestionAnswering => {
                    "\"question\" and \"context\" (strings, or arrays of strings for a batch)"
                }
            };
            return Err(RequestError::bad(format!(
                "this is a {} model; it takes {wants}, not {}",
                task_name(pipeline.task),
                inputs.describe()
            )));
        }
        if top_k.is_some() && !pipeline.task.takes_pairs() {
            return Err(RequestError::bad(format!(
                "field \"top_k\" is for rerank and question-answering models; this is a {} model",
                task_name(pipeline.task)
            )));
        }
        Ok(())
    }

    /// Tokenizes a request into model inputs: rows padded to the longest (or to
    /// max_length), then to the plan's bucket.
    pub fn encode(
        &self,
        inputs: &TextInputs,
        top_k: Option<usize>,
    ) -> Result<Encoded, RequestError> {
        Self::accepts(&self.pipeline, inputs, top_k)?;
        let mut request = TextRequest {
            rows: inputs.rows(),
            top_k,
            batch: true,
            contexts: Vec::new(),
        };
        let (encodings, window_of) = match inputs {
            TextInputs::Texts(texts) => (self.encode_texts(texts)?, Vec::new()),
            TextInputs::Pairs(pairs) => {
                let pairs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|TextPair { first, second }| (first.as_str(), second.as_str()))
                    .collect();
                (self.encode_pairs(&pairs, PairFields::Pairs)?, Vec::new())
            }
            TextInputs::QueryDocuments { query, documents } => {
                let pairs: Vec<(&str, &str)> = documents
                    .iter()
                    .map(|d| (query.as_str(), d.as_str()))
                    .collect();
                (
                    self.encode_pairs(&pairs, PairFields::QueryDocuments)?,
                    Vec::new(),
                )
            }
            TextInputs::Questions {
                questions,
                contexts,
                batch,
            } => {
                request.batch = *batch;
                request.contexts = contexts.clone();
                let windows = self.encode_questions(questions, contexts, *batch)?;
                (windows.encodings, windows.window_of)
            }
        };
        self.to_inputs(encodings, window_of, request)
    }

    /// The checks every text of a request gets before tokenizing (the expensive part): not
    /// empty, and not longer than `max_chars` characters.
    fn check_texts<'a>(
        &self,
        texts: impl IntoIterator<Item = &'a str>,
        field: TextField,
        max_chars: usize,
    ) -> Result<(), RequestError> {
        for (i, t) in texts.into_iter().enumerate() {
            if t.trim().is_empty() {
                return Err(RequestError::bad(format!(
                    "{} is empty; there is nothing to read",
                    field.at(i)
                )));
            }
            if t.len() > max_chars && t.chars().count() > max_chars {
                return Err(RequestError::OverLimit(format!(
                    "{} is {} characters; this model reads at most {} tokens (max_length), so it takes at most {max_chars} characters per {}: send a shorter one",
                    field.at(i),
                    t.chars().count(),
                    self.pipeline.max_length,
                    field.noun
                )));
            }
        }
        Ok(())
    }

    /// Past max_length tokens the model reads nothing more, and no token spans
    /// MAX_CHARS_PER_TOKEN characters.
    fn max_chars(&self) -> usize {
        self.pipeline.max_length.saturating_mul(MAX_CHARS_PER_TOKEN)
    }

    fn check_batch(&self, rows: usize, field: TextField) -> Result<(), RequestError> {
        if rows == 0 {
            return Err(RequestError::bad(format!(
                "field \"{}\": the list is empty",
                field.name
            )));
        }
        if rows > self.pipeline.max_batch {
            return Err(RequestError::bad(format!(
                "field \"{}\": {rows} {}, more than this model takes in one request ({}, pipeline.max_batch)",
                field.name, field.plural, self.pipeline.max_batch
            )));
        }
        Ok(())
    }

    fn encode_texts(&self, texts: &[String]) -> Result<Vec<Encoding>, RequestError> {
        self.check_batch(texts.len(), TextField::TEXT)?;
        self.check_texts(
            texts.iter().map(String::as_str),
            TextField::TEXT,
            self.max_chars(),
        )?;
        let inputs: Vec<EncodeInput> = texts.iter().map(|t| t.as_str().into()).collect();
        let encodings = self.tokenize(inputs, TextField::TEXT)?;
        for (i, enc) in encodings.iter().enumerate() {
            // Text the normalizer removes entirely (NUL, zero-width spaces) leaves only the
            // special tokens: an empty text, as far as the model can tell.
            if content_tokens(enc, 0) == 0 {
                return Err(RequestError::bad(format!(
                    "{} has no tokens once normalized (only control or zero-width characters?); there is nothing to read",
                    TextField::TEXT.at(i)
                )));
            }
            self.check_untruncated(enc, TextField::TEXT, i)?;
        }
        Ok(encodings)
    }

    /// Pairs tokenized together as the tokenizer's pair template says.
    fn encode_pairs(
        &self,
        pairs: &[(&str, &str)],
        fields: PairFields,
    ) -> Result<Vec<Encoding>, RequestError> {
        let (rows, first, second) = fields.fields();
        self.check_batch(pairs.len(), rows)?;
        match fields {
            // The query is the same in every pair: checked once.
            PairFields::QueryDocuments => {
                self.check_texts(pairs.iter().take(1).map(|p| p.0), first, self.max_chars())?
            }
            PairFields::Pairs => {
                self.check_texts(pairs.iter().map(|p| p.0), first, self.max_chars())?
            }
        }
        self.check_texts(pairs.iter().map(|p| p.1), second, self.max_chars())?;
        let inputs: Vec<EncodeInput> = pairs.iter().map(|&(a, b)| (a, b).into()).collect();
        let encodings = self.tokenize(inputs, rows)?;
        for (i, enc) in encodings.iter().enumerate() {
            for (seq, field) in [first, second].into_iter().enumerate() {
                if content_tokens(enc, seq) == 0 {
                    return Err(RequestError::bad(format!(
                        "{} has no tokens once normalized (only control or zero-width characters?); there is nothing to read",
                        field.at(i)
                    )));
                }
            }
            self.check_untruncated(enc, rows, i)?;
        }
        Ok(encodings)
    }

    /// With truncation off, a row over max_length is refused rather than cut.
    fn check_untruncated(
        &self,
        enc: &Encoding,
        field: TextField,
        i: usize,
    ) -> Result<(), RequestError> {
        if self.pipeline.truncation() == Truncation::Off && enc.len() > self.pipeline.max_length {
            return Err(RequestError::bad(format!(
                "{} is {} tokens, more than this model's max_length {} (truncation is off)",
                field.at(i),
                enc.len(),
                self.pipeline.max_length
            )));
        }
        Ok(())
    }

    /// `tokenizers` on the batch, with character offsets (question answering answers in
    /// characters). Its errors come from the input (a pair whose first member alone fills
    /// max_length under `only_second`): the item is found and named.
    fn tokenize(
        &self,
        inputs: Vec<EncodeInput>,
        field: TextField,
    ) -> Result<Vec<Encoding>, RequestError> {
        match self
            .tokenizer
            .encode_batch_char_offsets(inputs.clone(), true)
        {
            Ok(encodings) => Ok(encodings),
            Err(e) => {
                let i = inputs
                    .into_iter()
                    .position(|input| self.tokenizer.encode_char_offsets(input, true).is_err())
                    .unwrap_or(0);
                let hint = match self.pipeline.truncation() {
                    Truncation::OnlySecond => {
                        "; with truncation = \"only_second\" only the second text is cut, so the first must fit in max_length with room to spare"
                    }
                    _ => "",
                };
                Err(RequestError::bad(format!(
                    "{} cannot be tokenized within max_length {} ({e}){hint}",
                    field.at(i),
                    self.pipeline.max_length
                )))
            }
        }
    }

    /// Rows padded and turned into the model's input tensors.
    fn to_inputs(
        &self,
        mut encodings: Vec<Encoding>,
        window_of: Vec<usize>,
        request: TextRequest,
    ) -> Result<Encoded, RequestError> {
        let tokens = encodings.iter().map(Encoding::len).collect();
        let truncated = encodings
            .iter_mut()
            .map(|e| !e.take_overflowing().is_empty())
            .collect();
        self.pad(&mut encodings)?;
        let seq = encodings.first().map(Encoding::len).unwrap_or(0);
        let batch = encodings.len();
        let mut inputs = TVec::new();
        for feed in &self.feeds {
            let mut flat = Vec::with_capacity(batch * seq);
            for enc in &encodings {
                let values = match feed.source {
                    FeedSource::Ids => enc.get_ids(),
                    FeedSource::Mask => enc.get_attention_mask(),
                    FeedSource::TypeIds => enc.get_type_ids(),
                };
                flat.extend(values.iter().map(|v| *v as i64));
            }
            let tensor = tract_ndarray::Array2::from_shape_vec((batch, seq), flat)
                .map_err(|e| RequestError::Internal(format!("token tensor: {e}")))?
                .into_tensor();
            let tensor = match feed.dtype {
                DType::I32 => tensor
                    .cast_to::<i32>()
                    .map_err(|e| RequestError::Internal(format!("token tensor: {e}")))?
                    .into_owned(),
                _ => tensor,
            };
            inputs.push(tensor.into());
        }
        Ok(Encoded {
            inputs,
            encodings,
            tokens,
            truncated,
            window_of,
            request,
        })
    }

    /// Pads every row to the longest (or to max_length), then, with per-length plans, to
    /// the smallest bucket that holds it: the padding is masked, so the answer is the same.
    fn pad(&self, encodings: &mut [Encoding]) -> Result<(), RequestError> {
        let strategy = match self.pipeline.padding {
            Padding::Longest => PaddingStrategy::BatchLongest,
            Padding::MaxLength => PaddingStrategy::Fixed(self.pipeline.max_length),
        };
        let params = PaddingParams {
            strategy,
            ..self.padding.clone()
        };
        pad_encodings(encodings, &params)
            .map_err(|e| RequestError::Internal(format!("padding: {e}")))?;
        let longest = encodings.iter().map(Encoding::len).max().unwrap_or(0);
        if let Some(target) = self.plans.bucket(longest as u64) {
            for enc in encodings {
                enc.pad(
                    target as usize,
                    params.pad_id,
                    params.pad_type_id,
                    &params.pad_token,
                    params.direction,
                );
            }
        }
        Ok(())
    }

    /// The pipeline's answer fields from the model outputs.
    pub fn answer(
        &self,
        encoded: &Encoded,
        outputs: &[TValue],
        labels: &[String],
    ) -> Result<Map<String, Value>, RequestError> {
        let output = match self.output {
            PipelineOutput::Span { start, end } => {
                let (start, end) = (float_output(outputs, start)?, float_output(outputs, end)?);
                if start.shape() != end.shape() {
                    return Err(RequestError::Internal(format!(
                        "start logits {:?} and end logits {:?} differ in shape",
                        start.shape(),
                        end.shape()
                    )));
                }
                let logits = question_answering::Logits {
                    shape: start.shape(),
                    start: floats(&start)?,
                    end: floats(&end)?,
                };
                return self.answer_questions(encoded, &logits);
            }
            PipelineOutput::One(output) => float_output(outputs, output)?,
        };
        let (shape, values) = (output.shape(), floats(&output)?);
        let mut body = Map::new();
        match self.pipeline.task {
            TextTask::Embedding => {
                let mask: Vec<&[u32]> = encoded
                    .encodings
                    .iter()
                    .map(|e| e.get_attention_mask())
                    .collect();
                let mut embeddings = match shape {
                    [b, s, h] => pooling::mean_pool(values, *b, *s, *h, &mask),
                    [b, h] => values.chunks(*h).take(*b).map(|r| r.to_vec()).collect(),
                    _ => {
                        return Err(RequestError::Internal(format!(
                            "embedding output has shape {shape:?}"
                        )))
                    }
                };
                if self.pipeline.normalize {
                    embeddings.iter_mut().for_each(|e| pooling::l2_normalize(e));
                }
                body.insert("embeddings".into(), json!(embeddings));
            }
            TextTask::Classification => {
                let [_, n] = shape else {
                    return Err(RequestError::Internal(format!(
                        "classification output has shape {shape:?}"
                    )));
                };
                let probabilities: Vec<Vec<f32>> =
                    values.chunks(*n).map(pooling::softmax).collect();
                let mut names = Vec::new();
                let mut scores = Vec::new();
                for row in &probabilities {
                    let best = pooling::argmax(row);
                    names.push(
                        labels
                            .get(best)
                            .cloned()
                            .unwrap_or_else(|| best.to_string()),
                    );
                    scores.push(row[best]);
                }
                body.insert("labels".into(), json!(names));
                body.insert("scores".into(), json!(scores));
                body.insert("probabilities".into(), json!(probabilities));
            }
            TextTask::Rerank => {
                let ranked = rerank::rank(shape, values, encoded.request.top_k)?;
                body.insert("scores".into(), json!(ranked.scores));
                body.insert("ranking".into(), json!(ranked.ranking));
            }
            TextTask::QuestionAnswering => unreachable!("answered from spans above"),
        }
        body.insert("tokens".into(), json!(encoded.tokens));
        body.insert("truncated".into(), json!(encoded.truncated));
        Ok(body)
    }
}

/// How the manifest spells a task, for messages.
fn task_name(task: TextTask) -> &'static str {
    match task {
        TextTask::Embedding => "embedding",
        TextTask::Classification => "classification",
        TextTask::Rerank => "rerank",
        TextTask::QuestionAnswering => "question-answering",
    }
}

/// The output an embedding, classification or rerank pipeline reads: the manifest's, or the
/// first float output; its rank must suit the task.
fn single_output(entry: &ModelEntry, pipeline: &TextPipeline) -> Result<usize, String> {
    let output = match &pipeline.output {
        Some(name) => entry
            .outputs
            .iter()
            .position(|o| &o.name == name)
            .ok_or_else(|| format!("text pipeline: the model has no output {name:?}"))?,
        None => entry
            .outputs
            .iter()
            .position(|o| matches!(o.dtype, DType::F32 | DType::F64 | DType::F16))
            .ok_or("text pipeline: the model has no float output")?,
    };
    let spec = &entry.outputs[output];
    let rank = spec.shape.len();
    let fits = match pipeline.task {
        TextTask::Embedding => rank == 2 || rank == 3,
        TextTask::Classification => rank == 2,
        TextTask::Rerank => rerank::fits(&spec.shape),
        TextTask::QuestionAnswering => false,
    };
    if !fits {
        return Err(format!(
            "text pipeline: output {:?} has shape [{}], which a {} pipeline cannot use{}",
            spec.name,
            spec.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            task_name(pipeline.task),
            match pipeline.task {
                TextTask::Rerank => " (it needs one relevance logit per pair, [batch, 1] or [batch], or two classes, [batch, 2])",
                _ => "",
            }
        ));
    }
    Ok(output)
}

/// An output as f32 (borrowed when it already is).
fn float_output(outputs: &[TValue], ix: usize) -> Result<Cow<'_, Tensor>, RequestError> {
    outputs
        .get(ix)
        .ok_or_else(|| RequestError::Internal("the model returned too few outputs".into()))?
        .cast_to::<f32>()
        .map_err(|e| RequestError::Internal(format!("pipeline output: {e}")))
}

fn floats(tensor: &Tensor) -> Result<&[f32], RequestError> {
    slice_of::<f32>(tensor).map_err(|e| RequestError::Internal(format!("{e}")))
}

/// Tokens of sequence `seq` (0: the text or a pair's first member, 1: the second) that are
/// not special and not padding.
fn content_tokens(enc: &Encoding, seq: usize) -> usize {
    let ids = enc.get_sequence_ids();
    ids.iter()
        .zip(enc.get_special_tokens_mask())
        .zip(enc.get_attention_mask())
        .filter(|((s, special), mask)| **s == Some(seq) && **special == 0 && **mask == 1)
        .count()
}
