//! Text models: the packed `tokenizer.json` turns request text into the model's
//! `input_ids` / `attention_mask` / `token_type_ids`, and the pipeline turns its output
//! into embeddings (mean pooling) or classes (softmax).

mod pooling;

use model_lock::{DType, ModelEntry, Padding, TextPipeline, TextTask};
use serde_json::{json, Map, Value};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams, TruncationStrategy};
use tract_onnx::prelude::*;

use crate::error::RequestError;
use crate::tensor_json::slice_of;

/// Text longer than `max_length × this` characters is refused before tokenizing.
pub const MAX_CHARS_PER_TOKEN: usize = 32;

/// Which tokenizer field feeds a model input.
#[derive(Debug, Clone, Copy)]
enum Feed {
    Ids,
    Mask,
    TypeIds,
}

/// A text model's tokenizer and pipeline, built once at load.
pub struct TextModel {
    tokenizer: Tokenizer,
    pipeline: TextPipeline,
    /// Model inputs in order, with what feeds each and its element type.
    feeds: Vec<(Feed, DType)>,
    /// Index of the output the pipeline reads.
    output: usize,
    /// Sequence lengths a batch is padded up to, when the model runs per-length plans.
    plans: model_lock::Plans,
}

impl std::fmt::Debug for TextModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextModel")
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

/// Tokenized texts, ready to run.
pub struct Encoded {
    pub inputs: TVec<TValue>,
    mask: Vec<Vec<u32>>,
    /// Tokens per text after truncation, special tokens included.
    tokens: Vec<usize>,
    truncated: Vec<bool>,
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
        // same length; the pipeline's settings decide instead.
        let mut padding = tokenizer.get_padding().cloned().unwrap_or_default();
        padding.strategy = match pipeline.padding {
            Padding::Longest => PaddingStrategy::BatchLongest,
            Padding::MaxLength => PaddingStrategy::Fixed(pipeline.max_length),
        };
        tokenizer.with_padding(Some(PaddingParams { ..padding }));
        let truncation = pipeline.truncation.then(|| TruncationParams {
            max_length: pipeline.max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            ..Default::default()
        });
        tokenizer
            .with_truncation(truncation)
            .map_err(|e| format!("tokenizer truncation settings: {e}"))?;

        let feeds = entry
            .inputs
            .iter()
            .map(|spec| {
                let feed = match spec.name.as_str() {
                    "input_ids" => Feed::Ids,
                    "attention_mask" => Feed::Mask,
                    "token_type_ids" => Feed::TypeIds,
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
                Ok((feed, spec.dtype))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !feeds.iter().any(|(f, _)| matches!(f, Feed::Ids)) {
            return Err("text pipeline: the model has no input_ids input".into());
        }
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
        let rank = entry.outputs[output].shape.len();
        let fits = match pipeline.task {
            TextTask::Embedding => rank == 2 || rank == 3,
            TextTask::Classification => rank == 2,
        };
        if !fits {
            return Err(format!(
                "text pipeline: output {:?} has rank {rank}, which a {:?} pipeline cannot use",
                entry.outputs[output].name, pipeline.task
            ));
        }
        Ok(TextModel {
            tokenizer,
            pipeline,
            feeds,
            output,
            plans: entry.plans.clone(),
        })
    }

    /// With per-length plans, the batch is padded further, to the smallest bucket that holds
    /// it: the padding is masked like the tokenizer's own, so the answer is the same.
    fn pad_to_bucket(&self, encodings: &mut [tokenizers::Encoding]) {
        let longest = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let (Some(target), Some(padding)) = (
            self.plans.bucket(longest as u64),
            self.tokenizer.get_padding(),
        ) else {
            return;
        };
        for enc in encodings {
            enc.pad(
                target as usize,
                padding.pad_id,
                padding.pad_type_id,
                &padding.pad_token,
                padding.direction,
            );
        }
    }

    /// Tokenizes a batch (padded to the longest text, or to max_length) into model inputs.
    pub fn encode(&self, texts: &[String]) -> Result<Encoded, RequestError> {
        if texts.is_empty() {
            return Err(RequestError::bad("field \"text\": the list is empty"));
        }
        if texts.len() > self.pipeline.max_batch {
            return Err(RequestError::bad(format!(
                "field \"text\": {} texts, more than this model takes in one request ({}, pipeline.max_batch)",
                texts.len(),
                self.pipeline.max_batch
            )));
        }
        if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(RequestError::bad(format!(
                "field \"text\": text {i} is empty; there is nothing to embed or classify"
            )));
        }
        // Checked before tokenizing, which is the expensive part: past max_length tokens the
        // model reads nothing more, and no token spans MAX_CHARS_PER_TOKEN characters.
        let max_chars = self.pipeline.max_length.saturating_mul(MAX_CHARS_PER_TOKEN);
        if let Some((i, t)) = texts
            .iter()
            .enumerate()
            .find(|(_, t)| t.len() > max_chars && t.chars().count() > max_chars)
        {
            return Err(RequestError::OverLimit(format!(
                "field \"text\": text {i} is {} characters; this model reads at most {} tokens (max_length), so it takes at most {max_chars} characters per text: send a shorter text",
                t.chars().count(),
                self.pipeline.max_length
            )));
        }
        let mut encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| RequestError::Internal(format!("tokenizer: {e}")))?;
        self.pad_to_bucket(&mut encodings);
        let mut tokens = Vec::with_capacity(texts.len());
        let mut truncated = Vec::with_capacity(texts.len());
        for (i, enc) in encodings.iter().enumerate() {
            let real = enc.get_attention_mask().iter().filter(|m| **m == 1).count();
            // Text the normalizer removes entirely (NUL, zero-width spaces) leaves only the
            // special tokens: an empty text, as far as the model can tell.
            let content = enc
                .get_attention_mask()
                .iter()
                .zip(enc.get_special_tokens_mask())
                .filter(|(m, s)| **m == 1 && **s == 0)
                .count();
            if content == 0 {
                return Err(RequestError::bad(format!(
                    "field \"text\": text {i} has no tokens once normalized (only control or zero-width characters?); there is nothing to embed or classify"
                )));
            }
            if !self.pipeline.truncation && real > self.pipeline.max_length {
                return Err(RequestError::bad(format!(
                    "field \"text\": text {i} is {real} tokens, more than this model's max_length {} (truncation is off)",
                    self.pipeline.max_length
                )));
            }
            tokens.push(real);
            truncated.push(!enc.get_overflowing().is_empty());
        }
        let seq = encodings.first().map(|e| e.len()).unwrap_or(0);
        let batch = encodings.len();
        let mut inputs = TVec::new();
        for (feed, dtype) in &self.feeds {
            let mut flat = Vec::with_capacity(batch * seq);
            for enc in &encodings {
                let values = match feed {
                    Feed::Ids => enc.get_ids(),
                    Feed::Mask => enc.get_attention_mask(),
                    Feed::TypeIds => enc.get_type_ids(),
                };
                flat.extend(values.iter().map(|v| *v as i64));
            }
            let tensor = tract_ndarray::Array2::from_shape_vec((batch, seq), flat)
                .map_err(|e| RequestError::Internal(format!("token tensor: {e}")))?
                .into_tensor();
            let tensor = match dtype {
                DType::I32 => tensor
                    .cast_to::<i32>()
                    .map_err(|e| RequestError::Internal(format!("token tensor: {e}")))?
                    .into_owned(),
                _ => tensor,
            };
            inputs.push(tensor.into());
        }
        let mask = encodings
            .iter()
            .map(|e| e.get_attention_mask().to_vec())
            .collect();
        Ok(Encoded {
            inputs,
            mask,
            tokens,
            truncated,
        })
    }

    /// The pipeline's answer fields from the model outputs.
    pub fn answer(
        &self,
        encoded: &Encoded,
        outputs: &[TValue],
        labels: &[String],
    ) -> Result<Map<String, Value>, RequestError> {
        let out = outputs
            .get(self.output)
            .ok_or_else(|| RequestError::Internal("the model returned too few outputs".into()))?;
        let out = out
            .cast_to::<f32>()
            .map_err(|e| RequestError::Internal(format!("pipeline output: {e}")))?;
        let shape = out.shape().to_vec();
        let values = slice_of::<f32>(&out).map_err(|e| RequestError::Internal(format!("{e}")))?;
        let mut body = Map::new();
        match self.pipeline.task {
            TextTask::Embedding => {
                let mut embeddings = match shape.as_slice() {
                    [b, s, h] => pooling::mean_pool(values, *b, *s, *h, &encoded.mask),
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
                let [_, n] = shape.as_slice() else {
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
        }
        body.insert("tokens".into(), json!(encoded.tokens));
        body.insert("truncated".into(), json!(encoded.truncated));
        Ok(body)
    }
}
