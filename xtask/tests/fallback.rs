//! The EFS/S3 fallback, end to end: the real fallback-fixture `bootstrap` (built once by
//! `cargo xtask test` from xtask/tests/fixtures/fallback/models.toml) under the Runtime API
//! emulator, moto's S3 API on loopback, a temporary directory as EFS, and the stores filled
//! by the real `cargo xtask publish-models`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use model_lock::LockFile;
use runtime_emulator::{events, Function};
use serde_json::{json, Value};
use test_support::default_samples as samples;
use test_support::function::{init_error, log_lines, start};
use test_support::MotoServer;

const BUCKET: &str = "models";
const PREFIX: &str = "prod/v1";

fn packed_dir() -> PathBuf {
    test_support::fixture_path("FALLBACK_PACKED")
}

fn fixture_bootstrap() -> PathBuf {
    test_support::fixture_path("FALLBACK_BOOTSTRAP")
}

fn lock() -> LockFile {
    LockFile::read(&packed_dir().join("models.lock")).unwrap()
}

fn sha_of(name: &str) -> String {
    lock().model(name).unwrap().sha256.clone()
}

/// A copy of the fixture binary with one byte flipped inside the embedded "breast-cancer"
/// bytes, found by searching the binary for the packed file.
fn corrupted_bootstrap(dir: &Path) -> PathBuf {
    let entry = lock().model("breast-cancer").unwrap().clone();
    let packed = std::fs::read(packed_dir().join(&entry.file)).unwrap();
    let mut binary = std::fs::read(fixture_bootstrap()).unwrap();
    let hits: Vec<usize> = binary
        .windows(packed.len())
        .enumerate()
        .filter(|(_, w)| *w == packed.as_slice())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "the packed bytes are embedded exactly once");
    binary[hits[0] + packed.len() / 2] ^= 0x01;
    let path = dir.join("bootstrap");
    std::fs::write(&path, &binary).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// `cargo xtask publish-models` from the fixture's packed directory.
fn publish(moto: Option<&MotoServer>, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("publish-models")
        .arg("--packed")
        .arg(packed_dir())
        .args(args);
    if let Some(moto) = moto {
        moto.configure(&mut cmd);
    }
    let out = cmd.output().expect("xtask runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "publish-models failed: {text}");
    text
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn s3_env(endpoint: &str, tmp: &Path) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("MODEL_S3_BUCKET", BUCKET),
        ("MODEL_S3_PREFIX", PREFIX),
        ("MODEL_TMP_DIR", tmp.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Every sample row through `model`: the scikit-learn probabilities, and the store named.
async fn assert_serves_samples(f: &Function, model: &str, source: &str) {
    let samples = samples();
    for row in samples["rows"].as_array().unwrap() {
        let resp = test_support::function::invoke(
            f,
            &json!({"model": model, "features": row["features"]}),
        )
        .await;
        assert_eq!(resp["model"], model, "{resp}");
        assert_eq!(resp["source"], source, "{resp}");
        let got = resp["outputs"]["probabilities"][0].as_array().unwrap();
        for (g, w) in got.iter().zip(row["probabilities"].as_array().unwrap()) {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!((g - w).abs() <= 1e-5, "{model}: {g} vs scikit-learn {w}");
        }
        assert_eq!(resp["labels"][0], row["label"]);
    }
}

// moto's helpers block, so this test drives the async parts itself.
#[test]
fn corrupted_embedded_model_falls_back_to_efs_then_s3_never_to_a_tampered_copy() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let rt = runtime();
    let mut moto = MotoServer::start();
    moto.create_bucket(BUCKET);
    let work = tempfile::tempdir().unwrap();
    let efs = work.path().join("efs");
    let s3_url = format!("s3://{BUCKET}/{PREFIX}");
    let out = publish(
        Some(&moto),
        &["--s3", &s3_url, "--efs-dir", efs.to_str().unwrap()],
    );
    assert_eq!(out.matches("copied").count(), 3, "{out}");
    assert_eq!(out.matches("uploaded").count(), 3, "{out}");
    // Publishing again changes nothing.
    let again = publish(
        Some(&moto),
        &["--s3", &s3_url, "--efs-dir", efs.to_str().unwrap()],
    );
    assert_eq!(again.matches("unchanged").count(), 6, "{again}");

    let sha = sha_of("breast-cancer");
    // The fixture's models are packed compiled: the stores hold that form.
    assert_eq!(
        lock().model("breast-cancer").unwrap().format,
        model_lock::ModelFormat::Nnef
    );
    let efs_copy = efs.join(format!("breast-cancer/{sha}.nnef.tar"));
    let s3_key = format!("{PREFIX}/breast-cancer/{sha}.nnef.tar");
    let good = std::fs::read(&efs_copy).expect("published in the documented layout");
    assert!(
        moto.get_object(BUCKET, &s3_key).as_deref() == Some(&good[..]),
        "s3://{BUCKET}/{s3_key} holds the published copy"
    );
    let bootstrap = corrupted_bootstrap(work.path());

    // EFS holds a good copy: it serves, and S3 is never asked (nothing lands in /tmp).
    let tmp = work.path().join("tmp-efs");
    let mut env = s3_env(&moto.endpoint, &tmp);
    env.push(("MODEL_EFS_DIR".into(), efs.to_str().unwrap().into()));
    let f = rt.block_on(start(&bootstrap, &env));
    rt.block_on(assert_serves_samples(&f, "breast-cancer", "efs"));
    assert!(!tmp.exists(), "S3 was consulted although EFS had the model");
    let logs = f.logs().join("\n");
    assert!(logs.contains("embedded copy failed its checksum"), "{logs}");
    drop(f);

    // No EFS mount: S3 serves, and the verified download is kept in /tmp.
    let tmp = work.path().join("tmp-s3");
    let mut env = s3_env(&moto.endpoint, &tmp);
    env.push((
        "MODEL_EFS_DIR".into(),
        work.path().join("not-mounted").to_str().unwrap().into(),
    ));
    let f = rt.block_on(start(&bootstrap, &env));
    rt.block_on(assert_serves_samples(&f, "breast-cancer", "s3"));
    assert_eq!(
        std::fs::read(tmp.join(format!("{sha}.nnef.tar"))).unwrap(),
        good
    );
    drop(f);

    // Both stores tampered with: the function refuses to start, naming the model and
    // every store it tried; nothing wrong is kept in /tmp.
    let mut tampered = good.clone();
    tampered[good.len() / 3] ^= 0x20;
    std::fs::write(&efs_copy, &tampered).unwrap();
    moto.put_object(BUCKET, &s3_key, tampered);
    let tmp = work.path().join("tmp-tampered");
    let mut env = s3_env(&moto.endpoint, &tmp);
    env.push(("MODEL_EFS_DIR".into(), efs.to_str().unwrap().into()));
    let f = rt.block_on(start(&bootstrap, &env));
    let message = rt.block_on(init_error(&f));
    for needle in [
        "\"breast-cancer\"",
        "checksum mismatch",
        "efs: ",
        "s3: ",
        "wrong contents",
        &sha,
    ] {
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
    assert!(
        rt.block_on(f.wait_exit(test_support::function::TIMEOUT))
            .is_some(),
        "the function exits"
    );
    let failed = log_lines(&f, "fallback source failed");
    assert_eq!(failed.len(), 2, "one log line per store: {failed:?}");
    let kept: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(kept.is_empty(), "a wrong copy was kept: {kept:?}");
    drop(f);

    // The stores are not trusted for size or kind: a longer EFS copy and a longer S3 object
    // are skipped by the lock's size without being read; a FIFO is skipped unopened (it
    // would block init) and a symlink leaving the store is not followed.
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 1024]);
    std::fs::write(&efs_copy, &longer).unwrap();
    moto.put_object(BUCKET, &s3_key, longer);
    let tmp = work.path().join("tmp-longer");
    let mut env = s3_env(&moto.endpoint, &tmp);
    env.push(("MODEL_EFS_DIR".into(), efs.to_str().unwrap().into()));
    let f = rt.block_on(start(&bootstrap, &env));
    let message = rt.block_on(init_error(&f));
    let want = format!("the build expects {}", good.len());
    assert_eq!(message.matches(&want).count(), 2, "{message}");
    assert!(
        message.contains("skipped without reading it") && message.contains("not downloaded"),
        "{message}"
    );
    drop(f);

    std::fs::remove_file(&efs_copy).unwrap();
    let fifo = Command::new("mkfifo").arg(&efs_copy).status().unwrap();
    assert!(fifo.success());
    let mut env = s3_env(&moto.endpoint, &work.path().join("tmp-fifo"));
    env.push(("MODEL_EFS_DIR".into(), efs.to_str().unwrap().into()));
    let f = rt.block_on(start(&bootstrap, &env));
    let message = rt.block_on(init_error(&f));
    assert!(message.contains("not a regular file"), "{message}");
    drop(f);

    std::fs::remove_file(&efs_copy).unwrap();
    let outside = work.path().join("outside.onnx");
    std::fs::write(&outside, &good).unwrap();
    std::os::unix::fs::symlink(&outside, &efs_copy).unwrap();
    let mut env = s3_env(&moto.endpoint, &work.path().join("tmp-symlink"));
    env.push(("MODEL_EFS_DIR".into(), efs.to_str().unwrap().into()));
    let f = rt.block_on(start(&bootstrap, &env));
    let message = rt.block_on(init_error(&f));
    assert!(message.contains("outside the store"), "{message}");
    moto.stop();
}

/// moto with the packed models published to S3, and the function's environment for that
/// store alone (no EFS; its `/tmp` copies under `work/tmp`).
struct S3Store {
    moto: MotoServer,
    work: tempfile::TempDir,
    env: Vec<(String, String)>,
}

fn published_to_s3() -> S3Store {
    let moto = MotoServer::start();
    moto.create_bucket(BUCKET);
    publish(Some(&moto), &["--s3", &format!("s3://{BUCKET}/{PREFIX}")]);
    let work = tempfile::tempdir().unwrap();
    let mut env = s3_env(&moto.endpoint, &work.path().join("tmp"));
    env.push(("MODEL_EFS_DIR".into(), String::new()));
    S3Store { moto, work, env }
}

// moto's helpers block, so this test drives the async parts itself.
#[test]
fn models_not_embedded_load_from_s3_on_first_use_then_stay_in_memory() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let rt = runtime();
    let S3Store {
        mut moto,
        work,
        mut env,
    } = published_to_s3();
    let tmp = work.path().join("tmp");
    env.push(("MODEL_MAX_LOADED".into(), "1".into()));
    let f = rt.block_on(start(&fixture_bootstrap(), &env));

    // First use: fetched from S3 and verified.
    rt.block_on(assert_serves_samples(&f, "lazy-a", "s3"));
    let loads = |f: &Function, model: &str| {
        log_lines(f, "model loaded")
            .into_iter()
            .filter(|l| l["model"] == model)
            .count()
    };
    assert_eq!(loads(&f, "lazy-a"), 1, "loaded once for every sample row");

    // Only one model loaded on demand stays: lazy-b pushes lazy-a out.
    rt.block_on(assert_serves_samples(&f, "lazy-b", "s3"));
    let unloaded = log_lines(&f, "model unloaded (least recently used)");
    assert_eq!(unloaded.len(), 1, "{unloaded:?}");
    assert_eq!(unloaded[0]["model"], "lazy-a");

    // S3 gone and /tmp wiped: lazy-b is served from memory, the embedded model as ever.
    moto.stop();
    std::fs::remove_dir_all(&tmp).unwrap();
    rt.block_on(assert_serves_samples(&f, "lazy-b", "s3"));
    assert_eq!(loads(&f, "lazy-b"), 1);
    rt.block_on(assert_serves_samples(&f, "breast-cancer", "embedded"));

    // lazy-a was evicted and no store can give it back: 503 with the reason, over HTTP
    // and as a direct invocation; the function stays up.
    let row = &samples()["rows"][0]["features"];
    let request = json!({"model": "lazy-a", "features": row});
    let resp = rt.block_on(test_support::function::invoke(&f, &request));
    assert_eq!(resp["status"], 503, "{resp}");
    let message = resp["error"].as_str().unwrap();
    for needle in ["\"lazy-a\"", "not embedded", "efs: not configured", "s3: "] {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    let event = events::apigw_v2(
        "POST",
        "/",
        &[],
        serde_json::to_vec(&request).unwrap().as_slice(),
        false,
    );
    let http = rt.block_on(test_support::function::invoke(&f, &event));
    assert_eq!(http["statusCode"], 503, "{http}");
    rt.block_on(assert_serves_samples(&f, "lazy-b", "s3"));
}

/// Accepts TCP connections and never answers: an S3 endpoint that hangs.
fn black_hole() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test]
async fn a_hanging_s3_endpoint_is_given_up_on_within_the_budget() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let (endpoint, accepted) = black_hole();
    let work = tempfile::tempdir().unwrap();
    let bootstrap = corrupted_bootstrap(work.path());
    let mut env = s3_env(&endpoint, &work.path().join("tmp"));
    env.push(("MODEL_EFS_DIR".into(), String::new()));
    env.push(("MODEL_FALLBACK_BUDGET_SECS".into(), "2".into()));
    let started = Instant::now();
    let f = start(&bootstrap, &env).await;
    let message = init_error(&f).await;
    let elapsed = started.elapsed();
    assert!(
        message.contains("gave up after the 2.0 s fallback budget (MODEL_FALLBACK_BUDGET_SECS)"),
        "{message}"
    );
    assert!(message.contains("\"breast-cancer\""), "{message}");
    assert!(accepted.load(Ordering::SeqCst) >= 1, "S3 was really tried");
    // Without the budget the SDK's own timeouts and retries would take a minute; a bound
    // this loose only fails if the budget is not enforced.
    assert!(
        elapsed < Duration::from_secs(20),
        "gave up after {elapsed:?}"
    );
}

/// An S3 stand-in that answers every request 200 with a body that never ends, sent chunked
/// so no `Content-Length` gives it away; counts the bytes it managed to send.
fn endless_body() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let count = sent.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let count = count.clone();
            std::thread::spawn(move || {
                use std::io::{BufRead, BufReader, Write};
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let framed = [
                    format!("{:x}\r\n", chunk.len()).into_bytes(),
                    chunk,
                    b"\r\n".to_vec(),
                ]
                .concat();
                while stream.write_all(&framed).is_ok() {
                    count.fetch_add(64 * 1024, Ordering::SeqCst);
                }
            });
        }
    });
    (format!("http://{addr}"), sent)
}

#[tokio::test]
async fn an_s3_body_past_the_locks_size_is_cut_off() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let (endpoint, sent) = endless_body();
    let work = tempfile::tempdir().unwrap();
    let bootstrap = corrupted_bootstrap(work.path());
    let mut env = s3_env(&endpoint, &work.path().join("tmp"));
    env.push(("MODEL_EFS_DIR".into(), String::new()));
    let f = start(&bootstrap, &env).await;
    let message = init_error(&f).await;
    let size = lock().model("breast-cancer").unwrap().size;
    assert!(
        message.contains(&format!("more than the {size} bytes the build expects")),
        "{message}"
    );
    assert!(
        sent.load(Ordering::SeqCst) > 0,
        "the endless body was really served"
    );
}

#[tokio::test]
async fn model_names_from_requests_never_reach_a_store() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let (endpoint, accepted) = black_hole();
    let work = tempfile::tempdir().unwrap();
    let efs = work.path().join("efs");
    std::fs::create_dir_all(&efs).unwrap();
    let mut env = s3_env(&endpoint, &work.path().join("tmp"));
    env.push(("MODEL_EFS_DIR".into(), efs.to_str().unwrap().into()));
    let f = start(&fixture_bootstrap(), &env).await;
    let row = &samples()["rows"][0]["features"];
    let tricks = [
        "../etc/passwd",
        "/etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e/%2e%2e/etc/passwd",
        "lazy-a/../lazy-b",
        "lazy-a/",
        "..",
        ".",
        "LAZY-A",
        "lazy-a\u{0}",
        "lazy-a\\..\\x",
        "",
    ];
    for name in tricks {
        for via_http in [false, true] {
            let request = json!({"model": name, "features": row});
            let (status, body) = if via_http {
                let event = events::apigw_v2(
                    "POST",
                    "/",
                    &[],
                    serde_json::to_vec(&request).unwrap().as_slice(),
                    false,
                );
                let resp = test_support::function::invoke(&f, &event).await;
                let body: Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
                (resp["statusCode"].clone(), body)
            } else {
                let resp = test_support::function::invoke(&f, &request).await;
                (resp["status"].clone(), resp)
            };
            assert_eq!(status, 400, "{name:?}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains("does not match"),
                "{name:?}: {body}"
            );
        }
    }
    // A well-formed name that the build does not know is a 404, also without a lookup.
    let resp =
        test_support::function::invoke(&f, &json!({"model": "lazy-c", "features": row})).await;
    assert_eq!(resp["status"], 404, "{resp}");

    assert_eq!(accepted.load(Ordering::SeqCst), 0, "S3 was contacted");
    assert!(
        log_lines(&f, "fallback source failed").is_empty(),
        "a store was consulted"
    );
    assert_eq!(
        std::fs::read_dir(&efs).unwrap().count(),
        0,
        "the EFS directory changed"
    );
    assert!(!work.path().join("tmp").exists(), "/tmp was written");
}

/// A model loaded on first use gets only the invocation's remaining time, whatever the
/// budget says: a hanging store gives a 503 before the function times out.
#[tokio::test]
async fn a_first_use_load_ends_before_the_invocations_deadline() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let (endpoint, accepted) = black_hole();
    let work = tempfile::tempdir().unwrap();
    let mut env = s3_env(&endpoint, &work.path().join("tmp"));
    env.push(("MODEL_EFS_DIR".into(), String::new()));
    env.push(("MODEL_FALLBACK_BUDGET_SECS".into(), "60".into()));
    let f = start(&fixture_bootstrap(), &env).await;
    let row = &samples()["rows"][0]["features"];
    let request = serde_json::to_vec(&json!({"model": "lazy-a", "features": row})).unwrap();
    let started = Instant::now();
    // The emulator gives the invocation this long (Lambda-Runtime-Deadline-Ms).
    let outcome = f.invoke(request, Duration::from_secs(4)).await;
    let answer: Value = match outcome {
        Ok(runtime_emulator::Outcome::Response(body)) => serde_json::from_slice(&body).unwrap(),
        other => panic!(
            "no answer before the deadline: {other:?}\n{}",
            f.logs().join("\n")
        ),
    };
    assert_eq!(answer["status"], 503, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(message.contains("invocation's remaining time"), "{message}");
    assert!(accepted.load(Ordering::SeqCst) >= 1, "S3 was really tried");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// A model loaded from S3 while an invocation is answered: the S3 request carries the
/// invocation's X-Ray trace header (lambda_runtime sets `_X_AMZN_TRACE_ID`, the AWS SDK
/// passes it on), and the load is a metric of that invocation, naming the fallback.
#[test]
fn a_traced_first_use_load_passes_the_trace_on_and_is_measured() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED", "MOTO_SERVER");
    let rt = runtime();
    let S3Store {
        mut moto,
        work: _work,
        env,
    } = published_to_s3();
    let f = rt.block_on(start(&fixture_bootstrap(), &env));
    moto.start_recording();

    let trace = "Root=1-6750a1b2-5e1b2c3d4e5f6a7b8c9d0e1f;Parent=53995c3f42cd8ad8;Sampled=1";
    let row = &samples()["rows"][0]["features"];
    let request = serde_json::to_vec(&json!({"model": "lazy-a", "features": row})).unwrap();
    let outcome = rt
        .block_on(f.invoke_as("traced-1", trace, request, test_support::function::TIMEOUT))
        .unwrap();
    assert_eq!(outcome.json()["source"], "s3", "{}", outcome.json());

    let key = format!("{PREFIX}/lazy-a/");
    let gets: Vec<Value> = moto
        .recorded()
        .into_iter()
        .filter(|r| r["method"] == "GET" && r["url"].as_str().unwrap_or("").contains(&key))
        .collect();
    assert!(
        !gets.is_empty(),
        "the model was fetched: {:?}",
        moto.recorded()
    );
    for get in &gets {
        let header = get["headers"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amzn-trace-id"))
            .map(|(_, v)| v.clone());
        assert_eq!(header, Some(json!(trace)), "{get}");
    }

    std::thread::sleep(Duration::from_millis(300));
    let fallback_loads: Vec<Value> = test_support::function::json_lines(&f)
        .into_iter()
        .filter(|v| v.get("FallbackLoads").is_some())
        .collect();
    assert_eq!(fallback_loads.len(), 1, "{:?}", f.logs());
    let doc = &fallback_loads[0];
    assert_eq!(
        (&doc["Model"], &doc["ModelSource"], &doc["requestId"]),
        (&json!("lazy-a"), &json!("s3"), &json!("traced-1"))
    );
    assert!(doc["ModelLoadTime"][0].as_f64().unwrap() > 0.0, "{doc}");
    moto.stop();
}
