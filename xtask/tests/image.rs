//! The container image, end to end: `cargo xtask build --image` as the real xtask binary on
//! the fixture `bootstrap`s (built once by `cargo xtask test`), the layout unpacked into an
//! empty root and run there under the Runtime API emulator's sandbox (a private mount
//! namespace, read-only root, Lambda's user), pushed to Debian's `docker-registry` on
//! loopback with the token moto's ECR hands out, and the function created from the digest on
//! moto's Lambda.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use runtime_emulator::image::Layout;
use runtime_emulator::{Function, FunctionConfig, Outcome};
use serde_json::{json, Value};
use test_support::function::TIMEOUT;
use test_support::{failed, output_text, succeeded, MotoServer, RegistryServer};

/// The fallback fixture: the default model embedded, two more on EFS/S3 only.
fn small_bootstrap() -> PathBuf {
    test_support::fixture_path("FALLBACK_BOOTSTRAP")
}

fn small_packed() -> PathBuf {
    test_support::fixture_path("FALLBACK_PACKED")
}

/// The image fixture: the default model embedded, `big` (over 250 MB) as `artifact = "image"`.
fn big_bootstrap() -> PathBuf {
    test_support::fixture_path("IMAGE_BOOTSTRAP")
}

fn big_packed() -> PathBuf {
    test_support::fixture_path("IMAGE_PACKED")
}

fn xtask(moto: Option<&MotoServer>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args);
    if let Some(m) = moto {
        m.configure(&mut cmd);
    }
    cmd.output().expect("xtask runs")
}

/// `task --image` (build or deploy) of `bootstrap` with the models of `packed`, the layout
/// written to `out`, then `extra`.
fn image_task<'a>(
    task: &'a str,
    bootstrap: &'a Path,
    packed: &'a Path,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        task,
        "--image",
        "--bootstrap",
        bootstrap.to_str().unwrap(),
        "--packed",
        packed.to_str().unwrap(),
        "--image-out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

/// `cargo xtask build --image` of `bootstrap` with the models of `packed`, into `out`.
fn build_image(bootstrap: &Path, packed: &Path, out: &Path) -> String {
    succeeded(xtask(
        None,
        &image_task("build", bootstrap, packed, out, &[]),
    ))
}

/// A layout's layers unpacked into a fresh root (removed on drop).
fn unpack(layout: &Layout) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    runtime_emulator::image::unpack(layout, root.path()).unwrap();
    root
}

/// The unpacked image's entrypoint started as Lambda starts it, with `env` added.
async fn start_image(
    root: &Path,
    layout: &Layout,
    memory_mb: u32,
    env: &[(String, String)],
) -> Function {
    let mut config = FunctionConfig::from_image(root, &layout.config)
        .unwrap()
        .memory_mb(memory_mb);
    for (k, v) in env {
        config = config.env(k, v.clone());
    }
    Function::start(config).await.expect("the image starts")
}

async fn answer(f: &Function, request: &Value) -> Value {
    test_support::function::invoke(f, request).await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn first_sample() -> Value {
    let samples = test_support::default_samples();
    json!({"model": "breast-cancer", "features": samples["rows"][0]["features"]})
}

#[test]
fn the_default_models_image_is_reproducible_and_answers_as_the_zip_does() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED");
    test_support::require_root!("an image runs in a private mount namespace");
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let out = build_image(&small_bootstrap(), &small_packed(), &a);
    build_image(&small_bootstrap(), &small_packed(), &b);
    // A zip would do for these models, and build says so.
    assert!(out.contains("a zip would do"), "{out}");
    let (la, lb) = (Layout::open(&a).unwrap(), Layout::open(&b).unwrap());
    assert_eq!(
        la.manifest_digest, lb.manifest_digest,
        "same inputs, same image"
    );
    assert_eq!(
        std::fs::read(a.join("index.json")).unwrap(),
        std::fs::read(b.join("index.json")).unwrap()
    );
    assert!(out.contains(&la.manifest_digest), "{out}");
    // Lambda starts ENTRYPOINT in WORKDIR; one layer: nothing is an image-only model.
    assert_eq!(la.config.architecture, "amd64");
    assert_eq!(la.config.config.entrypoint, ["/var/task/bootstrap"]);
    assert_eq!(la.config.config.working_dir, "/var/task");
    assert_eq!(la.manifest.layers.len(), 1);

    let root = unpack(&la);
    let r = root.path();
    assert!(r.join("var/task/bootstrap").is_file());
    assert!(r.join("lib/x86_64-linux-gnu/libc.so.6").is_file());
    // The loader where the binary's PT_INTERP names it.
    assert!(r.join("lib64/ld-linux-x86-64.so.2").exists());
    assert!(r.join("etc/ssl/certs/ca-certificates.crt").is_file());
    for dir in ["tmp", "proc", "dev"] {
        assert!(r.join(dir).is_dir(), "{dir}");
    }

    let rt = runtime();
    let request = first_sample();
    let from_image = rt.block_on(async {
        let f = start_image(r, &la, 1024, &[]).await;
        let answer = answer(&f, &request).await;
        let logs = f.logs().join("\n");
        f.kill().await;
        (answer, logs)
    });
    let from_binary = rt.block_on(async {
        let f = test_support::function::start::<&str, &str>(&small_bootstrap(), &[]).await;
        let answer = answer(&f, &request).await;
        f.kill().await;
        answer
    });
    assert_eq!(
        from_image.0["outputs"], from_binary["outputs"],
        "{}",
        from_image.1
    );
    assert_eq!(from_image.0["source"], "embedded");

    // The same through the CLI: `invoke --image LAYOUT`.
    let data = serde_json::to_string(&request).unwrap();
    let out = xtask(
        None,
        &["invoke", "--image", a.to_str().unwrap(), "--data", &data],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let printed: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", output_text(&out)));
    assert_eq!(printed["outputs"], from_binary["outputs"]);
}

/// The line of `/proc/<pid>/mountinfo` whose mount point is `at`.
fn mount(mountinfo: &str, at: &str) -> Option<String> {
    mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some(at))
        .map(str::to_string)
}

#[test]
fn the_image_runs_as_lambda_runs_it_read_only_root_tmpfs_tmp_unprivileged_user() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED");
    test_support::require_root!("an image runs in a private mount namespace");
    let work = tempfile::tempdir().unwrap();
    let layout_dir = work.path().join("image");
    build_image(&small_bootstrap(), &small_packed(), &layout_dir);
    let layout = Layout::open(&layout_dir).unwrap();
    let root = unpack(&layout);
    let rt = runtime();
    rt.block_on(async {
        let f = start_image(root.path(), &layout, 1024, &[]).await;
        answer(&f, &first_sample()).await;
        let pid = f.pid().await.unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(
            uid.split_whitespace().skip(1).collect::<Vec<_>>(),
            ["993"; 4],
            "Lambda's user, not root: {uid}"
        );
        // In a mount namespace of its own, whose mounts never show on the host.
        assert_ne!(
            std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
            std::fs::read_link("/proc/self/ns/mnt").unwrap()
        );
        let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let inside = root.path().canonicalize().unwrap();
        assert!(
            !host.contains(inside.to_str().unwrap()),
            "a sandbox mount leaked to the host: {host}"
        );
        let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        let slash = mount(&mountinfo, "/").expect("/ is a mount");
        assert!(
            slash
                .split_whitespace()
                .nth(5)
                .unwrap()
                .split(',')
                .any(|o| o == "ro"),
            "/ is read-only: {slash}"
        );
        let tmp = mount(&mountinfo, "/tmp").expect("/tmp is a mount");
        assert!(tmp.contains(" - tmpfs "), "{tmp}");
        assert!(
            tmp.contains("size=524288k"),
            "512 MB, Lambda's default: {tmp}"
        );
        assert!(mount(&mountinfo, "/proc").is_some(), "{mountinfo}");
        assert!(mount(&mountinfo, "/dev/urandom").is_some(), "{mountinfo}");
        f.kill().await;
    });
}

#[test]
fn a_model_over_the_zips_limit_is_served_from_the_image() {
    test_support::require_fixtures!(
        "IMAGE_BOOTSTRAP",
        "IMAGE_PACKED",
        "BIG_MODEL",
        "MOTO_SERVER"
    );
    test_support::require_root!("an image runs in a private mount namespace");
    let work = tempfile::tempdir().unwrap();
    let (bootstrap, packed) = (big_bootstrap(), big_packed());
    // The zip cannot hold it: refused with the sizes against the limits, and the way out.
    let out = failed(xtask(
        None,
        &[
            "build",
            "--bootstrap",
            bootstrap.to_str().unwrap(),
            "--packed",
            packed.to_str().unwrap(),
            "--out",
            work.path().join("bootstrap.zip").to_str().unwrap(),
        ],
    ));
    assert!(out.contains("needs the container image"), "{out}");
    assert!(out.contains("big"), "{out}");
    assert!(out.contains("250"), "the zip's limit is named: {out}");
    assert!(out.contains("cargo xtask build --image"), "{out}");
    assert!(!work.path().join("bootstrap.zip").exists());

    let layout_dir = work.path().join("image");
    let out = build_image(&bootstrap, &packed, &layout_dir);
    let layout = Layout::open(&layout_dir).unwrap();
    // The code layer, then the model's own: a code change re-uploads megabytes only.
    assert_eq!(layout.manifest.layers.len(), 2, "{out}");
    let lock = model_lock::LockFile::read(&packed.join(model_lock::LOCK_FILE_NAME)).unwrap();
    let big = lock.model("big").unwrap().clone();
    assert!(
        big.size > 250_000_000,
        "the test model is over the zip's limit"
    );
    assert!(
        layout.manifest.layers[1].size > big.size * 8 / 10,
        "the model layer stays near the model's size: it does not compress"
    );
    assert!(layout
        .config
        .config
        .env
        .iter()
        .any(|e| e == "MODEL_IMAGE_DIR=/opt/models"));

    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(test_support::fixture_path("BIG_MODEL").join("expected.json"))
            .unwrap(),
    )
    .unwrap();
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(test_support::fixture_path("BIG_MODEL").join("sample.json"))
            .unwrap(),
    )
    .unwrap();
    let mut request = sample.clone();
    request["model"] = json!("big");
    let check = |answer: &Value| {
        let got = answer["outputs"]["sums"].as_array().unwrap();
        let want = expected["sums"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{answer}");
        for (g, w) in got.iter().zip(want) {
            for (g, w) in g.as_array().unwrap().iter().zip(w.as_array().unwrap()) {
                let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
                assert!((g - w).abs() <= 1e-3, "{g} vs onnxruntime {w}");
            }
        }
    };

    let rt = runtime();
    let root = unpack(&layout);
    let rel = inference_core::fallback::relative_path(&big.name, &big.sha256, big.format);
    let model_file = root.path().join("opt/models").join(&rel);
    assert!(model_file.is_file(), "{}", model_file.display());
    rt.block_on(async {
        let f = start_image(root.path(), &layout, 3008, &[]).await;
        let a = answer(&f, &request).await;
        assert_eq!(a["source"], "image", "{a}");
        check(&a);
        // The embedded model beside it.
        let a = answer(&f, &first_sample()).await;
        assert_eq!(a["source"], "embedded", "{a}");
        f.kill().await;
    });

    // A flipped byte in the image's copy: refused by the hash compiled into the binary, and
    // the next store (S3) serves the model instead.
    let mut bytes = std::fs::read(&model_file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&model_file, &bytes).unwrap();
    drop(bytes);
    let mut moto = MotoServer::start();
    moto.create_bucket("models");
    succeeded(xtask(
        Some(&moto),
        &[
            "publish-models",
            "--packed",
            packed.to_str().unwrap(),
            "--s3",
            "s3://models/v1",
            "--model",
            "big",
        ],
    ));
    let mut env: Vec<(String, String)> = moto
        .aws_env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.push(("MODEL_S3_BUCKET".into(), "models".into()));
    env.push(("MODEL_S3_PREFIX".into(), "v1".into()));
    rt.block_on(async {
        let f = start_image(root.path(), &layout, 3008, &env).await;
        let a = answer(&f, &request).await;
        assert_eq!(a["source"], "s3", "{a}");
        check(&a);
        let logs = f.logs().join("\n");
        assert!(logs.contains("image copy failed"), "{logs}");
        f.kill().await;
    });
    // Without another store, init fails and says why.
    rt.block_on(async {
        let f = start_image(root.path(), &layout, 3008, &[]).await;
        let message = test_support::function::init_error(&f).await;
        assert!(message.contains("big"), "{message}");
        assert!(message.contains("image"), "{message}");
    });
    moto.stop();

    // A library the image lacks fails here, as it would on Lambda.
    let lib = root.path().join("lib/x86_64-linux-gnu/libgcc_s.so.1");
    assert!(lib.is_file(), "bootstrap links libgcc_s (Rust's unwinder)");
    std::fs::remove_file(&lib).unwrap();
    rt.block_on(async {
        let f = start_image(root.path(), &layout, 3008, &[]).await;
        let outcome = f.invoke(b"{}".to_vec(), TIMEOUT).await;
        let logs = f.logs().join("\n");
        match outcome {
            Ok(Outcome::Error { error_type, .. }) => {
                assert_eq!(error_type.as_deref(), Some("Runtime.ExitError"), "{logs}")
            }
            other => panic!("expected the process to die at start: {other:?}\n{logs}"),
        }
        assert!(
            logs.contains("libgcc_s.so.1"),
            "the loader names it: {logs}"
        );
    });
}

/// moto's account and region, as its ECR names repositories.
const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

fn deploy_image(
    moto: &MotoServer,
    registry: &str,
    bootstrap: &Path,
    packed: &Path,
    layout: &Path,
    extra: &[&str],
) -> Output {
    let mut args = image_task(
        "deploy",
        bootstrap,
        packed,
        layout,
        &[
            "--repository",
            "onnx-models",
            "--registry",
            registry,
            "--function",
            "onnx",
        ],
    );
    args.extend_from_slice(extra);
    xtask(Some(moto), &args)
}

/// The body of each recorded Lambda request to `path_end` with `method`.
fn recorded_bodies(moto: &MotoServer, method: &str, path_end: &str) -> Vec<Value> {
    moto.recorded()
        .iter()
        .filter(|r| r["method"] == method)
        .filter(|r| {
            r["url"]
                .as_str()
                .is_some_and(|u| u.split('?').next().unwrap().ends_with(path_end))
        })
        .map(|r| {
            // moto's recorder keeps each body base64-encoded.
            let body = base64::engine::general_purpose::STANDARD
                .decode(r["body"].as_str().unwrap_or_default())
                .expect("a base64 body");
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {r}"))
        })
        .collect()
}

#[test]
fn deploy_pushes_through_the_distribution_api_and_creates_an_image_function() {
    test_support::require_fixtures!(
        "IMAGE_BOOTSTRAP",
        "IMAGE_PACKED",
        "FALLBACK_BOOTSTRAP",
        "FALLBACK_PACKED",
        "MOTO_SERVER",
        "DOCKER_REGISTRY"
    );
    let mut moto = MotoServer::start();
    let role = moto.create_role("onnx-lambda");
    let registry = RegistryServer::start();
    let work = tempfile::tempdir().unwrap();
    let layout_dir = work.path().join("image");
    let (bootstrap, packed) = (big_bootstrap(), big_packed());

    // Dry run: what would happen, with nothing pushed or created.
    let out = succeeded(deploy_image(
        &moto,
        &registry.url,
        &bootstrap,
        &packed,
        &layout_dir,
        &["--role", &role, "--dry-run"],
    ));
    assert!(out.contains("push image sha256:"), "{out}");
    assert!(out.contains("create function onnx (image"), "{out}");
    assert!(moto.lambda_get("functions/onnx").is_none());
    assert!(
        registry
            .requests()
            .iter()
            .all(|r| r.starts_with("GET /v2/ ")),
        "{:?}",
        registry.requests()
    );

    moto.start_recording();
    let out = succeeded(deploy_image(
        &moto,
        &registry.url,
        &bootstrap,
        &packed,
        &layout_dir,
        &["--role", &role],
    ));
    assert!(out.contains("created onnx"), "{out}");
    let layout = Layout::open(&layout_dir).unwrap();
    let digest = layout.manifest_digest.clone();
    let uri = format!("{ECR_HOST}/onnx-models@{digest}");
    assert!(out.contains(&uri), "{out}");
    assert!(
        out.contains("in the image"),
        "the big model is listed as the image's: {out}"
    );

    // The registry holds the manifest, byte for byte, and every blob.
    let r = registry.get(&format!("/v2/onnx-models/manifests/{digest}"));
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().unwrap().as_ref(),
        layout.manifest_bytes.as_slice()
    );
    for blob in layout
        .manifest
        .layers
        .iter()
        .chain([&layout.manifest.config])
    {
        let path = format!("/v2/onnx-models/blobs/{}", blob.digest);
        let r = registry.get(&path);
        assert_eq!(r.status(), 200, "{path}");
        let bytes = r.bytes().unwrap();
        assert_eq!(bytes.len() as u64, blob.size);
        assert_eq!(
            runtime_emulator::image::spec::digest_of(&bytes),
            blob.digest
        );
    }
    // The model layer went up in chunks.
    let requests = registry.requests();
    let patches = requests.iter().filter(|r| r.starts_with("PATCH ")).count();
    assert!(
        patches >= 8,
        "the model layer (~250 MiB compressed) in 32 MiB chunks: {requests:?}"
    );

    // The function, as CreateFunction asked for it: the image by digest, no runtime.
    let created = recorded_bodies(&moto, "POST", "/2015-03-31/functions");
    assert_eq!(created.len(), 1, "{created:?}");
    let c = &created[0];
    assert_eq!(c["PackageType"], "Image", "{c}");
    assert_eq!(c["Code"]["ImageUri"], uri.as_str(), "{c}");
    assert_eq!(c["Architectures"], json!(["x86_64"]), "{c}");
    assert!(
        c.get("Runtime").is_none() && c.get("Handler").is_none(),
        "{c}"
    );
    let f = moto.lambda_get("functions/onnx").unwrap();
    assert_eq!(f["Configuration"]["PackageType"], "Image");
    assert_eq!(
        moto.lambda_get("functions/onnx/aliases/live").unwrap()["FunctionVersion"],
        "1"
    );

    // New code, same model: only the code layer, config and manifest go up; the model's
    // layer is found in place (HEAD) and skipped.
    let mut changed = std::fs::read(&bootstrap).unwrap();
    changed.extend_from_slice(b"2");
    let second = work.path().join("bootstrap-2");
    std::fs::write(&second, changed).unwrap();
    std::fs::set_permissions(&second, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = registry.requests().len();
    let out = succeeded(deploy_image(
        &moto,
        &registry.url,
        &second,
        &packed,
        &layout_dir,
        &[],
    ));
    assert!(out.contains("updated onnx"), "{out}");
    assert!(out.contains("version       2"), "{out}");
    assert!(out.contains("1 already there"), "{out}");
    // Nor was the model's layer compressed again: taken from the image it replaced, and the
    // same as a fresh build's.
    assert!(
        out.contains("the layer of model big is unchanged: taken from the previous image"),
        "{out}"
    );
    let fresh = work.path().join("fresh");
    build_image(&second, &packed, &fresh);
    assert_eq!(
        Layout::open(&fresh).unwrap().manifest_digest,
        Layout::open(&layout_dir).unwrap().manifest_digest
    );
    let model_layer = &layout.manifest.layers[1].digest;
    let new: Vec<String> = registry.requests()[before..].to_vec();
    assert!(
        new.iter()
            .any(|r| r.starts_with(&format!("HEAD /v2/onnx-models/blobs/{model_layer} 200"))),
        "{new:?}"
    );
    // An upload is closed by `PUT …?digest=` (the colon escaped): none for the model's.
    let closed: Vec<&String> = new
        .iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("digest="))
        .collect();
    assert_eq!(closed.len(), 2, "the code layer and the config: {new:?}");
    assert!(
        !closed.iter().any(|r| r.contains(&model_layer[7..])),
        "{new:?}"
    );
    let updates = recorded_bodies(&moto, "PUT", "/functions/onnx/code");
    let new_digest = Layout::open(&layout_dir).unwrap().manifest_digest;
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(
        updates[0]["ImageUri"],
        format!("{ECR_HOST}/onnx-models@{new_digest}").as_str()
    );
    assert_eq!(
        moto.lambda_get("functions/onnx/aliases/live").unwrap()["FunctionVersion"],
        "2"
    );

    // Lambda cannot turn an image function into a zip one: refused before anything changes.
    let out = failed(xtask(
        Some(&moto),
        &[
            "deploy",
            "--function",
            "onnx",
            "--bootstrap",
            small_bootstrap().to_str().unwrap(),
            "--packed",
            small_packed().to_str().unwrap(),
            "--out",
            work.path().join("bootstrap.zip").to_str().unwrap(),
        ],
    ));
    assert!(
        out.contains("cannot change a function's package type"),
        "{out}"
    );
    moto.stop();
}

#[test]
fn a_registry_refusing_the_token_says_so_and_emit_sam_names_the_pushed_image() {
    test_support::require_fixtures!(
        "FALLBACK_BOOTSTRAP",
        "FALLBACK_PACKED",
        "MOTO_SERVER",
        "DOCKER_REGISTRY",
        "CFN_LINT"
    );
    let mut moto = MotoServer::start();
    let work = tempfile::tempdir().unwrap();
    let layout_dir = work.path().join("image");
    let (bootstrap, packed) = (small_bootstrap(), small_packed());

    // A registry that takes other credentials than ECR's token: a clear 401, no function.
    // (bcrypt of "not-the-ecr-token", cost 4.)
    let other = RegistryServer::start_with_htpasswd(
        "AWS:$2b$04$S3ZtuzCof0lu0IvMO2c91.ogEP/JSPa/i46wvM7hv0Icrwuv3TyGy\n",
    );
    let out = failed(deploy_image(
        &moto,
        &other.url,
        &bootstrap,
        &packed,
        &layout_dir,
        &["--role", "arn:aws:iam::123456789012:role/r"],
    ));
    assert!(out.contains("refused the credentials"), "{out}");
    assert!(out.contains("GetAuthorizationToken"), "{out}");
    assert!(moto.lambda_get("functions/onnx").is_none());

    let registry = RegistryServer::start();
    let template = work.path().join("template.yaml");
    let out = succeeded(deploy_image(
        &moto,
        &registry.url,
        &bootstrap,
        &packed,
        &layout_dir,
        &["--emit-sam", template.to_str().unwrap()],
    ));
    let digest = Layout::open(&layout_dir).unwrap().manifest_digest;
    assert!(out.contains("template.yaml"), "{out}");
    let lint = Command::new(test_support::fixture_path("CFN_LINT"))
        .arg(&template)
        .output()
        .unwrap();
    assert!(lint.status.success(), "cfn-lint:\n{}", output_text(&lint));
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&template).unwrap()).unwrap();
    let p = &t["Resources"]["Function"]["Properties"];
    assert_eq!(p["PackageType"], "Image", "{p}");
    assert_eq!(
        p["ImageUri"],
        format!("{ECR_HOST}/onnx-models@{digest}").as_str(),
        "{p}"
    );
    for key in ["Runtime", "Handler", "CodeUri"] {
        assert!(p.get(key).is_none(), "{key} in an image function: {p}");
    }
    // Nothing was deployed: the template is for SAM to deploy.
    assert!(moto.lambda_get("functions/onnx").is_none());
    moto.stop();
}
