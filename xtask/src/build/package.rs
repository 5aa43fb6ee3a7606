//! `target/lambda/bootstrap.zip`: `bootstrap` at the root, mode 0755, fixed timestamp, so the
//! same binary always gives the same zip (and the same CodeSha256); checked against Lambda's
//! size limits before anything is uploaded.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::ValueEnum;
use model_lock::{LockFile, ModelEntry};
use sha2::Digest as _;

use super::glibc;

/// Lambda's limit on the unzipped function (code and layers).
pub const MAX_UNZIPPED: u64 = 250 * 1024 * 1024;
/// Lambda's limit on a zip uploaded directly with the API call; larger ones go through S3.
pub const MAX_DIRECT_ZIP: u64 = 50 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

impl Arch {
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Lambda's name for it.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// ELF `e_machine`.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Arm64 => 183,
        }
    }
}

/// A checked deployment package.
#[derive(Debug)]
pub struct Package {
    pub zip: PathBuf,
    pub zip_size: u64,
    pub sha256_hex: String,
    /// What Lambda reports as CodeSha256: the zip's SHA-256, base64.
    pub code_sha256: String,
    pub unzipped: u64,
    /// The models embedded in the binary, from the lock it was built with.
    pub models: Vec<ModelEntry>,
}

impl Package {
    pub fn needs_s3(&self) -> bool {
        self.zip_size > MAX_DIRECT_ZIP
    }
}

pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

/// Checks `bootstrap` (architecture, glibc, size) and writes the zip to `out`.
pub fn package(
    bootstrap: &Path,
    arch: Arch,
    lock: Option<&LockFile>,
    out: &Path,
) -> Result<Package> {
    let binary =
        std::fs::read(bootstrap).with_context(|| format!("cannot read {}", bootstrap.display()))?;
    let machine = binary
        .get(0x12..0x14)
        .map(|b| u16::from_le_bytes([b[0], b[1]]));
    if !binary.starts_with(b"\x7fELF") || machine != Some(arch.elf_machine()) {
        bail!(
            "{} is not a Linux {} executable (--arch {})",
            bootstrap.display(),
            arch.lambda_name(),
            arch.lambda_name()
        );
    }
    glibc::check(&binary, &bootstrap.display().to_string())?;
    let models: Vec<ModelEntry> = lock
        .map(|l| l.models.iter().filter(|m| m.embed).cloned().collect())
        .unwrap_or_default();
    let unzipped = binary.len() as u64;
    if unzipped > MAX_UNZIPPED {
        bail!(
            "the function is {} unzipped, over Lambda's {} limit:\n{}\nPack large models with embed = false (served from EFS/S3) or quantize = \"int8\".",
            mb(unzipped),
            mb(MAX_UNZIPPED),
            breakdown(unzipped, &models)
        );
    }
    let zip = zip_bytes(&binary)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::files::write_atomic(out, &zip)?;
    let digest: [u8; 32] = sha2::Sha256::digest(&zip).into();
    Ok(Package {
        zip: out.to_path_buf(),
        zip_size: zip.len() as u64,
        sha256_hex: hex::encode(digest),
        code_sha256: base64::engine::general_purpose::STANDARD.encode(digest),
        unzipped,
        models,
    })
}

/// Code versus each embedded model (and its tokenizer), largest first.
pub fn breakdown(total: u64, models: &[ModelEntry]) -> String {
    let mut rows: Vec<(String, u64)> = models
        .iter()
        .map(|m| {
            let tok = m.tokenizer.as_ref().map(|t| t.size).unwrap_or(0);
            (format!("model {}", m.name), m.size + tok)
        })
        .collect();
    let embedded: u64 = rows.iter().map(|(_, s)| s).sum();
    rows.push(("code".into(), total.saturating_sub(embedded)));
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    rows.iter()
        .map(|(what, size)| format!("  {:>10}  {what}", mb(*size)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One entry, `bootstrap`, executable, dated 1980-01-01: byte-identical for the same binary.
fn zip_bytes(binary: &[u8]) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o755);
        zip.start_file("bootstrap", options)
            .context("writing the zip")?;
        zip.write_all(binary).context("writing the zip")?;
        zip.finish().context("writing the zip")?;
    }
    Ok(out.into_inner())
}
