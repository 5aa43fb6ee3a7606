//! Getting a model source onto local disk: `https://` (and loopback `http://`), `s3://`,
//! `file://`. Each writes into a caller-provided temporary path; `crate::cache` hashes the
//! result and renames it into place.

pub mod http;
mod progress;
mod retry;
pub mod s3;

use std::path::Path;

use anyhow::{Context, Result};

/// Is `source` a remote URL (as opposed to a file path or `file://`)?
pub fn is_remote(source: &str) -> bool {
    source.contains("://") && !source.starts_with("file://")
}

/// Downloads a remote `source` into `dest`. Returns the byte count.
pub fn download(source: &str, dest: &Path) -> Result<u64> {
    if let Some(rest) = source.strip_prefix("s3://") {
        let (bucket, key) = rest
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{source}: expected s3://bucket/key"))?;
        return s3::download(bucket, key, dest);
    }
    if source.starts_with("https://") || source.starts_with("http://") {
        return http::download(source, dest);
    }
    let scheme = source.split("://").next().unwrap_or(source);
    anyhow::bail!(
        "{source}: unsupported source scheme {scheme}:// (use https://, s3://, file:// or a path)"
    )
}

/// Reads a local source (`file://` or a path already resolved against the manifest).
pub fn read_local(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
