//! Where a model comes from when the binary cannot vouch for it: its embedded copy failed
//! the hash compiled into the binary, it was packed with `embed = false`, or it ships in the
//! container image beside the binary (`artifact = "image"`). The image's own directory first
//! (the function's read-only file system), then EFS (a mounted directory, no network round
//! trip per byte), then S3. Every copy is checked against the build's hash; the stores are
//! never trusted to say what the right bytes are.
//!
//! Layout, the same in every store (what `cargo xtask publish-models` and `build --image`
//! write): `<root>/<model name>/<sha256>.onnx`, where root is `MODEL_IMAGE_DIR`,
//! `MODEL_EFS_DIR` or `s3://MODEL_S3_BUCKET/MODEL_S3_PREFIX`. The hash in the path lets two
//! builds with different versions of a model share a store without overwriting each other.

mod directory;
mod error;
pub mod s3;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use model_lock::ModelFormat;

use crate::settings;
use error::StoreError;

/// Which stores to try, and how long all of them together may take for one model. Read from
/// the environment by [`crate::Settings`].
#[derive(Debug, Clone)]
pub struct FallbackConfig {
    /// `MODEL_IMAGE_DIR`: the models a container image carries (set by the image's config).
    pub image_dir: Option<PathBuf>,
    /// `MODEL_EFS_DIR`: the EFS mount.
    pub efs_dir: Option<PathBuf>,
    /// `MODEL_S3_BUCKET` + `MODEL_S3_PREFIX`.
    pub s3: Option<s3::S3Location>,
    /// Where S3 downloads are kept (`MODEL_TMP_DIR`): `/tmp` is Lambda's only writable place
    /// and survives between invocations of a warm container.
    pub tmp_dir: PathBuf,
    /// `MODEL_FALLBACK_BUDGET_SECS`: the whole fallback for one model gives up after this,
    /// so a broken store cannot eat the function's timeout.
    pub budget: Duration,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            image_dir: None,
            efs_dir: Some(PathBuf::from(settings::DEFAULT_EFS_DIR)),
            s3: None,
            tmp_dir: PathBuf::from(settings::DEFAULT_TMP_DIR),
            budget: settings::DEFAULT_BUDGET,
        }
    }
}

impl FallbackConfig {
    /// No store at all: a model that is not embedded intact cannot be served.
    pub fn disabled() -> Self {
        FallbackConfig {
            image_dir: None,
            efs_dir: None,
            s3: None,
            ..Default::default()
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.image_dir.is_none() && self.efs_dir.is_none() && self.s3.is_none()
    }
}

/// A verified copy of a model from a fallback store.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub bytes: Vec<u8>,
    /// `"image"`, `"efs"` or `"s3"`.
    pub source: &'static str,
}

/// Every store failed; one line per store tried, saying why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exhausted {
    pub tried: Vec<String>,
}

/// What the build says the model is: a copy must have this hash and this size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    pub name: &'a str,
    pub sha256: &'a str,
    pub size: u64,
    pub format: ModelFormat,
}

/// Tries the image's directory, then EFS, then S3, for the expected model; EFS and S3
/// within the budget.
pub(crate) fn fetch(config: &FallbackConfig, expected: Expected) -> Result<Fetched, Exhausted> {
    let name = expected.name;
    let mut tried = Vec::new();
    // The image's own file system: local and read-only, it cannot hang as a network mount
    // can, so it is read in place, outside the budget (a multi-GB model takes what reading
    // and hashing it takes; the budget is for stores that may never answer).
    if let Some(dir) = &config.image_dir {
        let rel = relative_path(expected.name, expected.sha256, expected.format);
        match directory::read(dir, &rel, expected.sha256, expected.size) {
            Ok(bytes) => {
                return Ok(Fetched {
                    bytes,
                    source: "image",
                })
            }
            Err(why) => {
                tracing::warn!(model = name, source = "image", error = %why, "image copy failed");
                tried.push(format!("image: {why}"));
            }
        }
    }
    if config.budget.is_zero() {
        tried.push("no time left in the fallback budget; EFS and S3 were not tried".into());
        return Err(Exhausted { tried });
    }
    let started = Instant::now();
    match &config.efs_dir {
        Some(dir) => match read_efs_within(dir, expected, config.budget) {
            Ok(bytes) => {
                return Ok(Fetched {
                    bytes,
                    source: "efs",
                })
            }
            Err(why) => {
                tracing::warn!(model = name, source = "efs", error = %why, "fallback source failed");
                tried.push(format!("efs: {why}"));
            }
        },
        None => tried.push("efs: not configured (MODEL_EFS_DIR is empty)".to_string()),
    }
    match &config.s3 {
        Some(location) => {
            let remaining = config.budget.saturating_sub(started.elapsed());
            match s3::fetch(location, &config.tmp_dir, expected, remaining) {
                Ok(bytes) => {
                    return Ok(Fetched {
                        bytes,
                        source: "s3",
                    })
                }
                Err(why) => {
                    tracing::warn!(model = name, source = "s3", error = %why, "fallback source failed");
                    tried.push(format!("s3: {why}"));
                }
            }
        }
        None => tried.push("s3: not configured (MODEL_S3_BUCKET is not set)".to_string()),
    }
    Err(Exhausted { tried })
}

/// The EFS read on a helper thread, given up after `budget`: a hung NFS mount must not hold
/// init or a request past it. An abandoned read finishes (or hangs) on its own thread.
fn read_efs_within(
    dir: &std::path::Path,
    expected: Expected,
    budget: Duration,
) -> Result<Vec<u8>, StoreError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let dir = dir.to_path_buf();
    let rel = relative_path(expected.name, expected.sha256, expected.format);
    let (sha256, size) = (expected.sha256.to_string(), expected.size);
    std::thread::Builder::new()
        .name("efs-read".into())
        .spawn(move || {
            let _ = tx.send(directory::read(&dir, &rel, &sha256, size));
        })
        .map_err(|_| StoreError::Worker("cannot start the EFS read"))?;
    rx.recv_timeout(budget)
        .unwrap_or(Err(StoreError::OutOfTime {
            place: None,
            budget,
        }))
}

/// `<name>/<sha256>.onnx` (or `.nnef.tar` for the compiled form): the path of a model
/// inside either store. Every part comes from the lock compiled into the binary (names are
/// checked against the name rule there too), never from a request.
pub fn relative_path(name: &str, sha256: &str, format: ModelFormat) -> String {
    format!(
        "{name}/{}.{}",
        sha256.to_ascii_lowercase(),
        format.extension()
    )
}
