//! Where a model comes from when the binary cannot vouch for it: its embedded copy failed
//! the hash compiled into the binary, or it was packed with `embed = false`. EFS first (a
//! mounted directory, no network round trip per byte), then S3. Every copy is checked
//! against the build's hash; the stores are never trusted to say what the right bytes are.
//!
//! Layout, the same in both stores (what `cargo xtask publish-models` writes):
//! `<root>/<model name>/<sha256>.onnx`, where root is `MODEL_EFS_DIR` or
//! `s3://MODEL_S3_BUCKET/MODEL_S3_PREFIX`. The hash in the path lets two builds with
//! different versions of a model share a store without overwriting each other.

pub mod efs;
pub mod s3;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Which stores to try, and how long all of them together may take for one model.
#[derive(Debug, Clone)]
pub struct FallbackConfig {
    /// `MODEL_EFS_DIR` (default `/mnt/models`): the EFS mount.
    pub efs_dir: Option<PathBuf>,
    /// `MODEL_S3_BUCKET` + `MODEL_S3_PREFIX`.
    pub s3: Option<s3::S3Location>,
    /// Where S3 downloads are kept (`MODEL_TMP_DIR`, default `/tmp/onnx-models`): `/tmp` is
    /// Lambda's only writable place and survives between invocations of a warm container.
    pub tmp_dir: PathBuf,
    /// `MODEL_FALLBACK_BUDGET_SECS` (default 60): the whole fallback for one model gives up
    /// after this, so a broken store cannot eat the function's timeout.
    pub budget: Duration,
}

pub const DEFAULT_EFS_DIR: &str = "/mnt/models";
pub const DEFAULT_TMP_DIR: &str = "/tmp/onnx-models";
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(60);

impl Default for FallbackConfig {
    fn default() -> Self {
        FallbackConfig {
            efs_dir: Some(PathBuf::from(DEFAULT_EFS_DIR)),
            s3: None,
            tmp_dir: PathBuf::from(DEFAULT_TMP_DIR),
            budget: DEFAULT_BUDGET,
        }
    }
}

impl FallbackConfig {
    /// No store at all: a model that is not embedded intact cannot be served.
    pub fn disabled() -> Self {
        FallbackConfig {
            efs_dir: None,
            s3: None,
            ..Default::default()
        }
    }

    /// Reads the `MODEL_*` settings through `var` (normally `std::env::var`). An empty
    /// `MODEL_EFS_DIR` turns EFS off.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut config = FallbackConfig::default();
        if let Some(dir) = var("MODEL_EFS_DIR") {
            config.efs_dir = (!dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()));
        }
        if let Some(bucket) = var("MODEL_S3_BUCKET").filter(|b| !b.trim().is_empty()) {
            config.s3 = Some(s3::S3Location {
                bucket: bucket.trim().to_string(),
                prefix: var("MODEL_S3_PREFIX")
                    .unwrap_or_default()
                    .trim_matches('/')
                    .to_string(),
            });
        }
        if let Some(dir) = var("MODEL_TMP_DIR").filter(|d| !d.trim().is_empty()) {
            config.tmp_dir = PathBuf::from(dir.trim());
        }
        if let Some(secs) = var("MODEL_FALLBACK_BUDGET_SECS") {
            let parsed: f64 = secs.trim().parse().map_err(|_| {
                format!("MODEL_FALLBACK_BUDGET_SECS={secs:?}: expected a number of seconds")
            })?;
            if !(parsed.is_finite() && parsed > 0.0 && parsed <= 900.0) {
                return Err(format!(
                    "MODEL_FALLBACK_BUDGET_SECS={secs:?}: expected more than 0 and at most 900 seconds"
                ));
            }
            config.budget = Duration::from_secs_f64(parsed);
        }
        Ok(config)
    }

    pub fn is_disabled(&self) -> bool {
        self.efs_dir.is_none() && self.s3.is_none()
    }
}

/// A verified copy of a model from a fallback store.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// `"efs"` or `"s3"`.
    pub source: &'static str,
}

/// Every store failed; one line per store tried, saying why.
#[derive(Debug, Clone, PartialEq)]
pub struct Exhausted {
    pub tried: Vec<String>,
}

/// Tries EFS, then S3, for `name` with the build's `sha256`, within the budget.
pub fn fetch(config: &FallbackConfig, name: &str, sha256: &str) -> Result<Fetched, Exhausted> {
    let started = Instant::now();
    let mut tried = Vec::new();
    match &config.efs_dir {
        Some(dir) => match efs::read(dir, name, sha256) {
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
            match s3::fetch(location, &config.tmp_dir, name, sha256, remaining) {
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

/// `<name>/<sha256>.onnx`: the path of a model inside either store. Both parts come from
/// the lock compiled into the binary (names are checked against the name rule there too),
/// never from a request.
pub fn relative_path(name: &str, sha256: &str) -> String {
    format!("{name}/{}.onnx", sha256.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn settings_from_the_environment() {
        let c = FallbackConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(
            c.efs_dir.as_deref(),
            Some(std::path::Path::new("/mnt/models"))
        );
        assert!(c.s3.is_none());
        assert_eq!(c.budget, DEFAULT_BUDGET);

        let c = FallbackConfig::from_vars(vars(&[
            ("MODEL_EFS_DIR", ""),
            ("MODEL_S3_BUCKET", "models"),
            ("MODEL_S3_PREFIX", "/prod/v1/"),
            ("MODEL_FALLBACK_BUDGET_SECS", "2.5"),
        ]))
        .unwrap();
        assert!(c.efs_dir.is_none());
        let s3 = c.s3.unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("models", "prod/v1")
        );
        assert_eq!(s3.key("m", "AB"), "prod/v1/m/ab.onnx");
        assert_eq!(c.budget, Duration::from_millis(2500));

        for bad in ["soon", "0", "-1", "NaN", "901"] {
            let e = FallbackConfig::from_vars(vars(&[("MODEL_FALLBACK_BUDGET_SECS", bad)]))
                .unwrap_err();
            assert!(e.contains("MODEL_FALLBACK_BUDGET_SECS"), "{e}");
        }
    }
}
