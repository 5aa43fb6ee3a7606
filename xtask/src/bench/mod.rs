//! `cargo xtask bench`: this project's function against a Python 3.11 Lambda handler on
//! onnxruntime, side by side on this machine, same models, same request bytes, same Runtime
//! API emulator. Results go to `target/bench/results.{json,md}`; BENCHMARKS.md holds the
//! committed table.

mod measure;
mod report;
mod setup;
mod size;
mod workloads;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use inference_core::settings;
use runtime_emulator::FunctionConfig;
use serde_json::Value;

use crate::python_env::PythonEnv;
use crate::{test_data, workspace};
use workloads::{BenchModel, Kind, KEYS};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Fresh processes per cold-start measurement.
    #[arg(long, default_value_t = 10)]
    pub cold: usize,
    /// Timed invocations per warm measurement (after 3 untimed ones).
    #[arg(long, default_value_t = 200)]
    pub warm: usize,
    /// Cap on one warm measurement's time, in seconds (it still takes at least 10 samples).
    #[arg(long, default_value_t = 20.0)]
    pub warm_secs: f64,
    /// Only these models (comma-separated): classifier, minilm, vision.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Measure this prebuilt `bootstrap` instead of building the release one; it must embed
    /// the models named by `--packed`'s lock under the bench's names.
    #[arg(long, requires = "packed")]
    pub bootstrap: Option<PathBuf>,
    /// The packed-models directory `--bootstrap` was built with.
    #[arg(long)]
    pub packed: Option<PathBuf>,
    /// Where results go (default target/bench).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run every side under what Lambda gives a function of this many MB (CPU share and
    /// memory limit, as `cargo xtask local` does); by default both have the whole machine.
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u32).range(128..=10_240))]
    pub memory: Option<u32>,
}

/// What runs a side's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// This project's `bootstrap`.
    Ours,
    /// Python 3.11 + onnxruntime (xtask/bench/handler.py).
    Python,
}

impl Runtime {
    /// The variable that sets the side's intra-op threads.
    fn threads_var(self) -> &'static str {
        match self {
            Runtime::Ours => settings::MODEL_THREADS,
            Runtime::Python => "ORT_THREADS",
        }
    }
}

/// One function under test.
pub struct Side {
    pub label: &'static str,
    pub runtime: Runtime,
    config: FunctionConfig,
    /// The model its requests name, when not the bench model's own.
    model: Option<&'static str>,
}

impl Side {
    fn with_threads(&self, threads: usize) -> FunctionConfig {
        self.config
            .clone()
            .env(self.runtime.threads_var(), threads.to_string())
    }
}

/// `config` with Lambda's limits for `memory_mb`, or with the whole machine.
fn limits(config: FunctionConfig, memory_mb: Option<u32>) -> FunctionConfig {
    match memory_mb {
        Some(mb) => config.memory_mb(mb).lambda_limits(true),
        None => config.lambda_limits(false),
    }
}

pub const OURS: &str = "ours";
/// Ours on the model packed with `quantize = "int8-dynamic"`.
pub const OURS_INT8_DYNAMIC: &str = "ours int8-dynamic";

/// A side's label for its runs pinned to one core.
pub fn pinned(label: &str) -> String {
    format!("{label}, 1 core")
}
pub const ORT_FP32: &str = "onnxruntime fp32";
pub const ORT_INT8: &str = "onnxruntime int8";

pub fn run(args: &BenchArgs) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| workspace::target_dir().join("bench"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let wanted = |key: &str| args.models.is_empty() || args.models.iter().any(|m| m == key);
    let data = test_data::dir();
    let files = setup::files(&data);
    let samples: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace::root().join("models/default/samples.json"))
            .context("cannot read models/default/samples.json")?,
    )?;
    // Checked before anything is installed or built: a typo fails at once.
    for key in &args.models {
        workloads::model(key, &samples, &files)?;
    }
    let models = KEYS
        .iter()
        .filter(|k| wanted(k))
        .map(|k| workloads::model(k, &samples, &files))
        .collect::<Result<Vec<BenchModel>>>()?;

    // The Python side and the models first: a broken install fails before the long build.
    test_data::ensure()?;
    let python = setup::python()?;
    let handler = out.join("python");
    std::fs::create_dir_all(&handler)?;
    // A copy, so Python's bytecode cache lands under target/, not in the source tree.
    std::fs::copy(
        setup::handler_dir().join("handler.py"),
        handler.join("handler.py"),
    )
    .context("cannot copy the Python handler")?;
    let ort_int8 = match models.iter().find(|m| m.ort_int8) {
        Some(m) => Some(setup::ort_int8(&python, &m.python_files[0], &out)?),
        None => None,
    };
    let (bootstrap, packed) = match (&args.bootstrap, &args.packed) {
        (Some(b), Some(p)) => (b.clone(), p.clone()),
        _ => {
            let manifest = setup::write_manifest(&data, &files, &out)?;
            let packed = setup::pack_models(manifest, &out)?;
            (setup::build_bootstrap(&packed, &out)?, packed)
        }
    };
    let lock = model_lock::LockFile::read(&packed.join("models.lock"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    for m in &models {
        for name in std::iter::once(m.packed_name).chain(m.int8_dynamic) {
            if !lock.models.iter().any(|e| e.name == name && e.embed) {
                bail!(
                    "{} does not embed the model {name:?} the {} benchmark needs",
                    bootstrap.display(),
                    m.key
                );
            }
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut report = report::Report::new(args, &python)?;
    for model in &models {
        let sides = sides(
            model,
            &bootstrap,
            &python,
            &handler,
            ort_int8.as_deref(),
            args.memory,
        )?;
        eprintln!("\n== {} ({} sides) ==", model.key, sides.len());
        rt.block_on(measure_model(args, model, &sides, &mut report))?;
    }

    let rust_zip = crate::build::package::package(
        &bootstrap,
        crate::build::package::Arch::X86_64,
        Some(&lock),
        &out.join("bootstrap.zip"),
    )?;
    let python_models: Vec<PathBuf> = models
        .iter()
        .flat_map(|m| m.python_files.iter().cloned())
        .collect();
    let python_zip = size::python_deployment(
        &python,
        &handler.join("handler.py"),
        &python_models,
        models.iter().any(|m| m.kind == Kind::Text),
        &out.join("python-deployment.zip"),
    )?;
    report.set_sizes(
        size::Deployment {
            zip_bytes: rust_zip.zip_size,
            unzipped_bytes: rust_zip.unzipped,
        },
        python_zip,
    );
    report.evaluate_targets(&models);

    let json = serde_json::to_vec_pretty(&report)?;
    crate::files::write_atomic(&out.join("results.json"), &json)?;
    let md = report.markdown();
    crate::files::write_atomic(&out.join("results.md"), md.as_bytes())?;
    println!("{md}");
    eprintln!(
        "results: {} and {}",
        out.join("results.json").display(),
        out.join("results.md").display()
    );
    Ok(())
}

fn sides(
    model: &BenchModel,
    bootstrap: &std::path::Path,
    python: &PythonEnv,
    handler: &std::path::Path,
    ort_int8: Option<&std::path::Path>,
    memory: Option<u32>,
) -> Result<Vec<Side>> {
    // Lazy: each process loads only the model under test (the function embeds them all),
    // and that load is inside the first response's time.
    let ours = Side {
        label: OURS,
        runtime: Runtime::Ours,
        // Lambda sets no RUST_BACKTRACE; a developer's shell often does, and then every error
        // tract raises while it tries an optimization captures a backtrace.
        // The whole machine for both sides unless --memory: side-by-side figures.
        config: limits(FunctionConfig::new(bootstrap), memory)
            .env(settings::MODEL_LOAD, "lazy")
            .env("RUST_BACKTRACE", "0"),
        model: None,
    };
    let python_side = |label: &'static str, model_path: &std::path::Path| Side {
        label,
        runtime: Runtime::Python,
        config: {
            let mut c = limits(FunctionConfig::new(python.python()), memory)
                .env("PYTHONPATH", handler.to_string_lossy())
                .env("BENCH_KIND", model.kind.python_name())
                .env("MODEL_PATH", model_path.to_string_lossy());
            c.args = vec!["-m".into(), "awslambdaric".into(), "handler.handler".into()];
            if model.kind == Kind::Text {
                c = c
                    .env("TOKENIZER_PATH", model.python_files[1].to_string_lossy())
                    .env("TEXT_OUTPUT", test_data::MINILM_OUTPUT);
            }
            c
        },
        model: None,
    };
    let ours_int8_dynamic = model.int8_dynamic.map(|name| Side {
        label: OURS_INT8_DYNAMIC,
        model: Some(name),
        config: ours.config.clone(),
        runtime: Runtime::Ours,
    });
    let mut sides = vec![ours];
    sides.extend(ours_int8_dynamic);
    sides.push(python_side(ORT_FP32, &model.python_files[0]));
    if model.ort_int8 {
        let int8 = ort_int8.context("the onnxruntime int8 export is missing")?;
        sides.push(python_side(ORT_INT8, int8));
    }
    Ok(sides)
}

async fn measure_model(
    args: &BenchArgs,
    model: &BenchModel,
    sides: &[Side],
    report: &mut report::Report,
) -> Result<()> {
    let workloads = |side: &Side| -> Result<Vec<workloads::Workload>> {
        match side.model {
            None => Ok(model.workloads.clone()),
            Some(name) => model.workloads.iter().map(|w| w.for_model(name)).collect(),
        }
    };
    for side in sides {
        eprintln!("cold start: {} ({} runs)", side.label, args.cold);
        let first = &workloads(side)?[0];
        let cold = measure::cold(&side.with_threads(1), &first.batch1, args.cold).await?;
        report.add_cold(model.key, side.label, &cold);
    }
    // One vCPU, as Lambda gives a function of 1,024 MB: side-thread work is no longer free.
    for side in sides.iter().filter(|s| s.label != ORT_INT8) {
        eprintln!(
            "cold start pinned to one core: {} ({} runs)",
            side.label, args.cold
        );
        let mut config = side.with_threads(1);
        config.cpus = Some("0".into());
        config.memory_mb = 1024;
        let first = &workloads(side)?[0];
        let cold = measure::cold(&config, &first.batch1, args.cold).await?;
        report.add_cold(model.key, &pinned(side.label), &cold);
    }
    let mut answers = Vec::new();
    for threads in [1, 2] {
        for side in sides {
            eprintln!("warm: {} with {threads} thread(s)", side.label);
            let warm = measure::warm(
                &side.with_threads(threads),
                &workloads(side)?,
                args.warm,
                args.warm_secs,
            )
            .await?;
            report.add_warm(model.key, side.label, threads, &warm);
            if threads == 1 {
                answers.push((side.label, warm.answers));
            }
        }
    }
    if model.kind == Kind::Image {
        // What an image of a size not seen before costs: ours builds its plan on that first
        // request (the detector as exported); onnxruntime takes any shape as it comes.
        for side in sides
            .iter()
            .filter(|s| s.label == OURS || s.label == ORT_FP32)
        {
            let name = match side.runtime {
                Runtime::Ours => workloads::VISION_EXPORTED,
                Runtime::Python => model.packed_name,
            };
            let shapes: Vec<(String, Vec<u8>)> = workloads::NEW_SHAPES
                .iter()
                .map(|(h, w)| workloads::image_request(name, *h, *w))
                .collect();
            let warm_up =
                workloads::image_request(name, workloads::IMAGE_EDGE, workloads::IMAGE_EDGE).1;
            eprintln!("new shapes: {}", side.label);
            let measured = measure::new_shapes(&side.with_threads(1), &warm_up, &shapes).await?;
            report.add_new_shapes(model.key, side.label, &measured);
        }
    }
    report.add_agreement(model, &answers)
}
