//! The content-addressed model cache: `<cache>/sha256/<hex>`. A file is only ever placed
//! there by renaming a fully written temporary file whose hash was checked, and is checked
//! again on every read (a truncated or corrupted entry is dropped and fetched again).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fetch::{check_hash, Fetched};
use crate::workspace;

pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// `$MODEL_CACHE_DIR`, else `$XDG_CACHE_HOME/onnx-lambda/model-cache`, else
    /// `target/model-cache`.
    pub fn from_env() -> Self {
        let root = if let Some(dir) = std::env::var_os("MODEL_CACHE_DIR") {
            PathBuf::from(dir)
        } else if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
            PathBuf::from(xdg).join("onnx-lambda/model-cache")
        } else {
            workspace::target_dir().join("model-cache")
        };
        Cache { root }
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    pub fn path(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(sha256.to_ascii_lowercase())
    }

    /// The cached bytes for `sha256`, if present and intact.
    pub fn get(&self, sha256: &str) -> Option<Vec<u8>> {
        let path = self.path(sha256);
        let bytes = std::fs::read(&path).ok()?;
        if inference_core::sha256_hex(&bytes).eq_ignore_ascii_case(sha256) {
            Some(bytes)
        } else {
            eprintln!("cache entry {} is corrupt: dropping it", path.display());
            let _ = std::fs::remove_file(&path);
            None
        }
    }

    /// Runs `download` into a temporary file, hashes the result and, if it matches
    /// `expected` (when given), renames it into the cache.
    pub fn fetch(
        &self,
        expected: Option<&str>,
        download: impl FnOnce(&Path) -> Result<u64>,
    ) -> Result<Fetched> {
        let tmp_dir = self.root.join("tmp");
        std::fs::create_dir_all(&tmp_dir)
            .with_context(|| format!("cannot create {}", tmp_dir.display()))?;
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir)
            .with_context(|| format!("cannot create a temporary file in {}", tmp_dir.display()))?;
        download(tmp.path())?;
        let bytes = std::fs::read(tmp.path())
            .with_context(|| format!("cannot read back {}", tmp.path().display()))?;
        let sha256 = inference_core::sha256_hex(&bytes);
        check_hash(expected, &sha256, "downloaded file")?;
        let dest = self.path(&sha256);
        std::fs::create_dir_all(dest.parent().expect("cache paths have a parent"))?;
        tmp.as_file().sync_all().ok();
        tmp.persist(&dest)
            .with_context(|| format!("cannot move the download into {}", dest.display()))?;
        Ok(Fetched { bytes, sha256 })
    }
}
