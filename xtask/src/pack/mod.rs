//! `cargo xtask pack-models`: manifest in, verified packed files and a lock out. This file
//! orchestrates one model's pack (fetch, prepare, check, form, plans, memory cost) and
//! writes the result; each step's choices live beside it.

mod forms;
pub mod manifest;
mod plans;
mod report;
mod sources;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use inference_core::compare::Drift;
use inference_core::prepare::{self, InputOverride, Quantize};
use model_lock::{LockFile, ModelEntry, TokenizerEntry, LOCK_FILE_NAME};
use serde_json::Value;

use crate::cache::Cache;
use crate::fetch::{self};
use crate::files::write_if_changed;
use crate::workspace;
use forms::{compiled, int8_dynamic};
use manifest::{Compile, Manifest, ModelSpec, ShapeSpec};
use plans::{choose_plans, required_plans};
use report::{print_table, report_shapes};
use sources::{fetch_external_data, fetch_source};

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
    /// The most any one download may bring, in MB (checked before and while reading).
    #[arg(long, default_value_t = fetch::DEFAULT_MAX_DOWNLOAD_MB)]
    pub max_download_mb: u64,
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
    pack_with(manifest, out, false)
}

/// Packs models the test setup generates (trained, built): a regenerated source is the
/// point, so its new hash is pinned instead of refused (`--update`).
pub fn pack_generated(manifest: PathBuf, out: PathBuf) -> Result<()> {
    pack_with(manifest, out, true)
}

fn pack_with(manifest: PathBuf, out: PathBuf, update: bool) -> Result<()> {
    run(&PackArgs {
        manifest,
        out,
        update,
        cache_dir: None,
        max_download_mb: fetch::DEFAULT_MAX_DOWNLOAD_MB,
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
        let p = pack_one(&manifest, spec, old, args, &cache)
            .with_context(|| format!("model {:?}", spec.name))?;
        packed.push(p);
    }

    let lock = LockFile {
        version: model_lock::LOCK_VERSION,
        default: manifest.default.clone(),
        manifest_sha256: Some(crate::packed::manifest_sha256(&args.manifest)?),
        models: packed.iter().map(|p| p.entry.clone()).collect(),
    };
    write_out(&args.out, &lock, &packed, old_lock.as_ref())?;
    print_table(&packed);
    eprintln!("wrote {}", lock_path.display());
    Ok(lock)
}

fn pack_one(
    manifest: &Manifest,
    spec: &ModelSpec,
    old: Option<&ModelEntry>,
    args: &PackArgs,
    cache: &Cache,
) -> Result<Packed> {
    let update = args.update;
    let cap = fetch::Cap::mb(args.max_download_mb);
    let recorded = old
        .and_then(|o| o.source_sha256.as_deref())
        .filter(|_| !update);
    let expected = spec.sha256.as_deref().or(recorded);
    let source =
        fetch_source(manifest, &spec.name, &spec.sources, expected, cache, cap).map_err(|e| {
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
            Some(fetch_source(
                manifest, &label, &t.sources, expected, cache, cap,
            )?)
        }
    };

    let external = fetch_external_data(manifest, spec, &source.bytes, old, args, cache)?;

    let inputs = input_settings(spec, &source.bytes)?;
    let prepared = prepare::prepare_with_external_data(
        &source.bytes,
        &external.files,
        spec.quantize,
        &inputs,
    )?;
    drop(external.files);
    for output in &prepared.zipmaps_removed {
        eprintln!(
            "{}: ZipMap removed: output {output:?} serves the class probabilities as a [rows, classes] tensor, columns in class-label order",
            spec.name
        );
    }
    if let Some(labels) = &prepared.class_labels {
        eprintln!(
            "{}: string class labels {:?} run as their indices; outputs {:?} answer the names",
            spec.name, labels.names, labels.outputs
        );
    }
    let bytes = prepared.packed;
    let string_examples = prepared.string_examples;
    let entry = ModelEntry {
        name: spec.name.clone(),
        file: format!("{}.onnx", spec.name),
        format: Default::default(),
        sha256: inference_core::sha256_hex(&bytes),
        size: bytes.len() as u64,
        source_sha256: Some(source.sha256.clone()),
        external_data_sha256: external.sha256,
        embed: spec.embed,
        artifact: spec.artifact,
        // String class labels name the classes unless the manifest does.
        labels: match (&spec.labels, &prepared.class_labels) {
            (given, Some(model)) if given.is_empty() => model.names.clone(),
            (given, _) => given.clone(),
        },
        class_labels: prepared.class_labels.clone(),
        inputs: prepared.signature.inputs,
        outputs: prepared.signature.outputs,
        tokenizer: tokenizer.as_ref().map(|t| TokenizerEntry {
            file: format!("{}.tokenizer.json", spec.name),
            sha256: t.sha256.clone(),
            size: t.bytes.len() as u64,
        }),
        pipeline: spec.pipeline.clone(),
        limits: spec.limits.clone(),
        memory: None,
        constants: inputs.constants.clone(),
        // What the graph can run on decides the plans every check below loads it with.
        plans: required_plans(&prepared.signature.typing),
    };
    let typing = prepared.signature.typing.clone();
    let probes = prepared.signature.probes.clone();
    let tokenizer = tokenizer.map(|t| t.bytes);

    let sample = match &spec.sample_request {
        Some(p) => {
            let path = manifest.resolve(p);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read sample_request {}", path.display()))?;
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("sample_request {} is not JSON", path.display()))?;
            Some(body)
        }
        None => None,
    };
    let samples = prepare::sample_requests_with(&entry, sample, &string_examples, &probes);
    let tok = tokenizer.as_deref();
    let checked = prepare::check(&entry, &bytes, tok, &samples)?;
    // The original, run the same way, is the reference of a quantized model: on the first
    // sample for weight-only int8, on every sample for int8-dynamic.
    let reference = match spec.quantize {
        Quantize::None => None,
        Quantize::Int8 | Quantize::Int8Dynamic => {
            let reference = ModelEntry {
                sha256: inference_core::sha256_hex(&prepared.original),
                size: prepared.original.len() as u64,
                ..entry.clone()
            };
            let some = if spec.quantize == Quantize::Int8 {
                &samples[..1]
            } else {
                &samples[..]
            };
            Some(prepare::check(&reference, &prepared.original, tok, some)?.answers)
        }
    };
    let drift = match &reference {
        None => None,
        Some(want) => {
            let drift = Drift::between(&want[0], &checked.answers[0]);
            spec.max_drift.allows(drift)?;
            Some(drift)
        }
    };
    let onnx = Packed {
        source_size: source.bytes.len() as u64,
        entry,
        bytes,
        tokenizer,
        load_ms: checked.load_ms,
        drift,
    };
    let packed = match (spec.quantize, reference) {
        (Quantize::Int8Dynamic, Some(reference)) => {
            int8_dynamic(onnx, &samples, &reference, spec.max_drift)?
        }
        _ if spec.compile == Compile::Never => onnx,
        // The compiled form is the graph typed with its symbolic dims.
        _ if typing != prepare::Typing::Symbolic => {
            eprintln!(
                "{}: packed as ONNX, not compiled: the compiled form keeps the graph's symbolic dims, and this one is {}",
                spec.name,
                typing.describe()
            );
            onnx
        }
        _ => compiled(onnx, &samples, &checked.answers, spec.compile)?,
    };
    let packed = choose_plans(packed, spec, &samples, &typing, &inputs.shapes)?;
    let memory = match prepare::memory_cost(
        &packed.entry,
        &packed.bytes,
        &string_examples,
        &probes,
        &crate::heap::HeapPeak,
    ) {
        Ok(memory) => memory,
        Err(e) => {
            eprintln!(
                "{}: the memory a request needs could not be measured ({e}); requests are held to the working-memory estimate only",
                spec.name
            );
            None
        }
    };
    report_shapes(&packed.entry, &typing, memory);
    Ok(Packed {
        entry: ModelEntry {
            memory,
            ..packed.entry
        },
        ..packed
    })
}

/// The manifest's input settings: shape overrides, constants, and the declared shapes (a
/// bare list of dims names the model's only input).
fn input_settings(spec: &ModelSpec, source: &[u8]) -> Result<prepare::InputSettings> {
    let overrides = spec
        .inputs
        .iter()
        .filter_map(|(name, i)| {
            i.shape.as_ref().map(|shape| InputOverride {
                name: name.clone(),
                shape: shape.clone(),
            })
        })
        .collect();
    let constants = spec
        .inputs
        .iter()
        .filter_map(|(name, i)| i.value.clone().map(|v| (name.clone(), v)))
        .collect();
    let mut shapes = Vec::new();
    for shape in &spec.shapes {
        shapes.push(match shape {
            ShapeSpec::Named(named) => named.clone(),
            ShapeSpec::Dims(dims) => {
                let names = prepare::input_names(source)?;
                let served: Vec<&String> = names
                    .iter()
                    .filter(|n| spec.inputs.get(*n).is_none_or(|i| i.value.is_none()))
                    .collect();
                let [name] = served.as_slice() else {
                    bail!(
                        "shapes = [{dims:?}] gives dims without input names, and the model takes {} inputs ({names:?}): write shapes = [{{ NAME = [...] }}]",
                        served.len()
                    );
                };
                [((*name).clone(), dims.clone())].into()
            }
        });
    }
    Ok(prepare::InputSettings {
        overrides,
        constants,
        shapes,
    })
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
    // Files the old lock named and the new one does not: removed models, and a model's
    // previous form (ONNX before it was compiled).
    if let Some(old) = old {
        let kept: Vec<&str> = files(lock).collect();
        for stale in files(old).filter(|f| !kept.contains(f)) {
            let _ = std::fs::remove_file(out.join(stale));
        }
    }
    Ok(())
}

/// Every file a lock names: each model's packed file and tokenizer.
fn files(lock: &LockFile) -> impl Iterator<Item = &str> {
    lock.models.iter().flat_map(|m| {
        std::iter::once(m.file.as_str()).chain(m.tokenizer.as_ref().map(|t| t.file.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use model_lock::{Dim, ModelFormat};
    use test_support::HttpServer;

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
            max_download_mb: fetch::DEFAULT_MAX_DOWNLOAD_MB,
        };
        (dir, args)
    }

    fn err(args: &PackArgs) -> String {
        format!("{:#}", run(args).unwrap_err())
    }

    #[test]
    fn packs_falls_through_mirrors_and_records_the_source_hash() {
        let (dir, args) = setup(
            "[[model]]\nname = \"m\"\nsources = [\"missing.onnx\", \"model.onnx\"]\nlabels = [\"a\", \"b\"]\ncompile = \"always\"\n",
        );
        let lock = run(&args).unwrap();
        let sha = inference_core::sha256_hex(&std::fs::read(model_path()).unwrap());
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
        assert_eq!(
            (m.file.as_str(), m.format),
            ("m.nnef.tar", ModelFormat::Nnef)
        );
        let packed = std::fs::read(args.out.join(&m.file)).unwrap();

        // A re-pack with nothing changed rewrites nothing (no rebuild, no relink): the
        // compiled form is reproducible byte for byte.
        let mtime = |f: &str| {
            std::fs::metadata(args.out.join(f))
                .unwrap()
                .modified()
                .unwrap()
        };
        let before = (mtime(LOCK_FILE_NAME), mtime(&m.file));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(run(&args).unwrap(), lock);
        assert_eq!((mtime(LOCK_FILE_NAME), mtime(&m.file)), before);

        // Trust on first use: a different file under the same name is refused...
        std::fs::write(dir.path().join("model.onnx"), b"not the same model").unwrap();
        let e = err(&args);
        assert!(e.contains(&sha) && e.contains("--update"), "{e}");
        // ...and the lock and packed file are untouched.
        assert_eq!(
            LockFile::read(&args.out.join(LOCK_FILE_NAME)).unwrap(),
            lock
        );
        assert_eq!(std::fs::read(args.out.join(&m.file)).unwrap(), packed);
    }

    #[test]
    fn compile_never_packs_onnx_and_removes_the_compiled_file() {
        let (dir, args) =
            setup("[[model]]\nname = \"m\"\nsources = [\"model.onnx\"]\ncompile = \"always\"\n");
        run(&args).unwrap();
        assert!(args.out.join("m.nnef.tar").exists());
        std::fs::write(
            dir.path().join("models.toml"),
            "[[model]]\nname = \"m\"\nsources = [\"model.onnx\"]\ncompile = \"never\"\n",
        )
        .unwrap();
        let lock = run(&args).unwrap();
        assert_eq!(lock.models[0].format, ModelFormat::Onnx);
        assert_eq!(
            std::fs::read(args.out.join("m.onnx")).unwrap(),
            std::fs::read(model_path()).unwrap()
        );
        assert!(
            !args.out.join("m.nnef.tar").exists(),
            "the previous form is removed"
        );
    }

    #[test]
    fn pinned_hash_mismatch_names_both_hashes_and_writes_nothing() {
        let wrong = "ab".repeat(32);
        let (_dir, args) = setup(&format!(
            "[[model]]\nname = \"m\"\nsources = [\"model.onnx\"]\nsha256 = \"{wrong}\"\n"
        ));
        let e = err(&args);
        let actual = inference_core::sha256_hex(&std::fs::read(model_path()).unwrap());
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
            Some(inference_core::sha256_hex(&bytes).as_str())
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
            max_download_mb: fetch::DEFAULT_MAX_DOWNLOAD_MB,
        }
    }

    /// MiniLM over HTTP: a 404 mirror falls through to the next, int8 packing shrinks it
    /// ~4x within the drift gate, the second run needs no server, a corrupted cache entry is
    /// fetched again, and a wrong pin names both hashes.
    #[test]
    fn minilm_over_http_with_cache_and_int8() {
        let Some(test_data) = test_support::fixture("TEST_DATA_DIR") else {
            return;
        };
        let fp32 = std::fs::read(test_data.join("paraphrase-MiniLM-L3-v2.onnx")).unwrap();
        let sha = inference_core::sha256_hex(&fp32);
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

    /// A lock whose `file` reaches outside `--out` is refused before anything is touched,
    /// so stale-file cleanup can never delete it.
    #[test]
    fn a_lock_naming_a_file_outside_out_touches_nothing() {
        let (dir, args) = setup("[[model]]\nname = \"m\"\nsources = [\"model.onnx\"]\n");
        let victim = dir.path().join("victim.onnx");
        std::fs::write(&victim, b"not yours").unwrap();
        std::fs::create_dir_all(&args.out).unwrap();
        std::fs::write(
            args.out.join(LOCK_FILE_NAME),
            "version = 1\n[[model]]\nname = \"gone\"\nfile = \"../victim.onnx\"\nsha256 = \"00\"\nsize = 9\ninputs = []\noutputs = []\n",
        )
        .unwrap();
        let e = err(&args);
        assert!(e.contains("plain file name"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
        assert!(!args.out.join("m.onnx").exists());
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
}
