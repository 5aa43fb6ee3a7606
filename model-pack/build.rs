//! Generates `packed_models.rs`: one `EmbeddedModel` per lock entry, with the packed bytes
//! included 64-byte aligned and the SHA-256 the binary checks at init.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use model_lock::{LockFile, LOCK_FILE_NAME};
use sha2::{Digest, Sha256};

fn main() {
    if let Err(message) = generate() {
        // A build error that says what to do, not a panic backtrace.
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn packed_dir() -> PathBuf {
    // build-helper has no env-var variant.
    println!("cargo:rerun-if-env-changed=MODEL_PACK_DIR");
    match std::env::var_os("MODEL_PACK_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/packed"),
    }
}

fn generate() -> Result<(), String> {
    let dir = packed_dir();
    let lock_path = dir.join(LOCK_FILE_NAME);
    // Watch the directory too, so creating the lock later triggers a rebuild.
    build_helper::rerun_if_changed(&dir);
    build_helper::rerun_if_changed(&lock_path);

    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?)
        .join("packed_models.rs");

    let lock = if lock_path.exists() {
        LockFile::read(&lock_path).map_err(|e| e.to_string())?
    } else {
        build_helper::warning(format!(
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
        let bytes = if model.embed {
            let path = dir.join(&model.file);
            build_helper::rerun_if_changed(&path);
            check_file(&path, &model.name, &model.sha256, model.size)?;
            let abs = path
                .canonicalize()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            format!(
                "Some(include_bytes_aligned::include_bytes_aligned!(64, {:?}))",
                abs.to_str().ok_or("packed path is not UTF-8")?
            )
        } else {
            "None".to_string()
        };
        writeln!(
            code,
            "        EmbeddedModel {{ name: {:?}, sha256: {:?}, size: {}, bytes: {bytes}, entry_json: {:?} }},",
            model.name,
            model.sha256,
            model.size,
            model.to_json()
        )
        .unwrap();
    }
    code.push_str("    ],\n};\n");
    std::fs::write(&out, code).map_err(|e| format!("{}: {e}", out.display()))
}

/// A stale or missing packed file is a build error, so a binary never embeds bytes that
/// would only be rejected at its first cold start.
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
