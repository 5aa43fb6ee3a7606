//! Everything the benchmarks need before they time anything: the models (from the pinned
//! test-data packages), onnxruntime's own int8 export of MiniLM, the Python side's venv,
//! the bench function's manifest, its packed models and its `bootstrap`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::bootstrap;
use crate::files::write_atomic;
use crate::pack;
use crate::python_env::{self, PythonEnv};
use crate::{test_data, workspace};

/// The default classifier, as committed.
pub fn classifier_file() -> PathBuf {
    workspace::root().join("models/default/breast_cancer_lr.onnx")
}

pub struct Files {
    pub minilm_fp32: PathBuf,
    pub minilm_tokenizer: PathBuf,
    pub ocr_det: PathBuf,
}

pub fn files(data: &Path) -> Files {
    Files {
        minilm_fp32: data.join(test_data::MINILM_FILE),
        minilm_tokenizer: data.join(test_data::MINILM_TOKENIZER_FILE),
        ocr_det: data.join(test_data::OCR_DET_FILE),
    }
}

/// The Python side: onnxruntime, numpy, tokenizers and awslambdaric, pinned.
pub fn python() -> Result<PythonEnv> {
    python_env::ensure("bench")
}

/// The Lambda handler the Python side runs.
pub fn handler_dir() -> PathBuf {
    workspace::root().join("xtask/bench")
}

/// onnxruntime's dynamic int8 export of the fp32 MiniLM (`quantize_dynamic`, QInt8
/// weights), the int8 model a Python user would make. Redone when its inputs change.
pub fn ort_int8(env: &PythonEnv, fp32: &Path, out_dir: &Path) -> Result<PathBuf> {
    let dest = out_dir.join("minilm-ort-int8.onnx");
    let stamp = out_dir.join("minilm-ort-int8.inputs");
    let reqs = std::fs::read(python_env::requirements("bench"))?;
    let model = std::fs::read(fp32).with_context(|| format!("cannot read {}", fp32.display()))?;
    let wanted = format!(
        "{}\n{}",
        inference_core::sha256_hex(&reqs),
        inference_core::sha256_hex(&model)
    );
    if dest.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(dest);
    }
    eprintln!("exporting MiniLM with onnxruntime's dynamic int8 quantization");
    let tmp = out_dir.join(".minilm-ort-int8.onnx.tmp");
    let status = Command::new(env.python())
        .args([
            "-c",
            "import sys, logging\n\
             logging.disable(logging.WARNING)\n\
             from onnxruntime.quantization import quantize_dynamic, QuantType\n\
             quantize_dynamic(sys.argv[1], sys.argv[2], weight_type=QuantType.QInt8)",
        ])
        .arg(fp32)
        .arg(&tmp)
        .status()
        .context("running onnxruntime.quantization")?;
    if !status.success() {
        bail!("onnxruntime's quantize_dynamic failed ({status})");
    }
    std::fs::rename(&tmp, &dest)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), dest.display()))?;
    write_atomic(&stamp, wanted.as_bytes())?;
    Ok(dest)
}

/// The bench function's manifest: the classifier, MiniLM with its tokenizer twice (int8
/// weights; int8-dynamic) and the text detector twice (its shape fixed; as exported).
pub fn write_manifest(data: &Path, files: &Files, out_dir: &Path) -> Result<PathBuf> {
    let manifest = format!(
        r#"# Written by `cargo xtask bench` (xtask/src/bench/setup.rs).
default = "breast-cancer"

[[model]]
name = "breast-cancer"
sources = [{classifier:?}]
labels = ["malignant", "benign"]

{minilm}
{minilm_int8_dynamic}
[[model]]
name = "ocr-det"
sources = [{det:?}]

[model.inputs.x]
shape = ["batch", 3, {edge}, {edge}]

# The same detector as exported (dynamic batch, height and width): a plan per request shape.
[[model]]
name = "{exported}"
sources = [{det:?}]
"#,
        classifier = classifier_file().to_string_lossy(),
        minilm = test_data::MiniLmEntry {
            name: "minilm",
            quantize: "int8",
            compile: "auto",
            plans: "auto",
            max_batch: 32,
        }
        .manifest(data),
        minilm_int8_dynamic = test_data::MiniLmEntry {
            name: super::workloads::MINILM_INT8_DYNAMIC,
            quantize: "int8-dynamic",
            compile: "always",
            plans: "auto",
            max_batch: 32,
        }
        .manifest(data),
        det = files.ocr_det.to_string_lossy(),
        edge = super::workloads::IMAGE_EDGE,
        exported = super::workloads::VISION_EXPORTED,
    );
    let path = out_dir.join("models.toml");
    write_atomic(&path, manifest.as_bytes())?;
    Ok(path)
}

/// Packs the bench manifest into `<out>/packed`.
pub fn pack_models(manifest: PathBuf, out_dir: &Path) -> Result<PathBuf> {
    let packed = out_dir.join("packed");
    pack::pack_into(manifest, packed.clone())?;
    Ok(packed)
}

/// The release `bootstrap` (what `cargo xtask build` ships) embedding the bench models,
/// copied to `<out>/bootstrap`.
pub fn build_bootstrap(packed: &Path, out_dir: &Path) -> Result<PathBuf> {
    let built = bootstrap::build_release_with_models(packed)?;
    let dest = out_dir.join("bootstrap");
    std::fs::copy(&built, &dest)
        .with_context(|| format!("cannot copy {} to {}", built.display(), dest.display()))?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_manifest_reads_back_with_its_models() {
        let dir = tempfile::tempdir().unwrap();
        let data = Path::new("/data");
        let path = write_manifest(data, &files(data), dir.path()).unwrap();
        let manifest = crate::pack::manifest::Manifest::read(&path).unwrap();
        let names: Vec<&str> = manifest.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "breast-cancer",
                "minilm",
                "minilm-int8-dynamic",
                "ocr-det",
                "ocr-det-exported"
            ]
        );
        assert_eq!(manifest.default.as_deref(), Some("breast-cancer"));
        let minilm = &manifest.models[1];
        assert!(minilm.pipeline.is_some(), "MiniLM needs its text pipeline");
        assert!(manifest.models[3].inputs.contains_key("x"));
        assert!(manifest.models[4].inputs.is_empty(), "as exported");
    }
}
