//! The code `model-pack/build.rs` generates from a packed directory. Lives here, not in the
//! build script, so it can be unit-tested without running cargo.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{LockFile, LOCK_FILE_NAME};

/// What the build script needs to do with the result.
#[derive(Debug)]
pub struct Generated {
    /// Rust source defining `pub static PACKED: PackedModels`.
    pub code: String,
    /// Files whose change must re-run the build script.
    pub watched: Vec<PathBuf>,
    /// A warning to show (no lock: an empty registry).
    pub warning: Option<String>,
}

/// Generates the embedding code for the packed models in `dir`. A lock entry whose file
/// is missing or does not match the lock is an error telling the user to re-pack, so a
/// binary never carries bytes that would only be rejected at its first cold start.
pub fn generate(dir: &Path) -> Result<Generated, String> {
    let lock_path = dir.join(LOCK_FILE_NAME);
    // The directory is watched too, so creating the lock later triggers a rebuild.
    let mut watched = vec![dir.to_path_buf(), lock_path.clone()];
    let mut warning = None;
    let lock = if lock_path.exists() {
        LockFile::read(&lock_path).map_err(|e| e.to_string())?
    } else {
        warning = Some(format!(
            "no {} found: building with no embedded models (the function will rely on the EFS/S3 fallback). Run `cargo xtask pack-models` to embed models.",
            lock_path.display()
        ));
        LockFile::new()
    };

    let mut code = String::new();
    code.push_str("pub static PACKED: PackedModels = PackedModels {\n");
    writeln!(code, "    default_model: {:?},", lock.default).unwrap();
    code.push_str("    models: &[\n");
    for model in &lock.models {
        let bytes = if model.embedded() {
            let abs = checked_path(dir, &model.file, &model.name, &model.sha256, model.size)?;
            watched.push(abs.clone().into());
            format!("Some(include_bytes_aligned::include_bytes_aligned!(64, {abs:?}))")
        } else {
            "None".to_string()
        };
        // Tokenizers are embedded even for `embed = false` models: they are small and the
        // fallback stores hold only model files.
        let tokenizer = match &model.tokenizer {
            Some(t) => {
                let abs = checked_path(dir, &t.file, &model.name, &t.sha256, t.size)?;
                watched.push(abs.clone().into());
                format!("Some(include_bytes!({abs:?}))")
            }
            None => "None".to_string(),
        };
        writeln!(
            code,
            "        EmbeddedModel {{ name: {:?}, sha256: {:?}, size: {}, bytes: {bytes}, tokenizer: {tokenizer}, entry_json: {:?} }},",
            model.name,
            model.sha256,
            model.size,
            model.to_json()
        )
        .unwrap();
    }
    code.push_str("    ],\n};\n");
    Ok(Generated {
        code,
        watched,
        warning,
    })
}

/// The absolute path of a packed file, for `include_bytes!`, once it matches the lock.
fn checked_path(
    dir: &Path,
    file: &str,
    name: &str,
    sha256: &str,
    size: u64,
) -> Result<String, String> {
    let path = dir.join(file);
    check_file(&path, name, sha256, size)?;
    let abs = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    abs.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{} is not a UTF-8 path", abs.display()))
}

fn check_file(path: &Path, name: &str, sha256: &str, size: u64) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "model {name:?}: packed file {} is listed in the lock but cannot be read ({e}). Run `cargo xtask pack-models`.",
            path.display()
        )
    })?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if bytes.len() as u64 != size || actual != sha256 {
        return Err(format!(
            "model {name:?}: packed file {} does not match the lock (lock: {sha256}, {size} bytes; file: {actual}, {} bytes). Run `cargo xtask pack-models`.",
            path.display(),
            bytes.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelEntry, LOCK_VERSION};

    fn lock_with(file: &str, sha256: String, size: u64, embed: bool) -> LockFile {
        LockFile {
            version: LOCK_VERSION,
            default: Some("m".into()),
            manifest_sha256: None,
            models: vec![ModelEntry {
                name: "m".into(),
                file: file.into(),
                format: Default::default(),
                sha256,
                size,
                source_sha256: None,
                external_data_sha256: Default::default(),
                artifact: Default::default(),
                embed,
                labels: vec![],
                class_labels: None,
                inputs: vec![],
                outputs: vec![],
                tokenizer: None,
                pipeline: None,
                limits: Default::default(),
                memory: None,
                constants: Default::default(),
                plans: Default::default(),
            }],
        }
    }

    #[test]
    fn no_lock_is_an_empty_registry_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(dir.path()).unwrap();
        assert!(g.warning.unwrap().contains("cargo xtask pack-models"));
        assert!(g.code.contains("models: &[\n    ],"));
    }

    #[test]
    fn missing_file_names_it_and_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_with("m.onnx", "00".repeat(32), 3, true);
        std::fs::write(dir.path().join(LOCK_FILE_NAME), lock.to_toml()).unwrap();
        let err = generate(dir.path()).unwrap_err();
        assert!(
            err.contains("m.onnx") && err.contains("cargo xtask pack-models"),
            "{err}"
        );
    }

    #[test]
    fn stale_file_is_an_error_and_good_file_is_embedded_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = b"abc";
        let sha = hex::encode(Sha256::digest(bytes));
        std::fs::write(dir.path().join("m.onnx"), b"abd").unwrap();
        let lock = lock_with("m.onnx", sha.clone(), 3, true);
        std::fs::write(dir.path().join(LOCK_FILE_NAME), lock.to_toml()).unwrap();
        let err = generate(dir.path()).unwrap_err();
        assert!(err.contains("does not match the lock"), "{err}");

        std::fs::write(dir.path().join("m.onnx"), bytes).unwrap();
        let g = generate(dir.path()).unwrap();
        assert!(g.warning.is_none());
        assert!(g.code.contains("include_bytes_aligned!(64,"), "{}", g.code);
        assert!(g.code.contains(&sha));
        assert!(g.code.contains("default_model: Some(\"m\")"));
    }

    #[test]
    fn not_embedded_models_carry_no_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_with("absent.onnx", "00".repeat(32), 3, false);
        std::fs::write(dir.path().join(LOCK_FILE_NAME), lock.to_toml()).unwrap();
        let g = generate(dir.path()).unwrap();
        assert!(g.code.contains("bytes: None"));
    }
}
