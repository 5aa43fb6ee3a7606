use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const LOCK_FILE_NAME: &str = "models.lock";
pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid lock file: {message}")]
    Parse { path: String, message: String },
}

/// `models/packed/models.lock`: what `pack-models` produced and what the build embeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub version: u32,
    /// The model a request without `"model"` goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, rename = "model")]
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    /// File name inside the packed directory.
    pub file: String,
    /// What the packed file holds: ONNX, or the compiled form.
    #[serde(default, skip_serializing_if = "ModelFormat::is_onnx")]
    pub format: ModelFormat,
    /// SHA-256 of the packed file.
    pub sha256: String,
    pub size: u64,
    /// SHA-256 of the source as fetched (trust-on-first-use pin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sha256: Option<String>,
    /// SHA-256 of each ONNX external data file as fetched, by its `location` (pins, like
    /// `source_sha256`); packing inlined them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub external_data_sha256: BTreeMap<String, String>,
    #[serde(default = "default_true")]
    pub embed: bool,
    /// Which artifact carries the model: the zip (embedded in `bootstrap`, the default) or a
    /// container image (a file beside `bootstrap`, for models a zip cannot hold).
    #[serde(default, skip_serializing_if = "Artifact::is_zip")]
    pub artifact: Artifact,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// A classifier exported with string class labels: packing rewrote them to indices, and
    /// these outputs are answered as the names again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_labels: Option<ClassLabels>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// The tokenizer packed next to a text model (always embedded: it is small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerEntry>,
    /// Text in, embeddings or classes out: how the function turns text into the model's
    /// inputs and its outputs into an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<TextPipeline>,
    /// Caps on one request's size, checked before anything is allocated for it.
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
    /// What a request costs in memory (see [`MemoryCost`]); absent for fixed-shape models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryCost>,
    /// Inputs the manifest fixed to a constant (`[model.inputs.NAME] value = …`): packed into
    /// the graph, so they are not among `inputs`; a request may still send one if it sends
    /// this value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub constants: BTreeMap<String, serde_json::Value>,
    /// Which plans the function runs: one with symbolic dims, or concrete ones that
    /// `pack-models` measured faster and proved to answer the same.
    #[serde(default, skip_serializing_if = "Plans::is_symbolic")]
    pub plans: Plans,
}

/// String class labels a classifier was exported with (scikit-learn trained on
/// `y = ["setosa", …]`): the plan computes class indices (int64 in the signature), and the
/// function answers each of `outputs` as `names[index]`, as onnxruntime would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassLabels {
    pub outputs: Vec<String>,
    pub names: Vec<String>,
}

/// How the function shapes its execution plans. Symbolic dims keep tract off some of its
/// fastest kernels (convolutions fall back to generic im2col, products with an unknown
/// side to matrix-vector kernels); a concrete plan lets it choose by size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", deny_unknown_fields)]
pub enum Plans {
    /// One plan for every request shape.
    #[default]
    Symbolic,
    /// One plan with the batch dim (the first of every input and output) fixed to 1,
    /// built at load; a request's rows run one after another.
    Rows,
    /// Text models: the sequence dim padded (with a masked tail) up to the smallest of these
    /// lengths, one plan per length, built on first use and kept.
    Buckets { lengths: Vec<u64> },
    /// A plan for each concrete request shape, built on first use from the graph kept at
    /// load and kept in a bounded cache: for graphs tract cannot type with their symbolic
    /// dims (a detector's height and width), or that run faster specialised.
    #[serde(rename = "per-shape")]
    PerShape {
        /// The batch dim (the first of every input and output) is 1 in every plan, and a
        /// request's rows run one after another: the shape key is one row's.
        #[serde(default)]
        rows: bool,
        /// What each plan is specialised from.
        from: ShapeSource,
        /// Shapes the manifest declared, proved at pack time: each one input name → dims.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        declared: Vec<BTreeMap<String, Vec<u64>>>,
        /// Build the declared shapes' plans when the model loads rather than on first use.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        prebuild: bool,
    },
}

/// What per-shape plans are specialised from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShapeSource {
    /// The typed, decluttered graph with its symbolic dims: a new shape costs a declutter
    /// and an optimize.
    Typed,
    /// The ONNX graph, typed anew for each shape: tract cannot type it with symbolic dims
    /// (shapes computed from a symbolic size that its analysis cannot follow).
    Onnx,
}

/// Most bucket lengths one model may have: each is a plan kept in memory.
pub const MAX_BUCKETS: usize = 8;
/// Most shapes a manifest may declare for one model's per-shape plans.
pub const MAX_SHAPE_PLANS: usize = 16;

impl Plans {
    pub fn is_symbolic(&self) -> bool {
        *self == Plans::Symbolic
    }

    /// Whether the batch dim is 1 in every plan and rows run one at a time.
    pub fn rows(&self) -> bool {
        matches!(self, Plans::Rows | Plans::PerShape { rows: true, .. })
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Plans::PerShape { declared, .. } = self {
            if declared.len() > MAX_SHAPE_PLANS {
                return Err(format!(
                    "plans.declared: {} shapes, at most {MAX_SHAPE_PLANS}",
                    declared.len()
                ));
            }
        }
        if let Plans::Buckets { lengths } = self {
            if lengths.is_empty() || lengths.len() > MAX_BUCKETS {
                return Err(format!(
                    "plans.lengths: {} lengths, expected 1 to {MAX_BUCKETS}",
                    lengths.len()
                ));
            }
            if lengths[0] == 0 || lengths.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "plans.lengths = {lengths:?}: expected positive lengths in increasing order"
                ));
            }
        }
        Ok(())
    }

    /// The smallest bucket that holds `n`, if any.
    pub fn bucket(&self, n: u64) -> Option<u64> {
        match self {
            Plans::Buckets { lengths } => lengths.iter().copied().find(|l| *l >= n),
            _ => None,
        }
    }
}

impl fmt::Display for Plans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plans::Symbolic => f.write_str("symbolic"),
            Plans::Rows => f.write_str("rows"),
            Plans::Buckets { lengths } => {
                let l: Vec<String> = lengths.iter().map(u64::to_string).collect();
                write!(f, "buckets {}", l.join("/"))
            }
            Plans::PerShape { rows, from, .. } => {
                let from = match from {
                    ShapeSource::Typed => "typed graph",
                    ShapeSource::Onnx => "ONNX",
                };
                match rows {
                    true => write!(f, "per-shape (rows, from the {from})"),
                    false => write!(f, "per-shape (from the {from})"),
                }
            }
        }
    }
}

/// Where a model ships. Lambda caps a zip at 250 MB unzipped and an image at 10 GB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Artifact {
    /// Embedded in `bootstrap` (unless `embed = false`): in the zip or the image alike.
    #[default]
    Zip,
    /// A packed file in the container image (`/opt/models/<name>/<sha256>.<ext>`), read and
    /// checked against the hash compiled into `bootstrap` like a fallback store's copy.
    Image,
}

impl Artifact {
    pub fn is_zip(&self) -> bool {
        *self == Artifact::Zip
    }
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Artifact::Zip => "zip",
            Artifact::Image => "image",
        })
    }
}

/// The packed file's form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// ONNX protobuf: decoded, typed and decluttered at load.
    #[default]
    Onnx,
    /// tract's NNEF tar of the already decluttered graph (`pack-models` compiled it): only
    /// codegen is left for load.
    Nnef,
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelFormat::Onnx => "onnx",
            ModelFormat::Nnef => "nnef",
        })
    }
}

impl ModelFormat {
    pub fn is_onnx(&self) -> bool {
        *self == ModelFormat::Onnx
    }

    /// The packed file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            ModelFormat::Onnx => "onnx",
            ModelFormat::Nnef => "nnef.tar",
        }
    }
}

/// How big one request may be: `[model.limits]` in the manifest, filled in by `pack-models`
/// where the manifest is silent, recorded in the lock. Past a cap the function answers 413.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most input values (all inputs together) one request may send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_elements: Option<u64>,
    /// Largest value of each symbolic dim, by name (`batch = 64`, `sequence = 512`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_dims: BTreeMap<String, u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.max_input_elements.is_none() && self.max_dims.is_empty()
    }
}

/// What a request costs in memory, measured by `pack-models` on two request sizes and
/// extrapolated (with a margin): the function derives the default cap on a request's input
/// values from it and the memory it has, where the manifest sets no `max_input_elements`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryCost {
    /// Peak bytes a request needs whatever its size.
    pub fixed_bytes: u64,
    /// Peak bytes each input value adds.
    pub bytes_per_input_element: u64,
}

impl MemoryCost {
    /// Input values of the largest request that fits `budget` bytes.
    pub fn largest_request(&self, budget: u64) -> u64 {
        budget.saturating_sub(self.fixed_bytes) / self.bytes_per_input_element.max(1)
    }
}

fn default_true() -> bool {
    true
}

/// A packed `tokenizer.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerEntry {
    /// File name inside the packed directory.
    pub file: String,
    pub sha256: String,
    pub size: u64,
}

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

/// A model input or output as the served model sees it (after manifest overrides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

/// A dimension: fixed, or symbolic (batch, sequence) and resolved per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(u64),
    Symbol(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
    /// Symbolic dimension values (shape outputs).
    Tdim,
    String,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "f16",
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
            DType::Bool => "bool",
            DType::Tdim => "tdim",
            DType::String => "string",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A lock's `file` names a file inside the packed directory: no separators, no `..`, not
/// absolute. Tools join it to that directory to read, write and delete, so anything else
/// could reach outside it.
fn plain_file_name(file: &str) -> Result<(), String> {
    let ok = !file.is_empty()
        && file.len() <= 255
        && file != "."
        && file != ".."
        && !file.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        let shown: String = file.chars().take(64).collect();
        Err(format!(
            "file {shown:?} must be a plain file name in the packed directory (no path separators or \"..\")"
        ))
    }
}

impl LockFile {
    pub fn new() -> Self {
        LockFile {
            version: LOCK_VERSION,
            default: None,
            models: Vec::new(),
        }
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, LockError> {
        let lock: LockFile = toml::from_str(text).map_err(|e| LockError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        if lock.version != LOCK_VERSION {
            return Err(LockError::Parse {
                path: path.to_string(),
                message: format!(
                    "lock version {} is not supported (expected {LOCK_VERSION})",
                    lock.version
                ),
            });
        }
        for m in &lock.models {
            let files = std::iter::once(&m.file).chain(m.tokenizer.as_ref().map(|t| &t.file));
            crate::validate_model_name(&m.name)
                .and_then(|_| files.map(String::as_str).try_for_each(plain_file_name))
                .and_then(|_| m.plans.validate())
                .map_err(|message| LockError::Parse {
                    path: path.to_string(),
                    message: format!("model {:?}: {message}", m.name),
                })?;
        }
        Ok(lock)
    }

    pub fn read(path: &Path) -> Result<Self, LockError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).expect("lock types always serialise");
        format!("# Written by `cargo xtask pack-models`. Commit it: it pins every model's hash.\n{body}")
    }

    pub fn model(&self, name: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.name == name)
    }
}

impl Default for LockFile {
    fn default() -> Self {
        Self::new()
    }
}

/// How many hex digits of the packed file's SHA-256 make a model's version.
pub const VERSION_DIGITS: usize = 12;

impl ModelEntry {
    /// Whether `bootstrap` carries the model's bytes: `embed` and the zip artifact (an image
    /// model is a file beside the binary, never in it).
    pub fn embedded(&self) -> bool {
        self.embed && self.artifact.is_zip()
    }

    /// The model's version as responses, `GET` and deploy summaries show it: the first
    /// [`VERSION_DIGITS`] hex digits of the packed file's SHA-256.
    pub fn version(&self) -> String {
        short_hash(&self.sha256)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("lock types always serialise")
    }

    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// The first [`VERSION_DIGITS`] characters of a hex hash: what people read in logs and answers.
pub fn short_hash(sha256: &str) -> String {
    sha256.chars().take(VERSION_DIGITS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_stay_inside_the_packed_directory() {
        for bad in ["../x.onnx", "/etc/passwd", "a/b.onnx", "..", "", "a\\b"] {
            assert!(plain_file_name(bad).is_err(), "{bad:?}");
        }
        plain_file_name("breast-cancer.onnx").unwrap();
        let text = "version = 1\n[[model]]\nname = \"m\"\nfile = \"../../victim\"\nsha256 = \"00\"\nsize = 1\ninputs = []\noutputs = []\n";
        let e = LockFile::parse(text, "models.lock")
            .unwrap_err()
            .to_string();
        assert!(e.contains("plain file name"), "{e}");
    }

    #[test]
    fn roundtrip() {
        let lock = LockFile {
            version: LOCK_VERSION,
            default: Some("m".into()),
            models: vec![ModelEntry {
                name: "m".into(),
                file: "m.onnx".into(),
                format: Default::default(),
                sha256: "ab".repeat(32),
                size: 3,
                source_sha256: None,
                external_data_sha256: Default::default(),
                artifact: Default::default(),
                embed: true,
                labels: vec!["a".into()],
                class_labels: None,
                inputs: vec![TensorSpec {
                    name: "x".into(),
                    dtype: DType::F32,
                    shape: vec![Dim::Symbol("batch".into()), Dim::Fixed(30)],
                }],
                outputs: vec![],
                tokenizer: Some(TokenizerEntry {
                    file: "m.tokenizer.json".into(),
                    sha256: "cd".repeat(32),
                    size: 9,
                }),
                pipeline: Some(TextPipeline {
                    max_length: 64,
                    truncation: Some(Truncation::OnlySecond),
                    normalize: true,
                    max_batch: 8,
                    ..TextPipeline::new(TextTask::Embedding)
                }),
                limits: Limits {
                    max_input_elements: Some(4096),
                    max_dims: [("batch".to_string(), 8)].into(),
                },
                memory: Some(MemoryCost {
                    fixed_bytes: 1 << 20,
                    bytes_per_input_element: 48,
                }),
                constants: [("sr".to_string(), serde_json::json!(16000))].into(),
                plans: Plans::Buckets {
                    lengths: vec![16, 64],
                },
            }],
        };
        let text = lock.to_toml();
        assert_eq!(LockFile::parse(&text, "x").unwrap(), lock);
        let per_shape = ModelEntry {
            plans: Plans::PerShape {
                rows: true,
                from: ShapeSource::Onnx,
                declared: vec![[("x".to_string(), vec![1, 3, 64, 64])].into()],
                prebuild: true,
            },
            ..lock.models[0].clone()
        };
        let lock = LockFile {
            models: vec![per_shape],
            ..lock
        };
        let text = lock.to_toml();
        assert!(text.contains("kind = \"per-shape\""), "{text}");
        assert_eq!(LockFile::parse(&text, "x").unwrap(), lock);
        assert!(lock.models[0].plans.rows());
        let entry = &lock.models[0];
        assert_eq!(&ModelEntry::from_json(&entry.to_json()).unwrap(), entry);
        assert_eq!(entry.version(), "abababababab");
    }

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

    #[test]
    fn bucket_lengths_must_grow_and_stay_few() {
        let b = |lengths: Vec<u64>| Plans::Buckets { lengths }.validate();
        assert!(b(vec![16, 32, 128]).is_ok());
        assert!(b(vec![]).is_err());
        assert!(b(vec![32, 16]).is_err());
        assert!(b(vec![0, 16]).is_err());
        assert!(b((1..=9).collect()).is_err());
        let plans = Plans::Buckets {
            lengths: vec![16, 32],
        };
        assert_eq!(plans.bucket(1), Some(16));
        assert_eq!(plans.bucket(17), Some(32));
        assert_eq!(plans.bucket(33), None);
        assert_eq!(Plans::Rows.bucket(3), None);
    }

    #[test]
    fn rejects_bad_names_and_versions() {
        let bad = "version = 1\n[[model]]\nname = \"../x\"\nfile = \"x\"\nsha256 = \"\"\nsize = 0\ninputs = []\noutputs = []\n";
        assert!(LockFile::parse(bad, "x").is_err());
        assert!(LockFile::parse("version = 9\n", "x").is_err());
    }
}
