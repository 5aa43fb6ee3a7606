//! `cargo xtask tune` end to end: the default model's sample request through the real
//! `bootstrap` (the fallback fixture embeds the default classifier) at two memory sizes,
//! under Lambda's limits: the table, the JSON and the plot.

use std::process::Command;

use serde_json::Value;

fn tune(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("tune")
        .arg("--bootstrap")
        .arg(test_support::fixture_path("FALLBACK_BOOTSTRAP"))
        .args(["--memory", "1024,256", "--cold", "2", "--warm", "12"])
        .args(args)
        .output()
        .expect("xtask runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "tune failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tune_measures_prices_and_recommends_each_memory_size() {
    test_support::require_fixtures!("FALLBACK_BOOTSTRAP");
    test_support::require_root!("tune measures under Lambda's limits, which are cgroups");
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("curve.svg");
    let json = tune(&[
        "--json",
        "--p99-ms",
        "1000",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&json).expect("--json prints JSON only");
    assert_eq!(report["model"], "breast-cancer");
    let sizes = report["sizes"].as_array().unwrap();
    let memory: Vec<u64> = sizes
        .iter()
        .map(|s| s["memory_mb"].as_u64().unwrap())
        .collect();
    assert_eq!(memory, [256, 1024], "measured smallest first");
    for s in sizes {
        assert!(s["failed"].is_null(), "{s}");
        assert_eq!(s["cold"]["n"], 2, "{s}");
        assert_eq!(s["warm"]["n"], 12, "{s}");
        assert_eq!(s["threads"], 1, "one vCPU or less: one thread ({s})");
        let used = s["max_memory_used_mib"].as_f64().unwrap();
        assert!(used > 1.0 && used < 256.0, "{s}");
        // Charged as a fresh sandbox is: for the binary's pages it reads (readahead too),
        // not only what it maps; the shared libraries stay charged to whoever read them
        // first. Before, the binary's pages were charged to the cold starts before it and
        // this read a fraction of the peak RSS.
        let rss = s["peak_rss_mib"].as_f64().unwrap();
        assert!(used >= rss / 2.0, "{s}");
        assert!(s["usd_per_million"].as_f64().unwrap() > 0.2, "{s}");
    }
    // Lambda's CPU share is the memory size's.
    assert!((sizes[0]["vcpus"].as_f64().unwrap() - 256.0 / 1769.0).abs() < 1e-3);
    let r = &report["recommendation"];
    assert_eq!(r["p99_target_ms"], 1000.0);
    for key in ["cheapest", "fastest", "knee"] {
        assert!(
            [256, 1024].contains(&r[key].as_u64().unwrap_or(0)),
            "{key}: {r}"
        );
    }
    assert_eq!(report["prices"]["arch"], "x86_64");

    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    for text in ["memory (MB)", "warm p99", "USD per million"] {
        assert!(svg.contains(text), "the plot shows {text:?}");
    }
    assert!(svg.contains("<polyline"), "the curves are drawn");

    // The table, with arm64's prices.
    let table = tune(&["--arch", "arm64", "--plot", plot.to_str().unwrap()]);
    assert!(table.contains("memory MB"), "{table}");
    assert!(table.contains("prices: arm64"), "{table}");
    assert!(table.contains("knee"), "{table}");
    assert!(table.contains("cargo xtask deploy --memory"), "{table}");
}
