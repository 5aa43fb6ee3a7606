//! `cargo xtask build` and `deploy` as the real xtask binary, against moto's Lambda, S3 and
//! IAM APIs on loopback. No test compiles the LTO release build: `--bootstrap` packages a
//! prebuilt binary: the same dev `bootstrap` the end-to-end tests run. It is linked on a
//! newer glibc than provided.al2023's 2.34 (lambda-fn/build.rs pins `hypot` back), so the
//! glibc check passing on it is part of what these tests show.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use test_support::{failed, output_text, succeeded};

use base64::Engine as _;
use sha2::Digest as _;
use test_support::MotoServer;

/// The real `bootstrap`, built once for the whole test run by `cargo xtask test`.
fn ours() -> PathBuf {
    test_support::fixture_path("FALLBACK_BOOTSTRAP")
}

fn xtask(moto: Option<&MotoServer>, args: &[&str]) -> Output {
    xtask_with(moto, &[], args)
}

/// [`xtask`] with `env` added (after moto's).
fn xtask_with(moto: Option<&MotoServer>, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args)
        .arg("--packed")
        .arg(test_support::fixture_path("FALLBACK_PACKED"));
    if let Some(m) = moto {
        m.configure(&mut cmd);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("xtask runs")
}

/// A copy of the bootstrap with `extra` bytes appended: a different zip, still a valid ELF.
fn variant(dir: &Path, name: &str, extra: &[u8]) -> String {
    let mut bytes = std::fs::read(ours()).unwrap();
    bytes.extend_from_slice(extra);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

/// What the server holds: moto's state without the empty tables it adds when a service is
/// first read, so only writes show.
fn resources(moto: &MotoServer) -> serde_json::Value {
    let mut state: serde_json::Value = serde_json::from_str(&moto.state()).unwrap();
    if let Some(services) = state.as_object_mut() {
        for tables in services.values_mut() {
            if let Some(t) = tables.as_object_mut() {
                t.retain(|_, rows| rows.as_array().is_none_or(|r| !r.is_empty()));
            }
        }
        services.retain(|_, t| t.as_object().is_none_or(|t| !t.is_empty()));
    }
    state
}

fn alias(moto: &MotoServer) -> serde_json::Value {
    moto.lambda_get("functions/onnx/aliases/live")
        .expect("alias exists")
}

#[test]
fn create_update_canary_promote() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let mut moto = MotoServer::start();
    let role = moto.create_role("onnx-lambda");
    let work = tempfile::tempdir().unwrap();
    let zip = work.path().join("bootstrap.zip");
    let deploy = |binary: &str, extra: &[&str]| {
        let mut args = vec![
            "deploy",
            "--function",
            "onnx",
            "--role",
            &role,
            "--bootstrap",
            binary,
            "--out",
            zip.to_str().unwrap(),
            "--env",
            "MODEL_S3_BUCKET=models",
        ];
        args.extend_from_slice(extra);
        xtask(Some(&moto), &args)
    };

    let out = succeeded(deploy(ours().to_str().unwrap(), &[]));
    assert!(out.contains("created onnx"), "{out}");
    // The version deploy prints is the packed file's, from the lock it was given.
    let lock = model_lock::LockFile::read(
        &test_support::fixture_path("FALLBACK_PACKED").join(model_lock::LOCK_FILE_NAME),
    )
    .unwrap();
    let version = lock.model("breast-cancer").unwrap().version();
    assert!(
        out.contains(&format!("model         breast-cancer {version}")),
        "{out}"
    );
    let f = moto.lambda_get("functions/onnx").unwrap();
    let conf = &f["Configuration"];
    assert_eq!(conf["Runtime"], "provided.al2023");
    assert_eq!(conf["Handler"], "bootstrap");
    assert_eq!(
        conf["Environment"]["Variables"]["MODEL_S3_BUCKET"],
        "models"
    );
    let zip_bytes = std::fs::read(&zip).unwrap();
    let code_sha =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&zip_bytes));
    assert_eq!(conf["CodeSha256"], code_sha.as_str());
    assert!(out.contains(&code_sha), "CodeSha256 printed: {out}");
    assert_eq!(alias(&moto)["FunctionVersion"], "1");

    // New code: updated, version 2, alias moved.
    let second = variant(work.path(), "second", b"2");
    let out = succeeded(deploy(&second, &["--memory", "2048"]));
    assert!(out.contains("updated onnx"), "{out}");
    assert!(out.contains("version       2"), "{out}");
    assert_eq!(alias(&moto)["FunctionVersion"], "2");
    let conf = moto.lambda_get("functions/onnx/configuration").unwrap();
    assert_eq!(conf["MemorySize"], 2048);

    // Canary: the alias stays on 2 and routes 10% to 3; promote moves it fully.
    let third = variant(work.path(), "third", b"3");
    succeeded(deploy(&third, &["--canary-weight", "0.1"]));
    let a = alias(&moto);
    assert_eq!(a["FunctionVersion"], "2", "{a}");
    assert_eq!(
        a["RoutingConfig"]["AdditionalVersionWeights"]["3"], 0.1,
        "{a}"
    );
    let out = succeeded(xtask(
        Some(&moto),
        &["deploy", "--function", "onnx", "--promote"],
    ));
    assert!(out.contains("version 3"), "{out}");
    let a = alias(&moto);
    assert_eq!(a["FunctionVersion"], "3", "{a}");
    let weights = &a["RoutingConfig"]["AdditionalVersionWeights"];
    assert!(
        weights.is_null() || weights.as_object().is_some_and(|w| w.is_empty()),
        "{a}"
    );
    // Nothing left to promote.
    let out = failed(xtask(
        Some(&moto),
        &["deploy", "--function", "onnx", "--promote"],
    ));
    assert!(out.contains("no canary to promote"), "{out}");
    moto.stop();
}

#[test]
fn a_zip_over_50_mb_goes_through_s3_and_dry_run_writes_nothing() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let mut moto = MotoServer::start();
    let role = moto.create_role("onnx-lambda");
    moto.create_bucket("artifacts");
    let work = tempfile::tempdir().unwrap();
    // Incompressible padding standing in for a big embedded model.
    let mut padding = vec![0u8; 55 * 1024 * 1024];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for chunk in padding.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let big = variant(work.path(), "big", &padding);
    let zip = work.path().join("big.zip");
    let base = [
        "deploy",
        "--function",
        "big",
        "--role",
        &role,
        "--bootstrap",
        &big,
        "--out",
        zip.to_str().unwrap(),
    ];

    // Dry run: prints the plan, the server's state does not change.
    let before = resources(&moto);
    let mut args = base.to_vec();
    args.extend(["--s3-bucket", "artifacts", "--dry-run"]);
    let out = succeeded(xtask(Some(&moto), &args));
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert!(out.contains("create function big"), "{out}");
    assert_eq!(resources(&moto), before, "dry run changed the server");

    // Without a bucket: refused before any upload.
    let out = failed(xtask(Some(&moto), &base));
    assert!(
        out.contains("over Lambda's 50.0 MB limit for direct upload: pass --s3-bucket"),
        "{out}"
    );
    assert_eq!(resources(&moto), before);

    let mut args = base.to_vec();
    args.extend(["--s3-bucket", "artifacts", "--s3-prefix", "lambda"]);
    let out = succeeded(xtask(Some(&moto), &args));
    assert!(out.contains("created big"), "{out}");
    let zip_bytes = std::fs::read(&zip).unwrap();
    assert!(zip_bytes.len() > 50 * 1024 * 1024);
    let sha = hex::encode(sha2::Sha256::digest(&zip_bytes));
    let key = format!("lambda/big/{sha}.zip");
    assert!(
        moto.get_object("artifacts", &key).as_deref() == Some(&zip_bytes[..]),
        "the zip is in s3://artifacts/{key}"
    );
    let conf = moto.lambda_get("functions/big/configuration").unwrap();
    assert_eq!(
        conf["CodeSha256"],
        base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(&zip_bytes))
            .as_str()
    );
    moto.stop();
}

#[test]
fn over_250_mb_unzipped_is_refused_with_a_breakdown() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let work = tempfile::tempdir().unwrap();
    let huge = variant(work.path(), "huge", &vec![0u8; 250 * 1024 * 1024]);
    let zip = work.path().join("huge.zip");
    let out = failed(xtask(
        None,
        &[
            "build",
            "--bootstrap",
            &huge,
            "--out",
            zip.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("over Lambda's 250.0 MB limit"), "{out}");
    assert!(
        out.contains("code") && out.contains("model breast-cancer"),
        "breakdown: {out}"
    );
    assert!(out.contains("embed = false"), "says what to do: {out}");
    assert!(!zip.exists(), "nothing written");
}

#[test]
fn the_zip_is_reproducible_and_lambda_shaped() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a.zip"), work.path().join("b.zip"));
    let boot = ours();
    succeeded(xtask(
        None,
        &[
            "build",
            "--bootstrap",
            boot.to_str().unwrap(),
            "--out",
            a.to_str().unwrap(),
        ],
    ));
    // A newer mtime on the binary must not change the zip.
    let copy = variant(work.path(), "bootstrap", b"");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&copy)
        .unwrap()
        .flush()
        .unwrap();
    let out = succeeded(xtask(
        None,
        &["build", "--bootstrap", &copy, "--out", b.to_str().unwrap()],
    ));
    let (za, zb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(za, zb, "same binary, byte-identical zip");
    assert!(
        out.contains(&hex::encode(sha2::Sha256::digest(&za))),
        "{out}"
    );

    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(za)).unwrap();
    assert_eq!(archive.len(), 1);
    let entry = archive.by_index(0).unwrap();
    assert_eq!(entry.name().unwrap(), "bootstrap");
    assert_eq!(entry.unix_mode(), Some(0o100755));
    assert_eq!(entry.size(), std::fs::metadata(&boot).unwrap().len());
}

#[test]
fn binaries_needing_a_newer_glibc_are_refused() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let work = tempfile::tempdir().unwrap();
    // arc4random arrived in glibc 2.36; provided.al2023 has 2.34.
    let src = work.path().join("new.c");
    std::fs::write(
        &src,
        "#include <stdlib.h>\nint main(void) { return (int)(arc4random() & 1); }\n",
    )
    .unwrap();
    let exe = work.path().join("new");
    let cc = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("cc runs");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = failed(xtask(
        None,
        &[
            "build",
            "--bootstrap",
            exe.to_str().unwrap(),
            "--out",
            work.path().join("x.zip").to_str().unwrap(),
        ],
    ));
    assert!(out.contains("arc4random@GLIBC_2.36"), "{out}");
    assert!(
        !work.path().join("x.zip").exists(),
        "no zip for a refused binary"
    );

    // Ours, linked on this same glibc, passes: without lambda-fn/build.rs libm's hypot
    // would bind to GLIBC_2.35. A wrong architecture is named.
    let ours = ours();
    succeeded(xtask(
        None,
        &[
            "build",
            "--bootstrap",
            ours.to_str().unwrap(),
            "--out",
            work.path().join("o.zip").to_str().unwrap(),
        ],
    ));
    let out = failed(xtask(
        None,
        &[
            "build",
            "--arch",
            "arm64",
            "--bootstrap",
            ours.to_str().unwrap(),
            "--out",
            work.path().join("y.zip").to_str().unwrap(),
        ],
    ));
    assert!(out.contains("is not a Linux arm64 executable"), "{out}");
}

#[test]
fn arm64_without_its_target_says_how_to_add_it() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let libdir = Command::new("rustc")
        .args([
            "--print",
            "target-libdir",
            "--target",
            "aarch64-unknown-linux-gnu",
        ])
        .output()
        .unwrap();
    let installed = libdir.status.success()
        && Path::new(String::from_utf8_lossy(&libdir.stdout).trim()).is_dir();
    if installed {
        eprintln!("aarch64 target installed here: the missing-target message cannot be shown");
        return;
    }
    let out = failed(xtask(None, &["build", "--arch", "arm64"]));
    assert!(
        out.contains("rustup target add aarch64-unknown-linux-gnu"),
        "{out}"
    );
}

/// The statements of the function's resource-based policy (none: no policy).
fn policy_statements(moto: &MotoServer) -> Vec<serde_json::Value> {
    let Some(policy) = moto.lambda_get("functions/onnx/policy?Qualifier=live") else {
        return Vec::new();
    };
    let doc: serde_json::Value = serde_json::from_str(policy["Policy"].as_str().unwrap()).unwrap();
    doc["Statement"].as_array().cloned().unwrap_or_default()
}

/// `deploy` of function `onnx` with a variant binary (`tag` appended, so each deploy is new
/// code) zipped next to `zip`.
fn deploy_variant(
    moto: &MotoServer,
    env: &[(&str, &str)],
    role: &str,
    zip: &Path,
    tag: &str,
    extra: &[&str],
) -> Output {
    let binary = variant(zip.parent().unwrap(), tag, tag.as_bytes());
    let mut args = vec![
        "deploy",
        "--function",
        "onnx",
        "--role",
        role,
        "--bootstrap",
        &binary,
        "--out",
        zip.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    xtask_with(Some(moto), env, &args)
}

#[test]
fn a_function_url_tracing_and_reserved_concurrency() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let mut moto = MotoServer::start();
    let role = moto.create_role("onnx-lambda");
    let work = tempfile::tempdir().unwrap();
    let zip = work.path().join("bootstrap.zip");
    let deploy = |tag: &str, extra: &[&str]| deploy_variant(&moto, &[], &role, &zip, tag, extra);

    let out = succeeded(deploy(
        "a",
        &[
            "--url",
            "--cors-origin",
            "https://app.example.com",
            "--reserved-concurrency",
            "5",
            "--tracing",
            "active",
        ],
    ));
    let url = moto
        .lambda_get_at("2021-10-31", "functions/onnx/url?Qualifier=live")
        .expect("a Function URL");
    assert_eq!(url["AuthType"], "AWS_IAM", "{url}");
    assert_eq!(
        url["Cors"]["AllowOrigins"],
        serde_json::json!(["https://app.example.com"])
    );
    let address = url["FunctionUrl"].as_str().unwrap();
    assert!(out.contains(address), "{out}");
    assert!(
        out.contains("--aws-sigv4 'aws:amz:us-east-1:lambda'"),
        "an IAM-signed request to paste: {out}"
    );
    let concurrency = moto
        .lambda_get_at("2019-09-30", "functions/onnx/concurrency")
        .unwrap();
    assert_eq!(concurrency["ReservedConcurrentExecutions"], 5);
    let conf = moto.lambda_get("functions/onnx/configuration").unwrap();
    assert_eq!(conf["TracingConfig"]["Mode"], "Active");
    assert!(
        policy_statements(&moto).is_empty(),
        "IAM auth needs no policy"
    );

    // Public: both permissions Lambda requires, and a warning.
    let out = succeeded(deploy("b", &["--url", "--public"]));
    let url = moto
        .lambda_get_at("2021-10-31", "functions/onnx/url?Qualifier=live")
        .unwrap();
    assert_eq!(url["AuthType"], "NONE");
    assert!(out.contains("warning: the URL is public"), "{out}");
    assert!(!out.contains("--aws-sigv4"), "{out}");
    let statements = policy_statements(&moto);
    let action = |sid: &str| {
        statements
            .iter()
            .find(|s| s["Sid"] == sid)
            .map(|s| (s["Action"].clone(), s["Principal"].clone()))
    };
    assert_eq!(
        action("FunctionURLAllowPublicAccess"),
        Some((
            serde_json::json!("lambda:InvokeFunctionUrl"),
            serde_json::json!("*")
        )),
        "{statements:?}"
    );
    assert_eq!(
        action("FunctionURLAllowInvokeAction").map(|a| a.0),
        Some(serde_json::json!("lambda:InvokeFunction")),
        "{statements:?}"
    );

    // Back to IAM auth: the public permissions go.
    succeeded(deploy("c", &["--url"]));
    let url = moto
        .lambda_get_at("2021-10-31", "functions/onnx/url?Qualifier=live")
        .unwrap();
    assert_eq!(url["AuthType"], "AWS_IAM");
    assert!(
        policy_statements(&moto).is_empty(),
        "{:?}",
        policy_statements(&moto)
    );

    let out = failed(deploy(
        "e",
        &[
            "--provisioned-concurrency",
            "6",
            "--reserved-concurrency",
            "5",
        ],
    ));
    assert!(out.contains("more than the reserved concurrency"), "{out}");
    let out = failed(deploy("f", &["--public"]));
    assert!(out.contains("add --url"), "{out}");
    moto.stop();
}

/// moto has no provisioned-concurrency API: `LambdaProxy` answers it as Lambda documents it
/// and records what `deploy` sent, and passes every other Lambda call on to moto.
#[test]
fn provisioned_concurrency_is_asked_for_on_the_alias_and_waited_for() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let mut moto = MotoServer::start();
    let proxy = test_support::LambdaProxy::start(&moto.endpoint);
    let role = moto.create_role("onnx-lambda");
    let work = tempfile::tempdir().unwrap();
    let zip = work.path().join("bootstrap.zip");
    let env = [("AWS_ENDPOINT_URL_LAMBDA", proxy.endpoint.as_str())];
    let deploy = |tag: &str, extra: &[&str]| deploy_variant(&moto, &env, &role, &zip, tag, extra);
    let out = succeeded(deploy("a", &["--provisioned-concurrency", "2"]));
    assert!(
        out.contains("provisioned concurrency: 0 of 2 ready (IN_PROGRESS)"),
        "{out}"
    );
    assert!(out.contains("provisioned   2 of 2 (READY)"), "{out}");
    let puts: Vec<_> = proxy
        .recorded()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.target.contains("/provisioned-concurrency"))
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(
        puts[0].target,
        "/2019-09-30/functions/onnx/provisioned-concurrency?Qualifier=live"
    );
    let body: serde_json::Value = serde_json::from_slice(&puts[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"ProvisionedConcurrentExecutions": 2})
    );
    assert!(
        proxy
            .recorded()
            .iter()
            .any(|r| r.target.contains("/aliases")),
        "the other calls went through to moto"
    );

    // A canary, then --promote with the setting: the alias keeps it, set again and ready.
    succeeded(deploy("b", &["--canary-weight", "0.5"]));
    let out = succeeded(xtask_with(
        Some(&moto),
        &env,
        &[
            "deploy",
            "--function",
            "onnx",
            "--promote",
            "--provisioned-concurrency",
            "2",
        ],
    ));
    assert!(out.contains("promoted"), "{out}");
    assert!(out.contains("provisioned   2 of 2 (READY)"), "{out}");
    moto.stop();
}

/// `xtask deploy` with this environment instead of moto's.
fn deploy_with_env(env: &[(&str, &str)], extra: &[&str]) -> String {
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["deploy", "--function", "onnx", "--bootstrap"])
        .arg(ours())
        .arg("--out")
        .arg(work.path().join("b.zip"))
        .arg("--packed")
        .arg(test_support::fixture_path("FALLBACK_PACKED"))
        .args(extra);
    for var in [
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        // What a user without backtraces on sees (this machine's shell sets one).
        "RUST_BACKTRACE",
        "RUST_LIB_BACKTRACE",
    ] {
        cmd.env_remove(var);
    }
    // No profile files, no instance metadata: only what `env` gives.
    cmd.env("AWS_CONFIG_FILE", work.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", work.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied());
    failed(cmd.output().expect("xtask runs"))
}

/// The error part of xtask's output (after `Error: `).
fn error_lines(out: &str) -> Vec<&str> {
    let at = out
        .find("Error: ")
        .unwrap_or_else(|| panic!("no error in {out}"));
    out[at..].lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn aws_failures_say_what_to_do_in_two_lines() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let out = deploy_with_env(&[("AWS_REGION", "eu-west-1")], &[]);
    let lines = error_lines(&out);
    assert!(
        lines[0].contains("lambda:GetFunction failed: no AWS credentials found"),
        "{out}"
    );
    assert!(
        lines.len() <= 2 && lines[1].contains("aws sso login"),
        "{out}"
    );
    assert!(
        !out.contains("DispatchFailure"),
        "no SDK dump without -v: {out}"
    );

    let out = deploy_with_env(
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
        ],
        &[],
    );
    let lines = error_lines(&out);
    assert!(lines[0].contains("no AWS region set"), "{out}");
    assert!(lines.len() <= 2 && lines[1].contains("AWS_REGION"), "{out}");

    // Nothing listens on port 9: unreachable; -v adds the SDK's own account of it.
    let unreachable = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ];
    let out = deploy_with_env(&unreachable, &[]);
    assert!(
        error_lines(&out)[0].contains("could not be reached"),
        "{out}"
    );
    assert!(!out.contains("full error"), "{out}");
    let out = deploy_with_env(&unreachable, &["-v"]);
    assert!(out.contains("full error: "), "{out}");
}

/// `cfn-lint` on a template: no errors and no warnings.
fn lint(template: &Path) {
    let out = Command::new(test_support::fixture_path("CFN_LINT"))
        .arg(template)
        .output()
        .expect("cfn-lint runs");
    assert!(
        out.status.success(),
        "cfn-lint on {}:\n{}\n{}",
        template.display(),
        output_text(&out),
        std::fs::read_to_string(template).unwrap()
    );
}

fn emit_sam(work: &Path, extra: &[&str]) -> (Output, PathBuf) {
    let template = work.join("template.yaml");
    let (ours, zip) = (ours(), work.join("bootstrap.zip"));
    let mut args = vec![
        "deploy",
        "--function",
        "onnx",
        "--bootstrap",
        ours.to_str().unwrap(),
        "--out",
        zip.to_str().unwrap(),
        "--emit-sam",
        template.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    (xtask(None, &args), template)
}

#[test]
fn emit_sam_writes_the_same_deployment_and_cfn_lint_passes_it() {
    test_support::require_fixtures!(
        "FALLBACK_BOOTSTRAP",
        "FALLBACK_PACKED",
        "MOTO_SERVER",
        "CFN_LINT"
    );
    let work = tempfile::tempdir().unwrap();
    // A Function URL, the S3 store's read policy, tracing, both concurrencies and a 5%
    // canary (a CodeDeploy config of its own).
    let (out, template) = emit_sam(
        work.path(),
        &[
            "--env",
            "MODEL_S3_BUCKET=models",
            "--url",
            "--public",
            "--cors-origin",
            "https://app.example.com",
            "--tracing",
            "active",
            "--reserved-concurrency",
            "10",
            "--provisioned-concurrency",
            "2",
            "--canary-weight",
            "0.05",
        ],
    );
    let out = succeeded(out);
    assert!(out.contains("template.yaml"), "{out}");
    lint(&template);
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&template).unwrap()).unwrap();
    let f = &t["Resources"]["Function"];
    assert_eq!(f["Type"], "AWS::Serverless::Function");
    let p = &f["Properties"];
    assert_eq!(p["Runtime"], "provided.al2023");
    assert_eq!(p["Handler"], "bootstrap");
    assert_eq!(p["CodeUri"], "bootstrap.zip");
    assert_eq!(p["AutoPublishAlias"], "live");
    assert_eq!(p["Architectures"], serde_json::json!(["x86_64"]));
    assert_eq!(p["Environment"]["Variables"]["MODEL_S3_BUCKET"], "models");
    assert_eq!(p["Tracing"], "Active");
    assert_eq!(p["ReservedConcurrentExecutions"], 10);
    assert_eq!(
        p["ProvisionedConcurrencyConfig"]["ProvisionedConcurrentExecutions"],
        2
    );
    assert_eq!(p["FunctionUrlConfig"]["AuthType"], "NONE");
    assert_eq!(
        p["FunctionUrlConfig"]["Cors"]["AllowOrigins"],
        serde_json::json!(["https://app.example.com"])
    );
    assert!(p["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["S3ReadPolicy"]["BucketName"] == "models"));
    assert_eq!(
        p["DeploymentPreference"]["Type"]["Ref"],
        "CanaryDeploymentConfig"
    );
    let canary = &t["Resources"]["CanaryDeploymentConfig"]["Properties"]["TrafficRoutingConfig"];
    assert_eq!(canary["TimeBasedCanary"]["CanaryPercentage"], 5);
    for output in ["Url", "FunctionArn", "AliasArn"] {
        assert!(t["Outputs"][output]["Value"].is_object(), "{output} in {t}");
    }

    // An HTTP API instead, an existing role (so no Policies) and CodeDeploy's own 10% canary.
    let (out, template) = emit_sam(
        work.path(),
        &[
            "--http-api",
            "--role",
            "arn:aws:iam::123456789012:role/r",
            "--canary-weight",
            "0.1",
        ],
    );
    succeeded(out);
    lint(&template);
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&template).unwrap()).unwrap();
    let p = &t["Resources"]["Function"]["Properties"];
    assert_eq!(p["Events"]["Api"]["Type"], "HttpApi");
    assert_eq!(p["Role"], "arn:aws:iam::123456789012:role/r");
    assert!(p.get("Policies").is_none());
    assert_eq!(p["DeploymentPreference"]["Type"], "Canary10Percent5Minutes");
    assert!(t["Outputs"]["Url"]["Value"]["Fn::Sub"].is_string());

    // A share CodeDeploy cannot shift is refused, saying why.
    let (out, _) = emit_sam(work.path(), &["--canary-weight", "0.125"]);
    let out = failed(out);
    assert!(out.contains("whole percentages"), "{out}");
}
