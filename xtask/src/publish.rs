//! `cargo xtask publish-models`: puts the packed models where the function's fallback looks
//! for them, `<root>/<name>/<sha256>.onnx`, in an S3 bucket and/or an EFS directory.
//! The layout is `inference_core::fallback::relative_path`, so the two sides cannot drift.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use inference_core::fallback::{relative_path, s3::S3Location};
use model_lock::{LockFile, ModelEntry};

use crate::{fetch, workspace};

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The packed directory (its models.lock says what to publish).
    #[arg(long, default_value_os_t = workspace::default_packed_dir())]
    pub packed: PathBuf,
    /// Upload to this bucket and prefix: s3://bucket or s3://bucket/prefix (the function's
    /// MODEL_S3_BUCKET and MODEL_S3_PREFIX).
    #[arg(long, value_name = "S3_URL")]
    pub s3: Option<String>,
    /// Copy into this directory (the EFS mount as seen from here; the function's
    /// MODEL_EFS_DIR).
    #[arg(long, value_name = "DIR")]
    pub efs_dir: Option<PathBuf>,
    /// Publish only these models (default: every model in the lock).
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
}

pub fn run(args: &PublishArgs) -> Result<()> {
    if args.s3.is_none() && args.efs_dir.is_none() {
        bail!("nothing to publish to: give --s3 s3://bucket[/prefix] and/or --efs-dir DIR");
    }
    let s3 = args.s3.as_deref().map(parse_s3_url).transpose()?;
    let lock_path = args.packed.join("models.lock");
    let lock = LockFile::read(&lock_path).with_context(|| {
        format!(
            "cannot read {} (run `cargo xtask pack-models` first)",
            lock_path.display()
        )
    })?;
    for wanted in &args.models {
        if lock.model(wanted).is_none() {
            bail!(
                "model {wanted:?} is not in {}; it has {}",
                lock_path.display(),
                lock.models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let chosen: Vec<&ModelEntry> = lock
        .models
        .iter()
        .filter(|m| args.models.is_empty() || args.models.contains(&m.name))
        .collect();

    let s3_target = match &s3 {
        Some(location) => Some((S3Target::connect()?, location)),
        None => None,
    };
    for entry in chosen {
        // Publish only what the lock vouches for: a stale or edited packed file would be
        // rejected by the function anyway, better to say so now.
        let path = args.packed.join(&entry.file);
        let bytes = fetch::read_local(&path)?;
        if let Err(m) = inference_core::verify_sha256(&bytes, &entry.sha256) {
            bail!(
                "{}: sha256 is {} but the lock says {}; run `cargo xtask pack-models` again",
                path.display(),
                m.actual,
                m.expected
            );
        }
        if let Some(dir) = &args.efs_dir {
            let dest = dir.join(relative_path(&entry.name, &entry.sha256, entry.format));
            let state = publish_efs(&dest, &bytes, &entry.sha256)?;
            println!("{:<24} {state:<9} {}", entry.name, dest.display());
        }
        if let Some((target, location)) = &s3_target {
            let key = location.key(&entry.name, &entry.sha256, entry.format);
            let state = target.publish(&location.bucket, &key, &bytes, &entry.sha256)?;
            println!(
                "{:<24} {state:<9} s3://{}/{key}",
                entry.name, location.bucket
            );
        }
    }
    Ok(())
}

fn parse_s3_url(url: &str) -> Result<S3Location> {
    let rest = url
        .strip_prefix("s3://")
        .with_context(|| format!("--s3 {url:?}: expected s3://bucket or s3://bucket/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("--s3 {url:?}: the bucket name is empty");
    }
    Ok(S3Location {
        bucket: bucket.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
    })
}

/// Copies into the EFS directory through a temporary file and a rename, so a function
/// reading at the same time sees the old state or the whole new file.
fn publish_efs(dest: &Path, bytes: &[u8], sha256: &str) -> Result<&'static str> {
    if let Ok(existing) = std::fs::read(dest) {
        if inference_core::verify_sha256(&existing, sha256).is_ok() {
            return Ok("unchanged");
        }
    }
    let dir = dest.parent().expect("a model path has a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::files::write_atomic(dest, bytes)?;
    Ok("copied")
}

struct S3Target {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
}

/// The object metadata key holding the uploaded bytes' sha256, so a second publish can
/// skip objects that are already right without downloading them.
const SHA_META: &str = "sha256";

impl S3Target {
    fn connect() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime for S3")?;
        let client = rt.block_on(fetch::s3::client());
        Ok(S3Target { rt, client })
    }

    fn publish(&self, bucket: &str, key: &str, bytes: &[u8], sha256: &str) -> Result<&'static str> {
        let url = format!("s3://{bucket}/{key}");
        self.rt.block_on(async {
            if let Ok(head) = self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
            {
                let same_hash = head
                    .metadata()
                    .and_then(|m| m.get(SHA_META))
                    .is_some_and(|h| h.eq_ignore_ascii_case(sha256));
                if same_hash && head.content_length() == Some(bytes.len() as i64) {
                    return Ok("unchanged");
                }
            }
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .metadata(SHA_META, sha256)
                .content_type("application/octet-stream")
                .body(bytes.to_vec().into())
                .send()
                .await
                .map_err(|e| crate::aws_error::explain(&format!("s3:PutObject on {url}"), e))?;
            Ok("uploaded")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model_lock::ModelFormat;

    #[test]
    fn s3_urls() {
        let loc = parse_s3_url("s3://models/prod/v1/").unwrap();
        assert_eq!(loc.bucket, "models");
        assert_eq!(loc.prefix, "prod/v1");
        assert_eq!(loc.key("lr", "AB", ModelFormat::Onnx), "prod/v1/lr/ab.onnx");
        assert_eq!(
            loc.key("lr", "AB", ModelFormat::Nnef),
            "prod/v1/lr/ab.nnef.tar"
        );
        assert_eq!(parse_s3_url("s3://models").unwrap().prefix, "");
        assert!(parse_s3_url("s3:///x").is_err());
        assert!(parse_s3_url("https://x/y").is_err());
    }
}
