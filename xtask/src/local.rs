//! `cargo xtask local` and `cargo xtask invoke`: the real `bootstrap` under the Runtime API
//! emulator on 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use runtime_emulator::{front_door, Function, FunctionConfig, Outcome};
use serde_json::Value;

use crate::bootstrap::{self, Profile};
#[cfg(feature = "full")]
use crate::build::package::Arch;
#[cfg(feature = "full")]
use crate::image;
use crate::{example, packed, workspace};

#[derive(Args, Debug)]
pub struct LocalArgs {
    /// Port of the HTTP front door on 127.0.0.1.
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// The model to ask (sets "model" in the request).
    #[arg(long)]
    pub model: Option<String>,
    /// The request: JSON text, or @FILE to read it from a file.
    #[arg(long)]
    pub data: String,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Which `bootstrap` to run, and its environment.
#[derive(Args, Debug)]
pub struct FunctionArgs {
    /// Which build of `bootstrap` to run: `local` (made for trying: minutes to build from a
    /// fresh clone; the default of `local` and `invoke`), `dev` (the tests' build) or
    /// `release` (fat LTO, as `build` ships it; the default of `tune` and `--image`).
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// Use this bootstrap binary instead of building one.
    #[arg(long)]
    pub bootstrap: Option<PathBuf>,
    /// Extra environment for the function, KEY=VALUE (e.g. MODEL_LOAD=lazy).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Run the function as its container image, as Lambda would: the layout's layers
    /// unpacked into an empty root and the entrypoint started there (a private mount
    /// namespace, read-only root, tmpfs /tmp, Lambda's unprivileged user; needs root).
    /// Alone, the image is built first (as `build --image`); with a directory, that image
    /// layout is run as it is.
    #[arg(long, value_name = "LAYOUT", num_args = 0..=1)]
    pub image: Option<Option<PathBuf>>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub function: FunctionArgs,
    /// Per-invocation timeout in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// The function's memory size in MB, as on Lambda: it runs with the CPU share (one vCPU
    /// at 1,769 MB) and memory limit Lambda gives that size.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(128..=10_240))]
    pub memory: u32,
}

/// A function ready to start; for an image, the root it runs in, removed on drop (keep
/// this alive while the function runs).
pub struct Prepared {
    pub config: FunctionConfig,
    _root: Option<tempfile::TempDir>,
}

/// The function to run: `--bootstrap`, or the default models packed and the binary built
/// (`--profile`, else `default`); with `--image`, that binary's image (or the layout given),
/// unpacked.
pub fn prepare(args: &FunctionArgs, default: Profile) -> Result<Prepared> {
    let layout = match &args.image {
        Some(Some(dir)) => {
            if args.bootstrap.is_some() || args.profile.is_some() {
                bail!(
                    "--image {} runs that layout as built: --bootstrap and --profile do not apply",
                    dir.display()
                );
            }
            Some(dir.clone())
        }
        Some(None) => Some(built_image(args)?),
        None => None,
    };
    let (mut config, root) = match layout {
        Some(dir) => {
            let unpacked = unpack(&dir)?;
            (unpacked.config, Some(unpacked.root))
        }
        None => (FunctionConfig::new(bootstrap_binary(args, default)?), None),
    };
    for kv in &args.env {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--env takes KEY=VALUE, got {kv:?}");
        };
        config = config.env(k, v);
    }
    Ok(Prepared {
        config,
        _root: root,
    })
}

/// `--image` alone: the image of the release binary, built as `build --image` does.
#[cfg(feature = "full")]
fn built_image(args: &FunctionArgs) -> Result<PathBuf> {
    use model_lock::{LockFile, LOCK_FILE_NAME};

    let packed = workspace::default_packed_dir();
    let bootstrap = bootstrap_binary(args, Profile::Release)?;
    let lock = LockFile::read(&packed.join(LOCK_FILE_NAME))?;
    let out = image::default_dir();
    image::build(&bootstrap, Arch::X86_64, Some(&lock), &packed, &out)?;
    Ok(out)
}

#[cfg(not(feature = "full"))]
fn built_image(_: &FunctionArgs) -> Result<PathBuf> {
    crate::full::run_instead("building the image (--image)")
}

/// `--bootstrap`, or the default models packed (when models.toml changed since they were)
/// and the binary built.
fn bootstrap_binary(args: &FunctionArgs, default: Profile) -> Result<PathBuf> {
    if let Some(p) = &args.bootstrap {
        return Ok(p.clone());
    }
    let manifest = workspace::default_manifest();
    let out = workspace::default_packed_dir();
    if !packed::is_current(&manifest, &out)? {
        pack(manifest, out)?;
    }
    bootstrap::build(args.profile.unwrap_or(default))
}

#[cfg(feature = "full")]
fn pack(manifest: PathBuf, out: PathBuf) -> Result<()> {
    crate::pack::pack_into(manifest, out)
}

#[cfg(not(feature = "full"))]
fn pack(manifest: PathBuf, _: PathBuf) -> Result<()> {
    crate::full::run_instead(&format!(
        "packing {} (changed since models/packed/ was written)",
        manifest.display()
    ))
}

struct Unpacked {
    config: FunctionConfig,
    root: tempfile::TempDir,
}

/// The layout at `dir`, checked and unpacked into a fresh root under
/// `target/lambda/image-roots/`.
fn unpack(dir: &Path) -> Result<Unpacked> {
    let layout = runtime_emulator::image::Layout::open(dir).with_context(|| {
        format!(
            "{} is not a usable image layout (build one with `cargo xtask build --image`)",
            dir.display()
        )
    })?;
    let arch = &layout.config.architecture;
    if arch != "amd64" {
        bail!("the image is for {arch}: this machine runs amd64 (x86_64) images only; test an arm64 image on an arm64 host");
    }
    let parent = workspace::target_dir().join("lambda/image-roots");
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let root = tempfile::Builder::new()
        .prefix("root-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    eprintln!(
        "unpacking image {} into {}",
        layout.manifest_digest,
        root.path().display()
    );
    runtime_emulator::image::unpack(&layout, root.path())?;
    let config = FunctionConfig::from_image(root.path(), &layout.config)?;
    Ok(Unpacked { config, root })
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

pub fn local(args: LocalArgs) -> Result<()> {
    let prepared = prepare(&args.run.function, Profile::Local)?;
    let mut config = prepared.config.clone().memory_mb(args.run.memory);
    config.echo_logs = true;
    let timeout = Duration::from_secs(args.run.timeout);
    let memory_mb = args.run.memory;
    runtime()?.block_on(async move {
        let function = Arc::new(Function::start(config).await?);
        let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
        let bound = front_door::start(addr, function.clone(), timeout)
            .await
            .with_context(|| format!("cannot listen on {addr} (use --port)"))?;
        let url = format!("http://{bound}");
        println!("\nserving on {url}  (Runtime API emulator on {})", function.api.endpoint());
        if function.limited().await {
            let limits = runtime_emulator::Limits::lambda(memory_mb);
            println!(
                "as Lambda runs it at {memory_mb} MB: {:.2} vCPU, {memory_mb} MiB of memory",
                limits.vcpus()
            );
        }
        println!("list the models:   curl {url}");
        if let Some(example) = example::default_request().map(|e| e.request) {
            println!("ask the default model:\n  curl -s {url} -H 'content-type: application/json' -d '{example}'");
        }
        println!("Ctrl-C to stop.");
        // A process an invocation ended (out of memory, a crash) is started again by the
        // next request, as Lambda does; only a failed init stops the local run.
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(error) = function.api.wait_init_error(Duration::MAX) => {
                bail!("the function's init failed: {error}; see its log above");
            }
        }
        function.kill().await;
        Ok(())
    })
}

/// `--data`'s text: the JSON given, or `@FILE`'s contents.
pub fn data_text(data: &str) -> Result<String> {
    match data.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}")),
        None => Ok(data.to_string()),
    }
}

/// The request in `text`, asking `model` when one is named (`--model`).
pub fn request(text: &str, model: Option<&str>) -> Result<Value> {
    let mut request: Value = serde_json::from_str(text).context("the request is not valid JSON")?;
    if let Some(model) = model {
        match &mut request {
            Value::Object(obj) => {
                obj.insert("model".into(), Value::String(model.to_string()));
            }
            _ => bail!("--model needs the request to be a JSON object"),
        }
    }
    Ok(request)
}

pub fn invoke(args: InvokeArgs) -> Result<()> {
    let prepared = prepare(&args.run.function, Profile::Local)?;
    let config = prepared.config.clone().memory_mb(args.run.memory);
    let request = request(&data_text(&args.data)?, args.model.as_deref())?;
    let timeout = Duration::from_secs(args.run.timeout);
    runtime()?.block_on(async move {
        let function = Function::start(config).await?;
        let outcome = function
            .invoke(serde_json::to_vec(&request)?, timeout)
            .await;
        let logs = function.logs();
        function.kill().await;
        match outcome {
            Ok(Outcome::Response(body)) => {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                println!("{}", serde_json::to_string_pretty(&v)?);
                Ok(())
            }
            Ok(other) => {
                eprintln!("{}", logs.join("\n"));
                bail!("invocation failed: {}", other.json())
            }
            Err(e) => {
                eprintln!("{}", logs.join("\n"));
                bail!("{e}")
            }
        }
    })
}
