//! `cargo xtask pack-models`: manifest in, verified packed files and a lock out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use inference_core::loader::{self, InputOverride};
use inference_core::{checksum, EmbeddedModel, LoadMode, PackedModels, Registry};
use model_lock::{Dim, LockFile, ModelEntry, TensorSpec, LOCK_FILE_NAME};
use serde_json::{json, Value};

use crate::manifest::{Manifest, ModelSpec};
use crate::workspace;

#[derive(Args, Debug, Clone)]
pub struct PackArgs {
    /// The manifest to read.
    #[arg(long, default_value_os_t = workspace::default_manifest())]
    pub manifest: PathBuf,
    /// Where the packed files and models.lock go.
    #[arg(long, default_value_os_t = workspace::default_packed_dir())]
    pub out: PathBuf,
    /// Accept a source whose hash differs from the one recorded in the lock, and re-pin it.
    #[arg(long)]
    pub update: bool,
}

struct Packed {
    entry: ModelEntry,
    bytes: Vec<u8>,
    source_size: u64,
    load_ms: f64,
}

pub fn run(args: &PackArgs) -> Result<LockFile> {
    let manifest = Manifest::read(&args.manifest)?;
    let lock_path = args.out.join(LOCK_FILE_NAME);
    let old_lock = if lock_path.exists() {
        Some(LockFile::read(&lock_path)?)
    } else {
        None
    };

    // Everything is fetched and validated before anything is written.
    let mut packed = Vec::new();
    for spec in &manifest.models {
        let old = old_lock.as_ref().and_then(|l| l.model(&spec.name));
        let p = pack_one(&manifest, spec, old, args.update)
            .with_context(|| format!("model {:?}", spec.name))?;
        packed.push(p);
    }

    let lock = LockFile {
        version: model_lock::LOCK_VERSION,
        default: manifest.default.clone(),
        models: packed.iter().map(|p| p.entry.clone()).collect(),
    };
    write_out(&args.out, &lock, &packed, old_lock.as_ref())?;
    print_table(&packed);
    eprintln!("wrote {}", lock_path.display());
    Ok(lock)
}

fn fetch(manifest: &Manifest, spec: &ModelSpec) -> Result<Vec<u8>> {
    let mut failures = Vec::new();
    for source in &spec.sources {
        let result = if let Some(path) = source.strip_prefix("file://") {
            read_file(Path::new(path))
        } else if source.contains("://") {
            Err(anyhow!(
                "this version of pack-models reads local files only"
            ))
        } else {
            read_file(&manifest.resolve(source))
        };
        match result {
            Ok(bytes) => return Ok(bytes),
            Err(e) => failures.push(format!("  {source}: {e:#}")),
        }
    }
    bail!("no source could be read:\n{}", failures.join("\n"))
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn pack_one(
    manifest: &Manifest,
    spec: &ModelSpec,
    old: Option<&ModelEntry>,
    update: bool,
) -> Result<Packed> {
    let bytes = fetch(manifest, spec)?;
    let source_sha = checksum::sha256_hex(&bytes);
    if let Some(pinned) = &spec.sha256 {
        if !pinned.eq_ignore_ascii_case(&source_sha) {
            bail!("source hash mismatch: manifest pins sha256 {pinned}, fetched file has {source_sha}");
        }
    } else if let Some(recorded) = old.and_then(|o| o.source_sha256.as_deref()) {
        if recorded != source_sha && !update {
            bail!(
                "source changed: models.lock recorded sha256 {recorded}, fetched file has {source_sha}. Pass --update to accept the new file."
            );
        }
    }

    let overrides: Vec<InputOverride> = spec
        .inputs
        .iter()
        .map(|(name, i)| InputOverride {
            name: name.clone(),
            shape: i.shape.clone(),
        })
        .collect();
    let (inputs, outputs) = loader::inspect(&bytes, &overrides).map_err(anyhow::Error::msg)?;
    let entry = ModelEntry {
        name: spec.name.clone(),
        file: format!("{}.onnx", spec.name),
        sha256: checksum::sha256_hex(&bytes),
        size: bytes.len() as u64,
        source_sha256: Some(source_sha),
        embed: spec.embed,
        labels: spec.labels.clone(),
        inputs,
        outputs,
    };

    let sample = match &spec.sample_request {
        Some(p) => {
            let path = manifest.resolve(p);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read sample_request {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("sample_request {} is not JSON", path.display()))?
        }
        None => generated_request(&entry.inputs),
    };
    let load_ms = validate(&entry, &bytes, sample)?;
    Ok(Packed {
        source_size: bytes.len() as u64,
        entry,
        bytes,
        load_ms,
    })
}

/// A request of zeros, one per input, symbolic dims set to 1.
fn generated_request(inputs: &[TensorSpec]) -> Value {
    fn zeros(shape: &[Dim]) -> Value {
        match shape.split_first() {
            None => json!(0),
            Some((d, rest)) => {
                let n = match d {
                    Dim::Fixed(n) => *n as usize,
                    Dim::Symbol(_) => 1,
                };
                Value::Array((0..n).map(|_| zeros(rest)).collect())
            }
        }
    }
    let inputs: serde_json::Map<String, Value> = inputs
        .iter()
        .map(|s| (s.name.clone(), zeros(&s.shape)))
        .collect();
    json!({ "inputs": inputs })
}

/// Loads the packed bytes exactly as the function will (checksum, decode, optimize) and
/// answers the sample request. Returns the load time in ms.
fn validate(entry: &ModelEntry, bytes: &[u8], mut sample: Value) -> Result<f64> {
    // The registry wants 'static data, as the binary provides; leaking at pack time is fine.
    let bytes: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
    let sha: &'static str = Box::leak(entry.sha256.clone().into_boxed_str());
    let name: &'static str = Box::leak(entry.name.clone().into_boxed_str());
    let json: &'static str = Box::leak(entry.to_json().into_boxed_str());
    let models: &'static [EmbeddedModel] = Box::leak(Box::new([EmbeddedModel {
        name,
        sha256: sha,
        size: entry.size,
        bytes: Some(bytes),
        entry_json: json,
    }]));
    let started = Instant::now();
    let registry = Registry::new(
        &PackedModels {
            default_model: None,
            models,
        },
        LoadMode::Eager,
    )
    .map_err(|e| anyhow!("the packed model does not load: {e}"))?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Value::Object(obj) = &mut sample {
        obj.insert("model".into(), json!(entry.name));
    }
    registry
        .handle_value(sample)
        .map_err(|e| anyhow!("the packed model does not answer its sample request: {e}"))?;
    Ok(load_ms)
}

/// Stage every file next to its destination, then rename into place; the lock goes last,
/// so an interrupted run leaves the previous lock describing files that still exist.
fn write_out(out: &Path, lock: &LockFile, packed: &[Packed], old: Option<&LockFile>) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for p in packed {
        write_if_changed(&out.join(&p.entry.file), &p.bytes)?;
    }
    write_if_changed(&out.join(LOCK_FILE_NAME), lock.to_toml().as_bytes())?;
    if let Some(old) = old {
        for stale in old.models.iter().filter(|m| lock.model(&m.name).is_none()) {
            let _ = std::fs::remove_file(out.join(&stale.file));
        }
    }
    Ok(())
}

/// Unchanged files keep their mtime, so cargo does not re-embed them and relink.
fn write_if_changed(dest: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(dest).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    write_atomic(dest, bytes)
}

pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    // Temp files are created 0600; packed files are ordinary readable outputs.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", dest.display()))?;
    tmp.persist(dest)
        .with_context(|| format!("cannot move the new file into {}", dest.display()))?;
    Ok(())
}

fn print_table(packed: &[Packed]) {
    println!(
        "{:<24} {:>12} {:>12} {:>7} {:>10}",
        "model", "source", "packed", "ratio", "load ms"
    );
    for p in packed {
        println!(
            "{:<24} {:>12} {:>12} {:>7.2} {:>10.1}",
            p.entry.name,
            p.source_size,
            p.bytes.len(),
            p.bytes.len() as f64 / p.source_size.max(1) as f64,
            p.load_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "default/breast_cancer_lr.onnx";

    fn model_path() -> PathBuf {
        workspace::root().join("models").join(MODEL)
    }

    fn setup(manifest: &str) -> (tempfile::TempDir, PackArgs) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(model_path(), dir.path().join("model.onnx")).unwrap();
        std::fs::write(dir.path().join("models.toml"), manifest).unwrap();
        let args = PackArgs {
            manifest: dir.path().join("models.toml"),
            out: dir.path().join("packed"),
            update: false,
        };
        (dir, args)
    }

    fn err(args: &PackArgs) -> String {
        format!("{:#}", run(args).unwrap_err())
    }

    #[test]
    fn packs_falls_through_mirrors_and_records_the_source_hash() {
        let (dir, args) = setup(
            "[[model]]\nname = \"m\"\nsources = [\"missing.onnx\", \"model.onnx\"]\nlabels = [\"a\", \"b\"]\n",
        );
        let lock = run(&args).unwrap();
        let sha = checksum::sha256_hex(&std::fs::read(model_path()).unwrap());
        let m = &lock.models[0];
        assert_eq!(m.source_sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(
            m.inputs[0].shape,
            vec![Dim::Symbol("batch".into()), Dim::Fixed(30)]
        );
        assert_eq!(
            LockFile::read(&args.out.join(LOCK_FILE_NAME)).unwrap(),
            lock
        );
        assert!(args.out.join("m.onnx").exists());

        // A re-pack with nothing changed rewrites nothing (no rebuild, no relink).
        let mtime = |f: &str| {
            std::fs::metadata(args.out.join(f))
                .unwrap()
                .modified()
                .unwrap()
        };
        let before = (mtime(LOCK_FILE_NAME), mtime("m.onnx"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(run(&args).unwrap(), lock);
        assert_eq!((mtime(LOCK_FILE_NAME), mtime("m.onnx")), before);

        // Trust on first use: a different file under the same name is refused...
        std::fs::write(dir.path().join("model.onnx"), b"not the same model").unwrap();
        let e = err(&args);
        assert!(e.contains(&sha) && e.contains("--update"), "{e}");
        // ...and the lock and packed file are untouched.
        assert_eq!(
            LockFile::read(&args.out.join(LOCK_FILE_NAME)).unwrap(),
            lock
        );
        assert_eq!(
            std::fs::read(args.out.join("m.onnx")).unwrap(),
            std::fs::read(model_path()).unwrap()
        );
    }

    #[test]
    fn pinned_hash_mismatch_names_both_hashes_and_writes_nothing() {
        let wrong = "ab".repeat(32);
        let (_dir, args) = setup(&format!(
            "[[model]]\nname = \"m\"\nsources = [\"model.onnx\"]\nsha256 = \"{wrong}\"\n"
        ));
        let e = err(&args);
        let actual = checksum::sha256_hex(&std::fs::read(model_path()).unwrap());
        assert!(e.contains(&wrong) && e.contains(&actual), "{e}");
        assert!(!args.out.exists());
    }

    #[test]
    fn update_repins_on_purpose() {
        let (dir, mut args) = setup("[[model]]\nname = \"m\"\nsources = [\"model.onnx\"]\n");
        run(&args).unwrap();
        let mut bytes = std::fs::read(model_path()).unwrap();
        // Protobuf tolerates an appended unknown field (tag 15, varint 0).
        bytes.extend_from_slice(&[0x78, 0x00]);
        std::fs::write(dir.path().join("model.onnx"), &bytes).unwrap();
        assert!(err(&args).contains("--update"));
        args.update = true;
        let lock = run(&args).unwrap();
        assert_eq!(
            lock.models[0].source_sha256.as_deref(),
            Some(checksum::sha256_hex(&bytes).as_str())
        );
    }

    #[test]
    fn invalid_models_fail_at_pack_time() {
        let (dir, args) = setup("[[model]]\nname = \"m\"\nsources = [\"junk.onnx\"]\n");
        std::fs::write(dir.path().join("junk.onnx"), b"this is not ONNX").unwrap();
        let e = err(&args);
        assert!(e.contains("model \"m\"") && e.contains("ONNX"), "{e}");
        assert!(!args.out.exists());

        // A sample request the model cannot answer fails the pack.
        let (dir, args) = setup(
            "[[model]]\nname = \"m\"\nsources = [\"model.onnx\"]\nsample_request = \"bad.json\"\n",
        );
        std::fs::write(dir.path().join("bad.json"), r#"{"features": [1, 2]}"#).unwrap();
        let e = err(&args);
        assert!(
            e.contains("sample request") && e.contains("expects 30"),
            "{e}"
        );
    }

    #[test]
    fn manifest_errors_are_clear() {
        for (manifest, needle) in [
            (
                "[[model]]\nname = \"Bad/Name\"\nsources = [\"model.onnx\"]\n",
                "does not match",
            ),
            ("[[model]]\nname = \"m\"\nsources = []\n", "no sources"),
            (
                "default = \"x\"\n[[model]]\nname = \"m\"\nsources = [\"model.onnx\"]\n",
                "names no model",
            ),
            (
                "[[model]]\nname = \"m\"\nsources = [\"model.onnx\"]\nsha256 = \"xyz\"\n",
                "64 hex digits",
            ),
            (
                "[[model]]\nname = \"m\"\nsources = [\"model.onnx\"]\ncolour = 1\n",
                "unknown field",
            ),
        ] {
            let (_dir, args) = setup(manifest);
            let e = err(&args);
            assert!(e.contains(needle), "{manifest}: {e}");
        }
    }
}
