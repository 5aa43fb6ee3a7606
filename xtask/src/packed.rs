//! Whether models/packed/ is what packing the manifest would write, so `local` can skip a
//! pack (and the light xtask the full one) when nothing changed.

use std::path::Path;

use anyhow::{Context, Result};
use model_lock::{LockFile, LOCK_FILE_NAME};
use sha2::{Digest, Sha256};

/// SHA-256 of the manifest's bytes, as the lock records it (`manifest_sha256`).
pub fn manifest_sha256(manifest: &Path) -> Result<String> {
    let bytes = std::fs::read(manifest)
        .with_context(|| format!("cannot read the manifest {}", manifest.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// True when `packed`'s lock was written from this very manifest and every file it lists
/// is there at its recorded size (the build and the function check the hashes).
pub fn is_current(manifest: &Path, packed: &Path) -> Result<bool> {
    let lock_path = packed.join(LOCK_FILE_NAME);
    if !lock_path.exists() {
        return Ok(false);
    }
    let lock = LockFile::read(&lock_path)?;
    if lock.manifest_sha256.as_deref() != Some(manifest_sha256(manifest)?.as_str()) {
        return Ok(false);
    }
    let has = |file: &str, size: u64| {
        std::fs::metadata(packed.join(file)).is_ok_and(|m| m.is_file() && m.len() == size)
    };
    Ok(lock
        .models
        .iter()
        .all(|m| has(&m.file, m.size) && m.tokenizer.as_ref().is_none_or(|t| has(&t.file, t.size))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed default models were packed from the committed manifest: a fresh clone's
    /// `cargo xtask local` serves them without the full xtask.
    #[test]
    fn the_committed_default_models_are_current() {
        let root = crate::workspace::root();
        assert!(is_current(
            &root.join("models/models.toml"),
            &root.join("models/packed")
        )
        .unwrap());
    }
}
