//! `pack-models` with `s3://` sources, run as the real `cargo xtask` binary against moto's
//! S3 API on loopback.

use std::path::Path;
use std::process::{Command, Output};

use test_support::output_text;

use inference_core::sha256_hex;
use test_support::MotoServer;

fn default_model() -> Vec<u8> {
    let path = test_support::workspace_root().join("models/default/breast_cancer_lr.onnx");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pack(moto: &MotoServer, dir: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("pack-models")
        .arg("--manifest")
        .arg(dir.join("models.toml"))
        .arg("--out")
        .arg(dir.join("packed"))
        .arg("--cache-dir")
        .arg(dir.join("cache"));
    moto.configure(&mut cmd);
    cmd.output().expect("xtask runs")
}

#[test]
fn s3_sources_with_mirror_fallthrough_and_cache() {
    test_support::require_fixtures!("MOTO_SERVER");
    let mut moto = MotoServer::start();
    let model = default_model();
    moto.create_bucket("models");
    moto.put_object("models", "prod/lr.onnx", model.clone());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("models.toml"),
        // ONNX as fetched, so the packed file is the object's bytes.
        "[[model]]\nname = \"lr\"\ncompile = \"never\"\n\
         sources = [\"s3://models/prod/missing.onnx\", \"s3://models/prod/lr.onnx\"]\n",
    )
    .unwrap();
    let out = pack(&moto, dir.path());
    assert!(out.status.success(), "{}", output_text(&out));
    let lock = std::fs::read_to_string(dir.path().join("packed/models.lock")).unwrap();
    assert!(lock.contains(&sha256_hex(&model)), "{lock}");
    assert_eq!(
        std::fs::read(dir.path().join("packed/lr.onnx")).unwrap(),
        model
    );
    // The missing key was tried and reported, then the mirror served.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("prod/missing.onnx"),
        "{}",
        output_text(&out)
    );

    // S3 gone: the pinned hash (recorded in the lock) is served from the cache.
    moto.stop();
    std::fs::remove_file(dir.path().join("packed/lr.onnx")).unwrap();
    let out = pack(&moto, dir.path());
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(
        std::fs::read(dir.path().join("packed/lr.onnx")).unwrap(),
        model
    );
}

#[test]
fn unreachable_s3_fails_clearly_and_writes_nothing() {
    test_support::require_fixtures!("MOTO_SERVER");
    let mut moto = MotoServer::start();
    moto.stop();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("models.toml"),
        "[[model]]\nname = \"lr\"\nsources = [\"s3://models/lr.onnx\"]\n",
    )
    .unwrap();
    let out = pack(&moto, dir.path());
    assert!(!out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s3://models/lr.onnx") && stderr.contains("lr"),
        "{}",
        output_text(&out)
    );
    let packed = dir.path().join("packed");
    let leftovers: Vec<_> = std::fs::read_dir(&packed)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
