//! Getting a model source's bytes: `https://` (and loopback `http://`) and `s3://` download
//! into a caller-provided temporary path (`crate::cache` hashes the result and renames it into
//! place); `file://` and plain paths (relative to the manifest) are read where they are.

pub mod http;
pub mod progress;
pub mod s3;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A source's bytes and their SHA-256 (lower-case hex).
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// Where a manifest source points.
#[derive(Debug, PartialEq, Eq)]
pub enum Source<'a> {
    /// A file on this machine: `file://` or a path (relative ones against `base`).
    Local(PathBuf),
    /// A URL to download (through the cache).
    Remote(&'a str),
}

impl<'a> Source<'a> {
    pub fn parse(source: &'a str, base: &Path) -> Self {
        if let Some(path) = source.strip_prefix("file://") {
            return Source::Local(PathBuf::from(path));
        }
        if source.contains("://") {
            return Source::Remote(source);
        }
        let path = Path::new(source);
        Source::Local(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        })
    }
}

/// The default cap on one download (`pack-models --max-download-mb`): far above any model
/// a Lambda function can load, far below what a wrong URL could fill a disk with.
pub const DEFAULT_MAX_DOWNLOAD_MB: u64 = 4096;

/// The most bytes a download may bring: checked against the announced length before the
/// body is read, and against the bytes as they arrive.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    pub bytes: u64,
}

impl Cap {
    pub fn mb(mb: u64) -> Self {
        Cap {
            bytes: mb.saturating_mul(1024 * 1024),
        }
    }

    /// `Ok` while `n` bytes are within the cap.
    pub fn check(&self, url: &str, n: u64) -> Result<()> {
        if n > self.bytes {
            bail!(
                "{url}: more than the {} MB download limit; raise --max-download-mb if this file is right",
                self.bytes / (1024 * 1024)
            );
        }
        Ok(())
    }
}

/// Downloads a remote `source` into `dest`, at most `cap` bytes. Returns the byte count.
pub fn download(source: &str, dest: &Path, cap: Cap) -> Result<u64> {
    if let Some(rest) = source.strip_prefix("s3://") {
        let (bucket, key) = rest
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{source}: expected s3://bucket/key"))?;
        return s3::download(bucket, key, dest, cap);
    }
    if source.starts_with("https://") || source.starts_with("http://") {
        return http::download(source, dest, cap);
    }
    let scheme = source.split("://").next().unwrap_or(source);
    bail!(
        "{source}: unsupported source scheme {scheme}:// (use https://, s3://, file:// or a path)"
    )
}

/// Reads a local file.
pub fn read_local(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads a local source and checks it against `expected` (when pinned).
pub fn read_local_verified(path: &Path, expected: Option<&str>) -> Result<Fetched> {
    let bytes = read_local(path)?;
    let sha256 = inference_core::sha256_hex(&bytes);
    check_hash(expected, &sha256, "file")?;
    Ok(Fetched { bytes, sha256 })
}

/// `Ok` unless a pinned hash differs from the `actual` one; the error names both.
pub fn check_hash(expected: Option<&str>, actual: &str, what: &str) -> Result<()> {
    match expected {
        Some(e) if !e.eq_ignore_ascii_case(actual) => {
            bail!("hash mismatch: expected sha256 {e}, {what} has {actual}")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_local_or_remote() {
        let base = Path::new("/m");
        assert_eq!(
            Source::parse("a/model.onnx", base),
            Source::Local("/m/a/model.onnx".into())
        );
        assert_eq!(
            Source::parse("/abs/model.onnx", base),
            Source::Local("/abs/model.onnx".into())
        );
        assert_eq!(
            Source::parse("file:///x/model.onnx", base),
            Source::Local("/x/model.onnx".into())
        );
        for url in ["https://h/m.onnx", "s3://b/k", "ftp://h/m"] {
            assert_eq!(Source::parse(url, base), Source::Remote(url));
        }
    }

    #[test]
    fn a_pinned_hash_must_match() {
        assert!(check_hash(None, "ab", "file").is_ok());
        assert!(check_hash(Some("AB"), "ab", "file").is_ok());
        let e = check_hash(Some("cd"), "ab", "downloaded file")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cd") && e.contains("downloaded file has ab"),
            "{e}"
        );
    }
}
