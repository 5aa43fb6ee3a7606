//! `models/models.toml`: the manifest users edit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use inference_core::prepare::{MaxDrift, Quantize};
use model_lock::{validate_model_name, Dim, Limits, TextPipeline};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The model requests without `"model"` go to.
    pub default: Option<String>,
    #[serde(default, rename = "model")]
    pub models: Vec<ModelSpec>,
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    /// Where to get the model, tried in order.
    pub sources: Vec<String>,
    /// Pinned SHA-256 of the source file.
    pub sha256: Option<String>,
    #[serde(default = "yes")]
    pub embed: bool,
    /// `"zip"` (default): embedded in `bootstrap`; `"image"`: a file in the container image
    /// (`cargo xtask build --image`), for a model a zip's 250 MB cannot hold.
    #[serde(default)]
    pub artifact: model_lock::Artifact,
    #[serde(default)]
    pub labels: Vec<String>,
    /// Per-input settings: a shape override (`[model.inputs.input_ids] shape = ["batch",
    /// 128]`) or a constant packed into the graph (`[model.inputs.sr] value = 16000`).
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    /// Concrete shapes to prove at pack time and build plans for: `[[1, 3, 640, 640]]` for a
    /// single-input model, `[{ images = [1, 3, 640, 640] }]` naming inputs otherwise.
    #[serde(default)]
    pub shapes: Vec<ShapeSpec>,
    /// Build the declared shapes' plans when the model loads (at init for an eagerly loaded
    /// model) instead of on their first request.
    #[serde(default)]
    pub prebuild_shapes: bool,
    /// A JSON request body that must run on the packed model (relative to the manifest).
    pub sample_request: Option<String>,
    /// `"none"` (default); `"int8"`: weight-only int8 in the packed file, f32 products;
    /// `"int8-dynamic"`: int8 weights and int8 matrix products (compiled form only).
    #[serde(default)]
    pub quantize: Quantize,
    /// How far the int8 model's outputs may drift from the original's on the sample request
    /// (`int8-dynamic`: on every sample request).
    #[serde(default)]
    pub max_drift: MaxDrift,
    /// A Hugging Face `tokenizer.json` for a text model, fetched like the model.
    pub tokenizer: Option<TokenizerSpec>,
    /// The side files of an ONNX export with external data (`model.onnx_data`), each by the
    /// `location` its tensors name, fetched like the model and inlined when packing.
    #[serde(default)]
    pub external_data: Vec<ExternalDataSpec>,
    /// What a text model does: `[model.pipeline] task = "embedding" | "classification" | "rerank" | "question-answering"`.
    pub pipeline: Option<TextPipeline>,
    /// Caps on one request: `[model.limits] max_input_elements = …, max_dims = { batch = … }`.
    /// Without `max_input_elements`, the function caps a request by its memory at the cost
    /// `pack-models` measures.
    #[serde(default)]
    pub limits: Limits,
    /// Which form to pack: `"auto"` (default) measures the ONNX and the compiled form's
    /// load times and keeps the faster; `"always"` keeps the compiled form; `"never"`
    /// packs ONNX.
    #[serde(default)]
    pub compile: Compile,
    /// Which plans the function runs: `"auto"` (default) proves and times each that fits
    /// the model and keeps the fastest when it beats the symbolic plan by a tenth;
    /// `"symbolic"`, `"rows"` or `"buckets"` choose one (still proved).
    #[serde(default)]
    pub plans: PlanChoice,
    /// Sequence lengths for bucket plans (text models); default: powers of two from 16,
    /// then `max_length`.
    pub buckets: Option<Vec<u64>>,
}

/// `plans` in the manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanChoice {
    #[default]
    Auto,
    Symbolic,
    Rows,
    Buckets,
    #[serde(rename = "per-shape")]
    PerShape,
}

/// `compile` in the manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compile {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSpec {
    /// Where to get it, tried in order (same forms as model sources).
    pub sources: Vec<String>,
    /// Pinned SHA-256 of the file.
    pub sha256: Option<String>,
}

/// `external_data = [{ location = "model.onnx_data", sources = [...] }]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalDataSpec {
    /// The file name the model's tensors give as their `location`.
    pub location: String,
    /// Where to get it, tried in order (same forms as model sources).
    pub sources: Vec<String>,
    /// Pinned SHA-256 of the file.
    pub sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub shape: Option<Vec<Dim>>,
    /// The input fixed to this value: packed into the graph, no longer sent by requests.
    pub value: Option<serde_json::Value>,
}

/// One declared shape: the dims of a single-input model's input, or input name → dims.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ShapeSpec {
    Dims(Vec<u64>),
    Named(BTreeMap<String, Vec<u64>>),
}

fn yes() -> bool {
    true
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the manifest {}", path.display()))?;
        let mut manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid manifest", path.display()))?;
        manifest.dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        manifest
            .validate()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for m in &self.models {
            validate_model_name(&m.name).map_err(anyhow::Error::msg)?;
            if !seen.insert(&m.name) {
                bail!("model {:?} is listed twice", m.name);
            }
            if m.sources.is_empty() {
                bail!("model {:?} has no sources", m.name);
            }
            if let Some(sha) = &m.sha256 {
                if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!(
                        "model {:?}: sha256 must be 64 hex digits, got {sha:?}",
                        m.name
                    );
                }
            }
            if !m.embed && m.artifact == model_lock::Artifact::Image {
                bail!(
                    "model {:?}: embed = false and artifact = \"image\" contradict each other: an image model is a file in the image, never in bootstrap; keep one (embed = false: EFS/S3 only)",
                    m.name
                );
            }
            match (&m.tokenizer, &m.pipeline) {
                (Some(t), Some(p)) => {
                    if t.sources.is_empty() {
                        bail!("model {:?}: tokenizer has no sources", m.name);
                    }
                    p.validate()
                        .map_err(|e| anyhow::anyhow!("model {:?}: {e}", m.name))?;
                }
                (Some(_), None) => bail!(
                    "model {:?}: a tokenizer without a [model.pipeline] is never used; add task = \"embedding\", \"classification\", \"rerank\" or \"question-answering\"",
                    m.name
                ),
                (None, Some(_)) => bail!(
                    "model {:?}: a text pipeline needs a tokenizer = {{ sources = [...] }}",
                    m.name
                ),
                (None, None) => {}
            }
            if let Some(lengths) = &m.buckets {
                model_lock::Plans::Buckets {
                    lengths: lengths.clone(),
                }
                .validate()
                .map_err(|e| anyhow::anyhow!("model {:?}: buckets: {e}", m.name))?;
            }
            for (name, input) in &m.inputs {
                match (&input.shape, &input.value) {
                    (None, None) => bail!(
                        "model {:?}: [model.inputs.{name}] gives neither a shape nor a value",
                        m.name
                    ),
                    (Some(_), Some(_)) => bail!(
                        "model {:?}: [model.inputs.{name}] gives a shape and a value: a value fixes the input whole (its shape is the value's)",
                        m.name
                    ),
                    _ => {}
                }
            }
            if m.shapes.len() > model_lock::MAX_SHAPE_PLANS {
                bail!(
                    "model {:?}: {} shapes declared, at most {}",
                    m.name,
                    m.shapes.len(),
                    model_lock::MAX_SHAPE_PLANS
                );
            }
            if m.prebuild_shapes && m.shapes.is_empty() {
                bail!(
                    "model {:?}: prebuild_shapes = true without shapes = [...] builds nothing",
                    m.name
                );
            }
            if m.quantize == Quantize::Int8Dynamic && m.compile == Compile::Never {
                bail!(
                    "model {:?}: quantize = \"int8-dynamic\" runs int8 products only in the compiled form; remove compile = \"never\" or use quantize = \"int8\"",
                    m.name
                );
            }
            if m.pipeline.is_none() && (m.buckets.is_some() || m.plans == PlanChoice::Buckets) {
                bail!(
                    "model {:?}: bucket plans pad a tokenized text batch; they need a [model.pipeline]",
                    m.name
                );
            }
        }
        if let Some(d) = &self.default {
            if !self.models.iter().any(|m| &m.name == d) {
                bail!("default = {d:?} names no model in the manifest");
            }
        }
        Ok(())
    }

    /// A path in the manifest, relative to the manifest's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifests shipped in `models/` must stay valid as the format evolves.
    #[test]
    fn shipped_manifests_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let minilm = Manifest::read(&root.join("examples/minilm.toml")).unwrap();
        let spec = &minilm.models[0];
        assert_eq!(spec.quantize, Quantize::Int8);
        assert!(spec.sources[0].starts_with("https://"));
        let sample = minilm.resolve(spec.sample_request.as_deref().unwrap());
        let body: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sample).unwrap()).unwrap();
        assert!(body["inputs"]["input_ids"].is_array(), "{body}");

        let default = Manifest::read(&root.join("models.toml")).unwrap();
        assert!(!default.models.is_empty());
    }

    #[test]
    fn int8_dynamic_reads_and_needs_the_compiled_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.toml");
        let manifest = |compile: &str| {
            format!("[[model]]\nname = \"m\"\nsources = [\"m.onnx\"]\nquantize = \"int8-dynamic\"\ncompile = {compile:?}\n")
        };
        std::fs::write(&path, manifest("auto")).unwrap();
        let read = Manifest::read(&path).unwrap();
        assert_eq!(read.models[0].quantize, Quantize::Int8Dynamic);
        std::fs::write(&path, manifest("never")).unwrap();
        let e = format!("{:#}", Manifest::read(&path).unwrap_err());
        assert!(e.contains("only in the compiled form"), "{e}");
    }
}
