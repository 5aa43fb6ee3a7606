//! Deployment sizes: the bench function's zip (as `cargo xtask build` writes it) against the
//! zip a Python user ships for the same models: onnxruntime, numpy and tokenizers as pip
//! installs them, the handler and the model files (awslambdaric comes with Lambda's Python
//! runtime, so it is not counted).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::python_env::PythonEnv;

#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub zip_bytes: u64,
    pub unzipped_bytes: u64,
}

/// The packages the Python handler imports, as installed in the venv; tokenizers only when a
/// text model is deployed.
const PYTHON_PACKAGES: &[&str] = &["onnxruntime", "numpy", "numpy.libs"];
const TEXT_PACKAGES: &[&str] = &["tokenizers"];

fn site_packages(env: &PythonEnv) -> Result<PathBuf> {
    let lib = env.dir.join("lib");
    for entry in
        std::fs::read_dir(&lib).with_context(|| format!("cannot list {}", lib.display()))?
    {
        let path = entry?.path().join("site-packages");
        if path.is_dir() {
            return Ok(path);
        }
    }
    anyhow::bail!("no site-packages under {}", lib.display())
}

/// Zips the Python deployment into `dest` and measures it.
pub fn python_deployment(
    env: &PythonEnv,
    handler: &Path,
    models: &[PathBuf],
    text: bool,
    dest: &Path,
) -> Result<Deployment> {
    let site = site_packages(env)?;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let extra = if text { TEXT_PACKAGES } else { &[] };
    for package in PYTHON_PACKAGES.iter().chain(extra) {
        let root = site.join(package);
        if root.is_dir() {
            walk(&root, package, &mut files)?;
        }
    }
    files.push(("handler.py".into(), handler.to_path_buf()));
    for m in models {
        let name = m
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((format!("models/{name}"), m.clone()));
    }
    let tmp = dest.with_extension("zip.tmp");
    let mut unzipped = 0u64;
    {
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(6))
            .large_file(true);
        for (name, path) in &files {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            unzipped += bytes.len() as u64;
            zip.start_file(name.as_str(), options)?;
            zip.write_all(&bytes)?;
        }
        zip.finish()?.flush()?;
    }
    std::fs::rename(&tmp, dest)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), dest.display()))?;
    Ok(Deployment {
        zip_bytes: std::fs::metadata(dest)?.len(),
        unzipped_bytes: unzipped,
    })
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        if path.is_dir() {
            walk(&path, &name, out)?;
        } else {
            out.push((name, path));
        }
    }
    Ok(())
}
