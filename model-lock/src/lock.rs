//! `models/packed/models.lock`: the file, its entries (one per model), and where each
//! model's packed file and tokenizer are. The entry's parts live beside it: `plans.rs`,
//! `limits.rs`, `pipeline.rs`, `signature.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Limits, MemoryCost, Plans, TensorSpec, TextPipeline};

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
    /// SHA-256 of the manifest this lock was packed from: `cargo xtask local` packs again
    /// only when the manifest changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
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
            manifest_sha256: None,
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
    use crate::{DType, Dim, ShapeSource, TextTask, Truncation};

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
            manifest_sha256: Some("0".repeat(64)),
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
    fn rejects_bad_names_and_versions() {
        let bad = "version = 1\n[[model]]\nname = \"../x\"\nfile = \"x\"\nsha256 = \"\"\nsize = 0\ninputs = []\noutputs = []\n";
        assert!(LockFile::parse(bad, "x").is_err());
        assert!(LockFile::parse("version = 9\n", "x").is_err());
    }
}
