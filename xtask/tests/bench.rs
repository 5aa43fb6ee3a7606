//! `cargo xtask bench` as the real xtask binary, on the smallest workload: the dev
//! `bootstrap` the end-to-end tests run against a real Python 3.11 process on onnxruntime
//! through awslambdaric, both under the Runtime API emulator. What it checks is that the
//! bench measures both sides and that their answers agree, not how fast anything is: speed
//! lives in BENCHMARKS.md.

use std::process::{Command, Output};

use test_support::output_text;

use serde_json::Value;

fn bench(args: &[&str], out: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("bench")
        .arg("--bootstrap")
        .arg(test_support::fixture_path("FALLBACK_BOOTSTRAP"))
        .arg("--packed")
        .arg(test_support::fixture_path("FALLBACK_PACKED"))
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("xtask runs")
}

#[test]
fn classifier_bench_measures_both_sides_and_writes_the_table() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED");
    let dir = tempfile::tempdir().unwrap();
    let out = bench(
        &[
            "--models",
            "classifier",
            "--cold",
            "2",
            "--warm",
            "10",
            "--warm-secs",
            "5",
        ],
        dir.path(),
    );
    let log = output_text(&out);
    assert!(out.status.success(), "bench failed:\n{log}");

    let results: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap()).unwrap();
    let sides = ["ours", "onnxruntime fp32"];
    for side in sides {
        let cold = results["cold"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["side"] == side)
            .unwrap_or_else(|| panic!("no cold start for {side}:\n{results:#}"));
        assert_eq!(cold["runs"], 2);
        assert!(cold["median_ms"].as_f64().unwrap() > 0.0);
        // Both processes report their init phases: ours from the `model loaded` line,
        // Python's from the handler's import and session timings.
        let phases = cold["phases_ms"].as_object().unwrap();
        let want = if side == "ours" { "decode" } else { "import" };
        assert!(phases.contains_key(want), "{side} phases: {phases:?}");
        if side == "ours" {
            // Which matrix-product kernels the plan chose (the classifier has one product).
            let kernels = cold["kernels"].as_str().unwrap_or_default();
            assert!(kernels.contains("×1"), "kernels: {cold}");
        }
        // And again pinned to one core.
        let pinned = format!("{side}, 1 core");
        assert!(
            results["cold"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["side"] == pinned.as_str() && c["runs"] == 2),
            "no pinned cold start for {side}:\n{results:#}"
        );
        for threads in [1, 2] {
            for batch in [1, 8] {
                let row =
                    results["warm"].as_array().unwrap().iter().find(|w| {
                        w["side"] == side && w["threads"] == threads && w["batch"] == batch
                    });
                let row = row.unwrap_or_else(|| {
                    panic!("no warm row for {side}, {threads} threads, batch {batch}")
                });
                assert!(row["stats"]["n"].as_u64().unwrap() >= 10, "{row}");
                let p50 = row["stats"]["p50_ms"].as_f64().unwrap();
                let p99 = row["stats"]["p99_ms"].as_f64().unwrap();
                assert!(p50 > 0.0 && p50 <= p99, "{row}");
            }
            let rss = results["rss"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["side"] == side && r["threads"] == threads);
            assert!(rss.unwrap()["peak_rss_mib"].as_f64().unwrap() > 1.0);
        }
    }
    // Ours was compared with onnxruntime on every workload (the bench fails outright when
    // they disagree) and the comparison is on record.
    let agreement = results["agreement"].as_array().unwrap();
    assert!(!agreement.is_empty());
    for a in agreement {
        assert_eq!(a["against"], "onnxruntime fp32");
        assert!(a["value"].as_f64().unwrap() <= 1e-3, "{a}");
    }
    assert!(results["size_ours"]["zip_bytes"].as_u64().unwrap() > 0);
    // The Python deployment carries onnxruntime and numpy: tens of megabytes.
    assert!(results["size_python"]["zip_bytes"].as_u64().unwrap() > 10_000_000);
    assert!(!results["targets"].as_array().unwrap().is_empty());

    let md = std::fs::read_to_string(dir.path().join("results.md")).unwrap();
    assert!(
        md.contains("onnxruntime fp32") && md.contains("| classifier"),
        "{md}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&md));
}

#[test]
fn an_unknown_model_is_refused_before_anything_runs() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP", "FALLBACK_PACKED");
    let dir = tempfile::tempdir().unwrap();
    let out = bench(&["--models", "resnet"], dir.path());
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("expected classifier, minilm or vision"),
        "{}",
        output_text(&out)
    );
    assert!(!dir.path().join("results.json").exists());
}
