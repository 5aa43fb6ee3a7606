//! `cargo xtask pack-models`: manifest in, verified packed files and a lock out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use inference_core::loader::{self, InputOverride};
use inference_core::{checksum, int8, EmbeddedModel, LoadMode, PackedModels, Registry};
use model_lock::{Dim, LockFile, ModelEntry, TensorSpec, TokenizerEntry, LOCK_FILE_NAME};
use prost::Message as _;
use serde_json::{json, Value};

use crate::cache::Cache;
use crate::fetch;
use crate::manifest::{Manifest, ModelSpec, Quantize};
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
    /// The download cache (default: $MODEL_CACHE_DIR, else $XDG_CACHE_HOME/onnx-lambda/model-cache,
    /// else target/model-cache). Files there are named by their SHA-256.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

struct Packed {
    entry: ModelEntry,
    bytes: Vec<u8>,
    tokenizer: Option<Vec<u8>>,
    source_size: u64,
    load_ms: f64,
    drift: Option<Drift>,
}

/// Packs `manifest` into `out` as `cargo xtask pack-models` does by default (locked hashes
/// kept, the default download cache): what `local`, `test` and `bench` run before a build.
pub fn pack_into(manifest: PathBuf, out: PathBuf) -> Result<()> {
    run(&PackArgs {
        manifest,
        out,
        update: false,
        cache_dir: None,
    })
    .map(|_| ())
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
    let cache = match &args.cache_dir {
        Some(dir) => Cache::at(dir),
        None => Cache::from_env(),
    };
    let mut packed = Vec::new();
    for spec in &manifest.models {
        let old = old_lock.as_ref().and_then(|l| l.model(&spec.name));
        let p = pack_one(&manifest, spec, old, args.update, &cache)
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

/// The source bytes and their hash: from the cache when the expected hash is known and
/// cached (no network), otherwise from the first source that works, in order.
fn fetch_source(
    manifest: &Manifest,
    label: &str,
    sources: &[String],
    expected: Option<&str>,
    cache: &Cache,
) -> Result<(Vec<u8>, String)> {
    if let Some(sha) = expected {
        if let Some(bytes) = cache.get(sha) {
            eprintln!("{label}: source {} from the cache", &sha[..12]);
            return Ok((bytes, sha.to_ascii_lowercase()));
        }
    }
    let mut failures = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let result = if fetch::is_remote(source) {
            cache.fetch(expected, |tmp| fetch::download(source, tmp))
        } else {
            let path = match source.strip_prefix("file://") {
                Some(p) => PathBuf::from(p),
                None => manifest.resolve(source),
            };
            fetch::read_local(&path).and_then(|bytes| {
                let actual = checksum::sha256_hex(&bytes);
                match expected {
                    Some(e) if !e.eq_ignore_ascii_case(&actual) => Err(anyhow!(
                        "hash mismatch: expected sha256 {e}, file has {actual}"
                    )),
                    _ => Ok((bytes, actual)),
                }
            })
        };
        match result {
            Ok(found) => return Ok(found),
            Err(e) => {
                // Said now, so a mirror that silently rots is noticed even when the next works.
                let next = if i + 1 < sources.len() {
                    ", trying the next source"
                } else {
                    ""
                };
                eprintln!("{label}: {source} failed{next}: {e:#}");
                failures.push(format!("  {source}: {e:#}"))
            }
        }
    }
    bail!("no source could be fetched:\n{}", failures.join("\n"))
}

fn pack_one(
    manifest: &Manifest,
    spec: &ModelSpec,
    old: Option<&ModelEntry>,
    update: bool,
    cache: &Cache,
) -> Result<Packed> {
    let recorded = old
        .and_then(|o| o.source_sha256.as_deref())
        .filter(|_| !update);
    let expected = spec.sha256.as_deref().or(recorded);
    let (source, source_sha) =
        fetch_source(manifest, &spec.name, &spec.sources, expected, cache).map_err(|e| {
            if spec.sha256.is_none() && recorded.is_some() {
                e.context("the expected hash is the one models.lock recorded at the first pack; pass --update to accept a new file")
            } else {
                e
            }
        })?;
    let tokenizer = match &spec.tokenizer {
        None => None,
        Some(t) => {
            let recorded = old
                .and_then(|o| o.tokenizer.as_ref())
                .map(|t| t.sha256.as_str())
                .filter(|_| !update);
            let label = format!("{} tokenizer", spec.name);
            let expected = t.sha256.as_deref().or(recorded);
            let (bytes, sha) = fetch_source(manifest, &label, &t.sources, expected, cache)?;
            Some((bytes, sha))
        }
    };

    let mut proto = tract_onnx::pb::ModelProto::decode(source.as_slice())
        .map_err(|e| anyhow!("cannot decode ONNX: {e}"))?;
    // A trailing ZipMap (lists of dictionaries) cannot be served as a tensor.
    let zipmaps = inference_core::ml::strip_zipmap(&mut proto);
    for output in &zipmaps {
        eprintln!(
            "{}: ZipMap removed: output {output:?} serves the class probabilities as a [rows, classes] tensor, columns in class-label order",
            spec.name
        );
    }
    // The model as served before quantization: the drift reference.
    let original = if zipmaps.is_empty() {
        source.clone()
    } else {
        proto.encode_to_vec()
    };
    let bytes = match spec.quantize {
        Quantize::None => original.clone(),
        Quantize::Int8 => {
            int8::quantize(&mut proto, int8::DEFAULT_MIN_ELEMENTS).map_err(anyhow::Error::msg)?;
            proto.encode_to_vec()
        }
    };

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
        source_sha256: Some(source_sha.clone()),
        embed: spec.embed,
        labels: spec.labels.clone(),
        inputs,
        outputs,
        tokenizer: tokenizer.as_ref().map(|(bytes, sha)| TokenizerEntry {
            file: format!("{}.tokenizer.json", spec.name),
            sha256: sha.clone(),
            size: bytes.len() as u64,
        }),
        pipeline: spec.pipeline.clone(),
    };
    let tokenizer = tokenizer.map(|(bytes, _)| bytes);

    let sample = match &spec.sample_request {
        Some(p) => {
            let path = manifest.resolve(p);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read sample_request {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("sample_request {} is not JSON", path.display()))?
        }
        None if entry.pipeline.is_some() => text_check_request(),
        None => generated_request(&entry.inputs),
    };
    let tok = tokenizer.as_deref();
    let (load_ms, packed_answer) = validate(&entry, &bytes, tok, sample.clone())?;
    if entry.pipeline.is_some() && sample.get("text").is_none() {
        // A tensor sample does not exercise the tokenizer and pipeline; this does.
        validate(&entry, &bytes, tok, text_check_request())?;
    }
    let drift = if spec.quantize == Quantize::None {
        None
    } else {
        // The original, run the same way, is the reference.
        let reference = ModelEntry {
            sha256: checksum::sha256_hex(&original),
            size: original.len() as u64,
            ..entry.clone()
        };
        let (_, want) = validate(&reference, &original, tok, sample)?;
        let drift = Drift::between(&comparable(&want), &comparable(&packed_answer));
        if !(drift.cosine >= spec.max_drift.cosine && drift.max_abs <= spec.max_drift.max_abs) {
            bail!(
                "int8 drift too large: cosine {:.5} (min {}), max abs error {:.5} (max {}). Raise max_drift or use quantize = \"none\"",
                drift.cosine,
                spec.max_drift.cosine,
                drift.max_abs,
                spec.max_drift.max_abs
            );
        }
        Some(drift)
    };
    Ok(Packed {
        source_size: source.len() as u64,
        entry,
        bytes,
        tokenizer,
        load_ms,
        drift,
    })
}

/// How far packed outputs are from the original's, over every float in every output.
#[derive(Debug, Clone, Copy)]
pub struct Drift {
    pub cosine: f64,
    pub max_abs: f64,
}

impl Drift {
    /// The worst output: lowest cosine and largest absolute error, each output compared on
    /// its own (an integer passthrough output must not dilute a drifting float one).
    fn between(want: &Value, got: &Value) -> Drift {
        fn floats(v: &Value, out: &mut Vec<f64>) {
            match v {
                Value::Array(items) => items.iter().for_each(|i| floats(i, out)),
                Value::Number(n) => out.push(n.as_f64().unwrap_or(f64::NAN)),
                Value::Null => out.push(f64::NAN),
                _ => {}
            }
        }
        let mut worst = Drift {
            cosine: 1.0,
            max_abs: 0.0,
        };
        let (Some(want), Some(got)) = (want.as_object(), got.as_object()) else {
            return Drift {
                cosine: f64::NAN,
                max_abs: f64::INFINITY,
            };
        };
        for (name, w) in want {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            floats(w, &mut a);
            floats(got.get(name).unwrap_or(&Value::Null), &mut b);
            if a.len() != b.len() {
                return Drift {
                    cosine: f64::NAN,
                    max_abs: f64::INFINITY,
                };
            }
            let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
            let cosine = if na == 0.0 && nb == 0.0 {
                1.0
            } else {
                dot / (na * nb)
            };
            let max_abs = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            // NaN compares false: make it the worst.
            worst.cosine = if cosine.is_nan() {
                f64::NAN
            } else {
                worst.cosine.min(cosine)
            };
            worst.max_abs = if max_abs.is_nan() {
                f64::INFINITY
            } else {
                worst.max_abs.max(max_abs)
            };
        }
        worst
    }
}

fn text_check_request() -> Value {
    json!({"text": ["A short sentence to check the pipeline.", "And a second one."]})
}

/// The numbers to compare for drift: raw outputs, or a text pipeline's answer.
fn comparable(answer: &Value) -> Value {
    if let Some(outputs) = answer.get("outputs") {
        return outputs.clone();
    }
    let picked: serde_json::Map<String, Value> = ["embeddings", "probabilities"]
        .iter()
        .filter_map(|k| answer.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    Value::Object(picked)
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
/// answers the sample request. Returns the load time in ms and the answer.
fn validate(
    entry: &ModelEntry,
    bytes: &[u8],
    tokenizer: Option<&[u8]>,
    mut sample: Value,
) -> Result<(f64, Value)> {
    // The registry wants 'static data, as the binary provides; leaking at pack time is fine.
    let bytes: &'static [u8] = Box::leak(bytes.to_vec().into_boxed_slice());
    let sha: &'static str = Box::leak(entry.sha256.clone().into_boxed_str());
    let name: &'static str = Box::leak(entry.name.clone().into_boxed_str());
    let json: &'static str = Box::leak(entry.to_json().into_boxed_str());
    let tokenizer: Option<&'static [u8]> =
        tokenizer.map(|t| &*Box::leak(t.to_vec().into_boxed_slice()));
    let models: &'static [EmbeddedModel] = Box::leak(Box::new([EmbeddedModel {
        name,
        sha256: sha,
        size: entry.size,
        bytes: Some(bytes),
        tokenizer,
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
    let answer = registry
        .handle_value(sample)
        .map_err(|e| anyhow!("the packed model does not answer its sample request: {e}"))?;
    Ok((load_ms, answer))
}

/// Stage every file next to its destination, then rename into place; the lock goes last,
/// so an interrupted run leaves the previous lock describing files that still exist.
fn write_out(out: &Path, lock: &LockFile, packed: &[Packed], old: Option<&LockFile>) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for p in packed {
        write_if_changed(&out.join(&p.entry.file), &p.bytes)?;
        if let (Some(t), Some(bytes)) = (&p.entry.tokenizer, &p.tokenizer) {
            write_if_changed(&out.join(&t.file), bytes)?;
        }
    }
    write_if_changed(&out.join(LOCK_FILE_NAME), lock.to_toml().as_bytes())?;
    if let Some(old) = old {
        for stale in old.models.iter().filter(|m| lock.model(&m.name).is_none()) {
            let _ = std::fs::remove_file(out.join(&stale.file));
            if let Some(t) = &stale.tokenizer {
                let _ = std::fs::remove_file(out.join(&t.file));
            }
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
        "{:<24} {:>12} {:>12} {:>7} {:>9} {:>10} {:>9}",
        "model", "source", "packed", "ratio", "cosine", "max abs", "load ms"
    );
    for p in packed {
        let (cos, abs) = match p.drift {
            Some(d) => (format!("{:.5}", d.cosine), format!("{:.5}", d.max_abs)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<24} {:>12} {:>12} {:>7.2} {:>9} {:>10} {:>9.1}",
            p.entry.name,
            p.source_size,
            p.bytes.len(),
            p.bytes.len() as f64 / p.source_size.max(1) as f64,
            cos,
            abs,
            p.load_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_servers::HttpServer;

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
            cache_dir: Some(dir.path().join("cache")),
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

    fn test_data(file: &str) -> PathBuf {
        let dir = std::env::var_os("TEST_DATA_DIR").map(PathBuf::from).expect(
            "TEST_DATA_DIR is not set: run the tests with `cargo xtask test`, which fetches the test models",
        );
        dir.join(file)
    }

    /// Real WordPiece ids (uncased BERT vocabulary): "the cat sits on the mat ." and
    /// "how do i bake bread at home ?", padded.
    const MINILM_SAMPLE: &str = r#"{"inputs": {
        "input_ids": [[101, 1996, 4937, 7719, 2006, 1996, 13523, 1012, 102, 0, 0],
                      [101, 2129, 2079, 1045, 8670, 7852, 2012, 2188, 1029, 102, 0]],
        "attention_mask": [[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
                           [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]]}}"#;

    fn minilm_manifest(dir: &Path, sources: &[String], extra: &str) -> PackArgs {
        std::fs::write(dir.join("sample.json"), MINILM_SAMPLE).unwrap();
        let sources: Vec<String> = sources.iter().map(|s| format!("{s:?}")).collect();
        let manifest = format!(
            "[[model]]\nname = \"minilm\"\nsources = [{}]\nquantize = \"int8\"\nsample_request = \"sample.json\"\n{extra}",
            sources.join(", ")
        );
        std::fs::write(dir.join("models.toml"), manifest).unwrap();
        PackArgs {
            manifest: dir.join("models.toml"),
            out: dir.join("packed"),
            update: false,
            cache_dir: Some(dir.join("cache")),
        }
    }

    /// MiniLM over HTTP: a 404 mirror falls through to the next, int8 packing shrinks it
    /// ~4x within the drift gate, the second run needs no server, a corrupted cache entry is
    /// fetched again, and a wrong pin names both hashes.
    #[test]
    fn minilm_over_http_with_cache_and_int8() {
        let fp32 = std::fs::read(test_data("paraphrase-MiniLM-L3-v2.onnx")).unwrap();
        let sha = checksum::sha256_hex(&fp32);
        let hub = tempfile::tempdir().unwrap();
        std::fs::write(hub.path().join("minilm.onnx"), &fp32).unwrap();
        let work = tempfile::tempdir().unwrap();

        let server = HttpServer::start(hub.path());
        let sources = [
            format!("{}/missing.onnx", server.url),
            format!("{}/minilm.onnx", server.url),
        ];
        let args = minilm_manifest(work.path(), &sources, "");
        let lock = run(&args).unwrap();
        let m = &lock.models[0];
        assert_eq!(m.source_sha256.as_deref(), Some(sha.as_str()));
        assert!(m.size <= 18_000_000, "packed MiniLM is {} bytes", m.size);
        assert!(fp32.len() as u64 > 3 * m.size);
        let cached = Cache::at(work.path().join("cache")).path(&sha);
        assert_eq!(std::fs::read(&cached).unwrap(), fp32);

        // Server gone: the lock's hash finds the file in the cache.
        drop(server);
        std::fs::remove_dir_all(&args.out).unwrap();
        std::fs::create_dir_all(&args.out).unwrap();
        std::fs::write(args.out.join(LOCK_FILE_NAME), lock.to_toml()).unwrap();
        assert_eq!(run(&args).unwrap(), lock);

        // A truncated cache entry is detected and fetched again.
        std::fs::write(&cached, &fp32[..1000]).unwrap();
        let server = HttpServer::start(hub.path());
        let args = minilm_manifest(work.path(), &[format!("{}/minilm.onnx", server.url)], "");
        assert_eq!(run(&args).unwrap().models[0].sha256, lock.models[0].sha256);
        assert_eq!(std::fs::read(&cached).unwrap(), fp32);

        // A pinned hash that does not match fails with both hashes, after trying every mirror.
        let wrong = "0".repeat(64);
        std::fs::remove_file(&cached).unwrap();
        let args = minilm_manifest(
            work.path(),
            &[format!("{}/minilm.onnx", server.url)],
            &format!("sha256 = \"{wrong}\"\n"),
        );
        let e = err(&args);
        assert!(e.contains(&wrong) && e.contains(&sha), "{e}");
        assert!(!cached.exists(), "a mismatching download is never cached");

        // The drift gate: a stricter bound than int8 can meet fails the pack.
        let args = minilm_manifest(
            work.path(),
            &[format!("{}/minilm.onnx", server.url)],
            "max_drift = { cosine = 0.99999, max_abs = 0.1 }\n",
        );
        let e = err(&args);
        assert!(
            e.contains("int8 drift too large") && e.contains("cosine 0.99"),
            "{e}"
        );
    }

    #[test]
    fn plain_http_is_for_loopback_only() {
        let (_dir, args) = setup(
            "[[model]]\nname = \"m\"\nsources = [\"http://example.com/m.onnx\", \"ftp://x/m.onnx\"]\n",
        );
        let e = err(&args);
        assert!(e.contains("only allowed for loopback"), "{e}");
        assert!(e.contains("unsupported source scheme ftp://"), "{e}");
    }

    /// An operator nobody implements (`DictVectorizer`: maps in) and an out-of-scope use of
    /// one we do (`LabelEncoder` over strings) fail at pack time, named.
    #[test]
    fn unsupported_operators_fail_at_pack_time() {
        use tract_onnx::pb;
        for (op, attribute, expected) in [
            ("DictVectorizer", None, "DictVectorizer"),
            (
                "LabelEncoder",
                Some(pb::AttributeProto {
                    name: "keys_strings".into(),
                    r#type: pb::attribute_proto::AttributeType::Strings as i32,
                    strings: vec![b"a".to_vec()],
                    ..Default::default()
                }),
                "LabelEncoder uses string values (keys_strings)",
            ),
        ] {
            unsupported_operator(op, attribute, expected);
        }
    }

    fn unsupported_operator(
        op: &str,
        attribute: Option<tract_onnx::pb::AttributeProto>,
        expected: &str,
    ) {
        use tract_onnx::pb;
        let float = pb::tensor_proto::DataType::Float as i32;
        let value = |name: &str| pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: float,
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![pb::tensor_shape_proto::Dimension {
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(2)),
                            ..Default::default()
                        }],
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let model = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![
                pb::OperatorSetIdProto {
                    domain: String::new(),
                    version: 17,
                },
                pb::OperatorSetIdProto {
                    domain: "ai.onnx.ml".into(),
                    version: 3,
                },
            ],
            graph: Some(pb::GraphProto {
                name: "g".into(),
                node: vec![pb::NodeProto {
                    name: "scale_features".into(),
                    op_type: op.into(),
                    domain: "ai.onnx.ml".into(),
                    attribute: attribute.into_iter().collect(),
                    input: vec!["x".into()],
                    output: vec!["y".into()],
                    ..Default::default()
                }],
                input: vec![value("x")],
                output: vec![value("y")],
                ..Default::default()
            }),
            ..Default::default()
        };
        let (dir, args) = setup("[[model]]\nname = \"m\"\nsources = [\"scaler.onnx\"]\n");
        std::fs::write(dir.path().join("scaler.onnx"), model.encode_to_vec()).unwrap();
        let e = err(&args);
        assert!(e.contains(expected) && e.contains("scale_features"), "{e}");
        assert!(!args.out.exists());
    }
}
