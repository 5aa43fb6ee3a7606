//! Generates `packed_models.rs` from the packed-models lock: one `EmbeddedModel` per
//! entry, bytes included 64-byte aligned, with the SHA-256 the binary checks at init.
//! The generation itself lives in `model_lock::codegen` (unit-tested there).

use std::path::{Path, PathBuf};

fn main() {
    // build-helper has no env-var variant of rerun-if.
    println!("cargo:rerun-if-env-changed=MODEL_PACK_DIR");
    let dir = match std::env::var_os("MODEL_PACK_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/packed"),
    };
    let generated = match model_lock::codegen::generate(&dir) {
        Ok(g) => g,
        Err(message) => {
            // A build error that says what to do, not a panic backtrace.
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    };
    for path in &generated.watched {
        build_helper::rerun_if_changed(path);
    }
    if let Some(w) = &generated.warning {
        build_helper::warning(w);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("packed_models.rs");
    if let Err(e) = std::fs::write(&out, generated.code) {
        eprintln!("error: cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
}
