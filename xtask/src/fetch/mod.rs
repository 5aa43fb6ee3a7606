//! Getting a model source onto local disk: `file`, `http(s)` and `s3` sources. Each writes
//! into a caller-provided temporary file; the cache (`crate::cache`) hashes and renames.

pub mod s3;

use std::path::Path;

use anyhow::Result;

/// Downloads `source` into `dest` (an existing temporary path). Returns the byte count.
pub fn download(source: &str, dest: &Path) -> Result<u64> {
    if let Some(rest) = source.strip_prefix("s3://") {
        let (bucket, key) = rest
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| anyhow::anyhow!("{source}: expected s3://bucket/key"))?;
        return s3::download(bucket, key, dest);
    }
    anyhow::bail!("{source}: unsupported source scheme")
}
