//! The S3 store: `s3://<bucket>/<prefix>/<name>/<sha256>.onnx`, downloaded into `/tmp` and
//! hashed while streaming; only a copy with the build's hash is kept or used.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::error::DisplayErrorContext;
use sha2::{Digest, Sha256};

use model_lock::ModelFormat;

use super::error::StoreError;
use crate::checksum::{self, HashMismatch};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without leading or trailing slashes; may be empty.
    pub prefix: String,
}

impl S3Location {
    pub fn key(&self, name: &str, sha256: &str, format: ModelFormat) -> String {
        let rel = super::relative_path(name, sha256, format);
        if self.prefix.is_empty() {
            rel
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }
}

/// An S3 client from the environment (default credential chain and region), with bounded
/// timeouts. A custom endpoint (`AWS_ENDPOINT_URL[_S3]`, an S3-compatible store or a local
/// test server on an IP address) gets path-style addressing, which such servers need.
pub async fn client(connect: Duration, read: Duration) -> aws_sdk_s3::Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(connect)
        .read_timeout(read)
        .build();
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    let mut conf = aws_sdk_s3::config::Builder::from(&shared);
    if std::env::var_os("AWS_ENDPOINT_URL").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
    {
        conf = conf.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// A verified copy of the model: the one a warm container already has in `tmp_dir`, or a
/// fresh download, within `budget`.
pub(crate) fn fetch(
    location: &S3Location,
    tmp_dir: &Path,
    expected: super::Expected,
    budget: Duration,
) -> Result<Vec<u8>, StoreError> {
    let super::Expected {
        name,
        sha256,
        size,
        format,
    } = expected;
    let cached = tmp_dir.join(format!(
        "{}.{}",
        sha256.to_ascii_lowercase(),
        format.extension()
    ));
    let cached_len = std::fs::metadata(&cached)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    if let Some(bytes) = cached_len
        .filter(|n| *n == size)
        .and_then(|_| std::fs::read(&cached).ok())
    {
        if checksum::verify_sha256(&bytes, sha256).is_ok() {
            tracing::info!(model = name, path = %cached.display(), "reusing the verified /tmp copy");
            return Ok(bytes);
        }
        // Only verified files are renamed into place, so this is outside interference.
        tracing::warn!(model = name, path = %cached.display(), "discarding a /tmp copy with the wrong hash");
        let _ = std::fs::remove_file(&cached);
    }
    if budget.is_zero() {
        return Err(StoreError::NoTimeLeft);
    }
    let key = location.key(name, sha256, format);
    let url = format!("s3://{}/{key}", location.bucket);
    let download = download(location, key, sha256, size, cached, url.clone());
    run_to_completion(async move {
        match tokio::time::timeout(budget, download).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::OutOfTime {
                place: Some(url),
                budget,
            }),
        }
    })
}

async fn download(
    location: &S3Location,
    key: String,
    sha256: &str,
    size: u64,
    cached: PathBuf,
    url: String,
) -> Result<Vec<u8>, StoreError> {
    // The SDK retries connection failures and 5xx itself (3 attempts); the budget bounds it.
    let client = client(Duration::from_secs(3), Duration::from_secs(20)).await;
    let mut obj = client
        .get_object()
        .bucket(&location.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| StoreError::S3 {
            place: url.clone(),
            detail: DisplayErrorContext(&e).to_string(),
        })?;
    // The lock's size, not the store's word, decides what is reserved and read.
    if let Some(len) = obj
        .content_length()
        .filter(|n| u64::try_from(*n).ok() != Some(size))
    {
        return Err(StoreError::WrongSize {
            place: url,
            actual: len.max(0) as u64,
            expected: size,
            then: "not downloaded",
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    let mut hasher = Sha256::new();
    let mut tmp = staging_file(&cached);
    while let Some(chunk) = obj.body.try_next().await.map_err(|e| StoreError::S3 {
        place: url.clone(),
        detail: format!("reading the body: {e}"),
    })? {
        if (bytes.len() + chunk.len()) as u64 > size {
            return Err(StoreError::TooLong {
                place: url,
                expected: size,
            });
        }
        hasher.update(&chunk);
        bytes.extend_from_slice(&chunk);
        if let Some(file) = tmp.as_mut() {
            if let Err(e) = file.write_all(&chunk) {
                tracing::warn!(error = %e, "cannot keep a /tmp copy; serving from memory only");
                tmp = None;
            }
        }
    }
    let actual = hex::encode(hasher.finalize());
    if !actual.eq_ignore_ascii_case(sha256) {
        // The staging file is deleted when dropped: a wrong copy is never kept.
        return Err(StoreError::WrongContents {
            place: url,
            mismatch: HashMismatch {
                expected: sha256.to_string(),
                actual,
            },
        });
    }
    if let Some(file) = tmp {
        if let Err(e) = file.persist(&cached) {
            tracing::warn!(error = %e.error, path = %cached.display(), "cannot keep the /tmp copy");
        }
    }
    Ok(bytes)
}

/// A temporary file next to `cached`, so the final rename stays on one filesystem. `None`
/// when `/tmp` is not writable: the download still serves, it just is not kept.
fn staging_file(cached: &Path) -> Option<tempfile::NamedTempFile> {
    let dir = cached.parent()?;
    let made = std::fs::create_dir_all(dir).and_then(|_| tempfile::NamedTempFile::new_in(dir));
    match made {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot stage a /tmp copy");
            None
        }
    }
}

/// Runs `fut` on a private single-threaded runtime in a helper thread. The fallback is
/// called from synchronous code that may itself run inside the function's async runtime,
/// where blocking on a nested runtime is not allowed; it is rare and one event runs at a
/// time, so parking the caller for its duration costs nothing.
fn run_to_completion<F>(fut: F) -> Result<Vec<u8>, StoreError>
where
    F: Future<Output = Result<Vec<u8>, StoreError>> + Send,
{
    // The caller's span (the invocation's, with its request id) goes along to the thread.
    let span = tracing::Span::current();
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let _in_span = span.enter();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|_| StoreError::Worker("cannot start the runtime for S3"))?
                    .block_on(fut)
            })
            .join()
            .unwrap_or(Err(StoreError::Worker("the S3 download thread panicked")))
    })
}
