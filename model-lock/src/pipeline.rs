//! `pipeline` in a lock entry (and the manifest): what a text model does with its text and
//! its outputs.

use serde::{Deserialize, Serialize};

/// What a text model does with its output. The same table in the manifest and the lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextPipeline {
    pub task: TextTask,
    /// Longest token sequence fed to the model, special tokens included.
    #[serde(default = "default_max_length")]
    pub max_length: usize,
    /// How a text (or pair) over `max_length` tokens is cut: `true` / `"longest_first"`
    /// (the longer member of a pair first), `"only_second"` (the second member only),
    /// `false` (refused with 400). Question answering splits its context into windows instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<Truncation>,
    /// Pad a batch to its longest text (`longest`) or always to `max_length`.
    #[serde(default)]
    pub padding: Padding,
    /// Embeddings: scale each to unit length (for cosine similarity by dot product).
    #[serde(default)]
    pub normalize: bool,
    /// Most texts (pairs, question-answering windows) one request may carry.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// The model output to pool or classify (default: the first float output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Question answering: tokens shared by consecutive windows of a long context
    /// (default: `max_length / 2`, at most 128, as the Hugging Face pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
    /// Question answering: the longest answer, in tokens.
    #[serde(default = "default_max_answer_length")]
    pub max_answer_length: usize,
    /// Question answering: answer "no answer" (an empty span) when the model scores it above
    /// every span (SQuAD 2.0 models).
    #[serde(default)]
    pub handle_impossible_answer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TextTask {
    /// Mean pooling of the token embeddings over the attention mask.
    #[serde(rename = "embedding")]
    Embedding,
    /// Softmax over the logits; the manifest's labels name the classes. Texts or pairs.
    #[serde(rename = "classification")]
    Classification,
    /// A cross-encoder: one relevance score per (query, document) pair, and their order.
    #[serde(rename = "rerank")]
    Rerank,
    /// Extractive question answering: the span of the context the model's start and end
    /// logits point at.
    #[serde(rename = "question-answering")]
    QuestionAnswering,
}

impl TextTask {
    /// Whether requests carry pairs of texts (always for rerank and question answering).
    pub fn takes_pairs(self) -> bool {
        matches!(self, TextTask::Rerank | TextTask::QuestionAnswering)
    }
}

/// How an over-long text or pair is cut (`tokenizers`' truncation strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TruncationSetting", into = "TruncationSetting")]
pub enum Truncation {
    /// Refused with 400.
    Off,
    /// Tokens come off the longer member of a pair first.
    LongestFirst,
    /// Tokens come off the second member only (a passage, never the query).
    OnlySecond,
}

/// The manifest's spelling: a bool (the original form) or a strategy name.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum TruncationSetting {
    On(bool),
    Named(String),
}

impl TryFrom<TruncationSetting> for Truncation {
    type Error = String;
    fn try_from(value: TruncationSetting) -> Result<Self, String> {
        match value {
            TruncationSetting::On(true) => Ok(Truncation::LongestFirst),
            TruncationSetting::On(false) => Ok(Truncation::Off),
            TruncationSetting::Named(name) => match name.as_str() {
                "longest_first" => Ok(Truncation::LongestFirst),
                "only_second" => Ok(Truncation::OnlySecond),
                other => Err(format!(
                    "truncation = {other:?}: expected true, false, \"longest_first\" or \"only_second\""
                )),
            },
        }
    }
}

impl From<Truncation> for TruncationSetting {
    fn from(value: Truncation) -> Self {
        match value {
            Truncation::Off => TruncationSetting::On(false),
            Truncation::LongestFirst => TruncationSetting::Named("longest_first".into()),
            Truncation::OnlySecond => TruncationSetting::Named("only_second".into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    #[default]
    Longest,
    MaxLength,
}

fn default_max_length() -> usize {
    128
}

fn default_max_batch() -> usize {
    32
}

fn default_max_answer_length() -> usize {
    15
}

impl TextPipeline {
    /// A pipeline for `task` with every other setting at its default.
    pub fn new(task: TextTask) -> Self {
        TextPipeline {
            task,
            max_length: default_max_length(),
            truncation: None,
            padding: Padding::default(),
            normalize: false,
            max_batch: default_max_batch(),
            output: None,
            stride: None,
            max_answer_length: default_max_answer_length(),
            handle_impossible_answer: false,
        }
    }

    /// How over-long inputs are cut: the manifest's choice, else `longest_first`; question
    /// answering always windows its context (`only_second`, with a stride).
    pub fn truncation(&self) -> Truncation {
        match self.task {
            TextTask::QuestionAnswering => Truncation::OnlySecond,
            _ => self.truncation.unwrap_or(Truncation::LongestFirst),
        }
    }

    /// Question answering's window overlap, in tokens.
    pub fn stride(&self) -> usize {
        self.stride.unwrap_or((self.max_length / 2).min(128))
    }

    /// Checks the settings that serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=8192).contains(&self.max_length) {
            return Err(format!(
                "pipeline.max_length = {}: expected 2 to 8192 tokens",
                self.max_length
            ));
        }
        if !(1..=1024).contains(&self.max_batch) {
            return Err(format!(
                "pipeline.max_batch = {}: expected 1 to 1024 texts",
                self.max_batch
            ));
        }
        let qa = self.task == TextTask::QuestionAnswering;
        if qa {
            if matches!(self.truncation, Some(t) if t != Truncation::OnlySecond) {
                return Err(
                    "pipeline.truncation: question answering splits a long context into overlapping windows (pipeline.stride); remove truncation".into(),
                );
            }
            if self.stride() * 2 > self.max_length {
                return Err(format!(
                    "pipeline.stride = {}: at most half of max_length ({}), so each window moves forward",
                    self.stride(),
                    self.max_length
                ));
            }
            if !(1..=self.max_length).contains(&self.max_answer_length) {
                return Err(format!(
                    "pipeline.max_answer_length = {}: expected 1 to max_length ({}) tokens",
                    self.max_answer_length, self.max_length
                ));
            }
        } else if self.stride.is_some() || self.handle_impossible_answer {
            return Err(format!(
                "pipeline.stride and pipeline.handle_impossible_answer are question-answering settings; task = {:?} does not use them",
                self.task
            ));
        }
        if self.normalize && self.task != TextTask::Embedding {
            return Err(
                "pipeline.normalize scales embeddings; only task = \"embedding\" uses it".into(),
            );
        }
        if matches!(self.task, TextTask::Rerank | TextTask::QuestionAnswering)
            && self.output.is_some()
        {
            return Err(format!(
                "pipeline.output: task {:?} finds its outputs itself (a relevance logit; start and end logits)",
                self.task
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_settings_read_and_checked() {
        let read = |toml_text: &str| -> Result<TextPipeline, String> {
            let p: TextPipeline = toml::from_str(toml_text).map_err(|e| e.to_string())?;
            p.validate().map(|_| p)
        };
        // The original bool spelling and the strategy names.
        let p = read("task = \"classification\"\ntruncation = true").unwrap();
        assert_eq!(p.truncation(), Truncation::LongestFirst);
        let p = read("task = \"classification\"\ntruncation = false").unwrap();
        assert_eq!(p.truncation(), Truncation::Off);
        let p = read("task = \"rerank\"\ntruncation = \"only_second\"").unwrap();
        assert_eq!(p.truncation(), Truncation::OnlySecond);
        assert_eq!(
            read("task = \"rerank\"").unwrap().truncation(),
            Truncation::LongestFirst
        );
        assert!(read("task = \"rerank\"\ntruncation = \"only_first\"")
            .unwrap_err()
            .contains("\"longest_first\" or \"only_second\""));
        // Question answering windows its context; its defaults are Hugging Face's.
        let qa = read("task = \"question-answering\"\nmax_length = 384").unwrap();
        assert_eq!(qa.truncation(), Truncation::OnlySecond);
        assert_eq!((qa.stride(), qa.max_answer_length), (128, 15));
        assert_eq!(
            read("task = \"question-answering\"\nmax_length = 64")
                .unwrap()
                .stride(),
            32
        );
        for (bad, says) in [
            (
                "task = \"question-answering\"\ntruncation = true",
                "remove truncation",
            ),
            (
                "task = \"question-answering\"\nmax_length = 64\nstride = 40",
                "at most half",
            ),
            (
                "task = \"question-answering\"\nmax_answer_length = 0",
                "max_answer_length",
            ),
            (
                "task = \"question-answering\"\noutput = \"x\"",
                "finds its outputs",
            ),
            (
                "task = \"rerank\"\nstride = 8",
                "question-answering settings",
            ),
            (
                "task = \"embedding\"\nhandle_impossible_answer = true",
                "question-answering settings",
            ),
            (
                "task = \"rerank\"\nnormalize = true",
                "only task = \"embedding\"",
            ),
        ] {
            let e = read(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        // Written back to the lock as read.
        let p = read("task = \"question-answering\"\nstride = 24\nhandle_impossible_answer = true")
            .unwrap();
        let again: TextPipeline = toml::from_str(&toml::to_string(&p).unwrap()).unwrap();
        assert_eq!(again, p);
    }
}
