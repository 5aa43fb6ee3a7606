//! `s3://bucket/key` sources through aws-sdk-s3.

use std::path::Path;

use anyhow::Result;

/// Downloads `s3://bucket/key` into `dest`. Returns the byte count.
pub fn download(bucket: &str, key: &str, _dest: &Path) -> Result<u64> {
    anyhow::bail!("s3://{bucket}/{key}: S3 sources are being built (see fetch/s3.rs)")
}
