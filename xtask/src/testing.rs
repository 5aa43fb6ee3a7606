//! `cargo xtask test`: everything the test suite needs, then the suite.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::bootstrap;
use crate::{debian_package, pack, python_env, test_data, workspace};

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Extra arguments for `cargo test` (after `--`).
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: TestArgs) -> Result<()> {
    // The build embeds what the lock lists: the packed files must exist first.
    pack::pack_into(
        workspace::default_manifest(),
        workspace::default_packed_dir(),
    )?;
    let data = test_data::ensure()?;
    let fallback = fallback_fixture()?;
    let pairs = test_data::pair_models(&data)?;
    let text = text_fixture(&data, &pairs)?;
    let text_reference = test_data::text_reference(&data)?;
    let ml_data = test_data::ml_models(&data)?;
    let ml = ml_fixture(&ml_data)?;
    let shapes_data = test_data::shapes_reference(&data)?;
    let shapes = shapes_fixture(&data)?;
    let big = test_data::big_model(&data)?;
    let image = image_fixture(&big)?;
    // The reference OCI registry (distribution), for the image push tests.
    let registry = debian_package::ensure("docker-registry", "usr/bin/docker-registry")?;
    // moto's server mode: the real S3 (and Lambda, IAM) APIs on loopback, for the tests.
    let moto = python_env::ensure("moto")?;
    // The benchmark's Python side (onnxruntime, awslambdaric), for xtask/tests/bench.rs.
    // …and for lambda-fn/tests/lambda_limits.rs, a function with no memory guard of its own.
    let bench = python_env::ensure("bench")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .env("TEST_DATA_DIR", &data)
        .env("MOTO_SERVER", moto.bin("moto_server"))
        // moto's requirements bring cfn-lint: it checks the SAM templates deploy writes.
        .env("CFN_LINT", moto.bin("cfn-lint"))
        .env("BENCH_PYTHON", bench.python())
        .env("FALLBACK_PACKED", &fallback.packed)
        .env("FALLBACK_BOOTSTRAP", &fallback.bootstrap)
        .env("TEXT_PACKED", &text.packed)
        .env("TEXT_BOOTSTRAP", &text.bootstrap)
        .env("TEXT_REFERENCE", &text_reference)
        .env("TEXT_PAIRS_REFERENCE", pairs.join("reference.json"))
        .env("ML_EXPECTED", ml_data.join("expected.json"))
        .env("ML_BOOTSTRAP", &ml.bootstrap)
        .env("ML_PACKED", &ml.packed)
        .env("SHAPES_REFERENCE", shapes_data.join("reference.json"))
        .env("SHAPES_BOOTSTRAP", &shapes.bootstrap)
        .env("SHAPES_PACKED", &shapes.packed)
        .env("IMAGE_BOOTSTRAP", &image.bootstrap)
        .env("IMAGE_PACKED", &image.packed)
        .env("BIG_MODEL", &big)
        .env("DOCKER_REGISTRY", &registry)
        .env_remove("MODEL_PACK_DIR")
        // Every fixture is built above: a test that finds one missing fails, never skips.
        .env(FIXTURES_REQUIRED, "1")
        .current_dir(workspace::root())
        .args(["test", "--workspace"])
        .args(&args.cargo_args)
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(())
}

/// `test_support::FIXTURES_REQUIRED` (a dev-dependency, so named again here; a test
/// keeps the two equal).
const FIXTURES_REQUIRED: &str = "ONNX_LAMBDA_FIXTURES_REQUIRED";

struct Fixture {
    packed: PathBuf,
    bootstrap: PathBuf,
}

/// Packs `manifest` (its generated sources re-pinned when they change) into
/// `target/fixture/<name>/packed` and builds a dev `bootstrap`
/// embedding it (`target/fixture/<name>/bootstrap`). Built once here rather than per test;
/// the suite's own build then relinks with the default models.
fn fixture(name: &str, manifest: PathBuf) -> Result<Fixture> {
    let dir = workspace::target_dir().join("fixture").join(name);
    let packed = dir.join("packed");
    pack::pack_generated(manifest, packed.clone())?;
    let built = bootstrap::build_dev_with_models(&packed)?;
    let bootstrap = dir.join("bootstrap");
    std::fs::copy(&built, &bootstrap)
        .with_context(|| format!("cannot copy {} to {}", built.display(), bootstrap.display()))?;
    Ok(Fixture { packed, bootstrap })
}

/// The fallback tests' function: one embedded model, two `embed = false`.
fn fallback_fixture() -> Result<Fixture> {
    fixture(
        "fallback",
        workspace::root().join("xtask/tests/fixtures/fallback/models.toml"),
    )
}

/// The text tests' function: MiniLM with its tokenizer twice — int8 weights (always compiled,
/// bucket plans) and int8-dynamic (int8 products) —; the PP-OCRv4 text detector (a conv net)
/// three times — compiled, compiled with a batch-1 plan run row by row, and as ONNX — so a
/// test can hold the first two's answers to the ONNX form's in one process; and the
/// text-pair models (`pairs`, from `test_data::pair_models`) with the MiniLM tokenizer:
/// question answering (also with `handle_impossible_answer`), rerank and pair
/// classification. The manifest is written here because its sources live in the target
/// directory.
fn text_fixture(data: &Path, pairs: &Path) -> Result<Fixture> {
    let dir = workspace::target_dir().join("fixture/text");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let det = data.join(test_data::OCR_DET_FILE);
    let conv = |name: &str, compile: &str, plans: &str| {
        format!(
            "\n[[model]]\nname = {name:?}\nsources = [{:?}]\ncompile = {compile:?}\nplans = {plans:?}\n\n[model.inputs.x]\nshape = [\"batch\", 3, 64, 64]\n",
            det.to_string_lossy()
        )
    };
    let tokenizer = data.join(test_data::MINILM_TOKENIZER_FILE);
    let pair = |name: &str, file: &str, extra: &str, pipeline: &str| {
        format!(
            "\n[[model]]\nname = {name:?}\nsources = [{:?}]\ntokenizer = {{ sources = [{:?}] }}\n{extra}\n[model.pipeline]\nmax_length = 64\nmax_batch = 16\n{pipeline}\n",
            pairs.join(file).to_string_lossy(),
            tokenizer.to_string_lossy(),
        )
    };
    let manifest = format!(
        "# Written by `cargo xtask test` (xtask/src/testing.rs).\ndefault = \"minilm\"\n\n{}\n{}{}{}{}{}{}{}{}",
        test_data::MiniLmEntry {
            name: "minilm",
            quantize: "int8",
            compile: "always",
            plans: "buckets",
            max_batch: 16,
        }
        .manifest(data),
        test_data::MiniLmEntry {
            name: "minilm-int8-dynamic",
            quantize: "int8-dynamic",
            compile: "always",
            plans: "symbolic",
            max_batch: 16,
        }
        .manifest(data),
        conv("ocr-det", "always", "symbolic"),
        conv("ocr-det-rows", "always", "rows"),
        conv("ocr-det-onnx", "never", "symbolic"),
        pair(
            "qa",
            "bert-shaped-qa.onnx",
            "",
            "task = \"question-answering\"\nstride = 24\nmax_answer_length = 15",
        ),
        pair(
            "qa-impossible",
            "bert-shaped-qa.onnx",
            "compile = \"never\"\nplans = \"symbolic\"",
            "task = \"question-answering\"\nstride = 24\nhandle_impossible_answer = true",
        ),
        pair("rerank", "bert-shaped-rerank.onnx", "", "task = \"rerank\""),
        pair(
            "pair-classifier",
            "bert-shaped-pairs.onnx",
            "labels = [\"contradiction\", \"neutral\", \"entailment\"]",
            "task = \"classification\"\ntruncation = \"only_second\"",
        ),
    );
    let path = dir.join("models.toml");
    crate::files::write_atomic(&path, manifest.as_bytes())?;
    fixture("text", path)
}

/// The classical-ML tests' function: every model `lambda-fn/tests/ml/train.py` exported, packed
/// as they come (ZipMaps included, which packing strips; string class labels; external
/// data, named in the manifest), in the compiled form.
fn ml_fixture(data: &Path) -> Result<Fixture> {
    let expected = data.join("expected.json");
    let text = std::fs::read_to_string(&expected)
        .with_context(|| format!("cannot read {}", expected.display()))?;
    let expected: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", expected.display()))?;
    let models = expected["models"]
        .as_array()
        .context("expected.json has no models")?;
    let mut manifest = String::from("# Written by `cargo xtask test` (xtask/src/testing.rs).\n");
    for m in models {
        let name = m["name"].as_str().context("a model without a name")?;
        let file = m["file"].as_str().context("a model without a file")?;
        manifest.push_str(&format!(
            "\n[[model]]\nname = {name:?}\nsources = [{:?}]\ncompile = \"always\"\n",
            data.join(file).to_string_lossy()
        ));
        // An export with external data names its side files.
        let external: Vec<String> = m["external_data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str())
            .map(|l| {
                format!(
                    "{{ location = {l:?}, sources = [{:?}] }}",
                    data.join(l).to_string_lossy()
                )
            })
            .collect();
        if !external.is_empty() {
            manifest.push_str(&format!("external_data = [{}]\n", external.join(", ")));
        }
    }
    let dir = workspace::target_dir().join("fixture/ml");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("models.toml");
    crate::files::write_atomic(&path, manifest.as_bytes())?;
    fixture("ml", path)
}

/// The models-as-exported tests' function: real pretrained models from pip packages, packed
/// as they come — tf2onnx exports whose batch tract cannot type symbolically, YOLO and
/// PaddleOCR nets with dynamic height and width, silero VAD with its sample rate fixed to
/// 16 kHz (its graph branches on it) and its frame and state shapes declared.
fn shapes_fixture(data: &Path) -> Result<Fixture> {
    let model = |name: &str, file: &str| {
        format!(
            "\n[[model]]\nname = {name:?}\nsources = [{:?}]\n",
            data.join(file).to_string_lossy()
        )
    };
    let mut manifest = String::from("# Written by `cargo xtask test` (xtask/src/testing.rs).\n");
    for (name, file) in [
        ("magika", "magika-standard-v3-3.onnx"),
        ("basic-pitch", "basic-pitch-nmp.onnx"),
        ("opennsfw", "open-nsfw.onnx"),
        ("faceghost", "faceghost-v0-1.onnx"),
        ("nudenet", "nudenet-320n.onnx"),
        ("ocr-det", test_data::OCR_DET_FILE),
        ("ocr-rec", "ch_PP-OCRv4_rec_infer.onnx"),
        ("ocr-cls", "ch_ppocr_mobile_v2.0_cls_infer.onnx"),
    ] {
        manifest.push_str(&model(name, file));
    }
    manifest.push_str(&model("silero-vad", "silero_vad.onnx"));
    manifest.push_str(
        "shapes = [{ input = [1, 512], state = [2, 1, 128] }, { input = [2, 512], state = [2, 2, 128] }]\nprebuild_shapes = true\n\n[model.inputs.sr]\nvalue = 16000\n",
    );
    let dir = workspace::target_dir().join("fixture/shapes");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("models.toml");
    crate::files::write_atomic(&path, manifest.as_bytes())?;
    fixture("shapes", path)
}

/// The image tests' function: the default model embedded as in the zip, and `big` (over the
/// zip's 250 MB, from `test_data::big_model`) as `artifact = "image"`, kept as ONNX (its
/// compiled form would only copy the same weights again).
fn image_fixture(big: &Path) -> Result<Fixture> {
    let root = workspace::root();
    let manifest = format!(
        "# Written by `cargo xtask test` (xtask/src/testing.rs).\ndefault = \"breast-cancer\"\n\n[[model]]\nname = \"breast-cancer\"\nsources = [{:?}]\nsha256 = \"73abab9c7df8f19026f52b2f20d1912924bfbdb5f47da0be9dbad79f69586110\"\nlabels = [\"malignant\", \"benign\"]\n\n[[model]]\nname = \"big\"\nsources = [{:?}]\nartifact = \"image\"\ncompile = \"never\"\nsample_request = {:?}\n",
        root.join("models/default/breast_cancer_lr.onnx").to_string_lossy(),
        big.join("big.onnx").to_string_lossy(),
        big.join("sample.json").to_string_lossy(),
    );
    let dir = workspace::target_dir().join("fixture/image");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("models.toml");
    crate::files::write_atomic(&path, manifest.as_bytes())?;
    fixture("image", path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fixtures_required_variable_is_the_one_tests_read() {
        assert_eq!(super::FIXTURES_REQUIRED, test_support::FIXTURES_REQUIRED);
    }
}
