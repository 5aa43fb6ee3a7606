//! `cargo xtask build` (the zip) and `cargo xtask deploy` (the zip to a published, aliased
//! Lambda version).

mod concurrency;
mod config;
pub mod glibc;
mod lambda;
pub mod package;
mod sam;
mod url;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use model_lock::{LockFile, LOCK_FILE_NAME};

use crate::{bootstrap_build, workspace};
use config::Settings;
use package::{mb, Arch, Package, MAX_DIRECT_ZIP};

#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// The Lambda architecture to build for.
    #[arg(long, value_enum, default_value = "x86_64")]
    pub arch: Arch,
    /// Package this prebuilt binary instead of building (it is still checked).
    #[arg(long, value_name = "PATH")]
    pub bootstrap: Option<PathBuf>,
    /// The packed-models directory the binary embeds (for the size breakdown and the list of
    /// models).
    #[arg(long, default_value_os_t = workspace::default_packed_dir())]
    pub packed: PathBuf,
    /// Where the zip goes.
    #[arg(long, default_value_os_t = workspace::target_dir().join("lambda/bootstrap.zip"))]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Settings file (default: deploy.toml in the workspace root, if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The Lambda function's name.
    #[arg(long)]
    pub function: Option<String>,
    /// Execution role ARN (needed to create the function).
    #[arg(long)]
    pub role: Option<String>,
    /// Memory in MB (default 1024).
    #[arg(long)]
    pub memory: Option<i32>,
    /// The memory size `cargo xtask tune` recommended (target/tune/tune.json: the cheapest
    /// meeting its p99 target, else its knee).
    #[arg(long, conflicts_with = "memory")]
    pub tuned_memory: bool,
    /// Timeout in seconds (default 30).
    #[arg(long)]
    pub timeout: Option<i32>,
    /// The alias to point at the new version (default live).
    #[arg(long)]
    pub alias: Option<String>,
    /// Upload the zip through this bucket (required when it is over 50 MB).
    #[arg(long)]
    pub s3_bucket: Option<String>,
    /// Key prefix for --s3-bucket uploads.
    #[arg(long)]
    pub s3_prefix: Option<String>,
    /// Function environment, KEY=VALUE, repeatable (e.g. MODEL_S3_BUCKET=models).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// EFS access point ARN for the fallback store (needs --subnet-id/--security-group-id).
    #[arg(long)]
    pub efs_access_point_arn: Option<String>,
    /// Where the function mounts EFS (default /mnt/models, the fallback's default).
    #[arg(long)]
    pub efs_mount_path: Option<String>,
    #[arg(long = "subnet-id")]
    pub subnet_ids: Vec<String>,
    #[arg(long = "security-group-id")]
    pub security_group_ids: Vec<String>,
    /// Send this share of the alias's traffic (0 < w < 1) to the new version; the rest
    /// stays on the alias's current version until `--promote`.
    #[arg(long)]
    pub canary_weight: Option<f64>,
    /// Move the alias fully to its canary version (no build, no upload).
    #[arg(long)]
    pub promote: bool,
    /// Build and print what would change; call nothing that writes.
    #[arg(long)]
    pub dry_run: bool,
    /// Write an AWS SAM template for the same function to this path (and deploy nothing).
    #[arg(long, value_name = "PATH")]
    pub emit_sam: Option<PathBuf>,
    /// With --emit-sam: an HTTP API (API Gateway v2) in front of the function instead of a
    /// Function URL.
    #[arg(long, requires = "emit_sam")]
    pub http_api: bool,
    /// Create or update a Function URL on the alias (IAM auth: callers sign with SigV4).
    #[arg(long)]
    pub url: bool,
    /// With --url: no auth, anyone on the internet may call it (adds the resource-based
    /// permissions Lambda requires for that).
    #[arg(long)]
    pub public: bool,
    /// With --url: a browser origin allowed to call it (CORS), repeatable; `*` for any.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Keep N execution environments initialized on the alias: no cold start for the
    /// requests they take (billed while configured).
    #[arg(long, value_name = "N")]
    pub provisioned_concurrency: Option<i32>,
    /// Reserve N concurrent executions for the function (also its ceiling).
    #[arg(long, value_name = "N")]
    pub reserved_concurrency: Option<i32>,
    /// X-Ray tracing: `active` records traces; `pass-through` (Lambda's default) only passes
    /// a caller's trace header on.
    #[arg(long, value_enum)]
    pub tracing: Option<config::Tracing>,
}

/// `cargo xtask build`: the release binary (or `--bootstrap`), checked and zipped.
pub fn build(args: &BuildArgs) -> Result<Package> {
    let binary = match &args.bootstrap {
        Some(path) => path.clone(),
        None => {
            check_target_installed(args.arch)?;
            bootstrap_build::build_release_for(args.arch.rust_target())?
        }
    };
    let lock_path = args.packed.join(LOCK_FILE_NAME);
    let lock = if lock_path.exists() {
        Some(LockFile::read(&lock_path)?)
    } else {
        eprintln!(
            "warning: no {} (run `cargo xtask pack-models`): the size breakdown lists no models",
            lock_path.display()
        );
        None
    };
    let package = package::package(&binary, args.arch, lock.as_ref(), &args.out)?;
    println!(
        "{}: {} zipped ({} unzipped), sha256 {} (CodeSha256 {})",
        package.zip.display(),
        mb(package.zip_size),
        mb(package.unzipped),
        package.sha256_hex,
        package.code_sha256
    );
    println!("{}", package::breakdown(package.unzipped, &package.models));
    Ok(package)
}

/// Cross builds need the target's standard library; say how to get it rather than
/// letting cargo fail with "can't find crate for `std`".
fn check_target_installed(arch: Arch) -> Result<()> {
    let target = arch.rust_target();
    let out = std::process::Command::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .context("running rustc")?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !dir.is_dir() {
        bail!(
            "--arch {} needs the Rust target {target}, which is not installed. Add it with `rustup target add {target}` (and a linker for it, e.g. cargo-zigbuild or gcc-aarch64-linux-gnu).",
            arch.lambda_name()
        );
    }
    Ok(())
}

fn settings(args: &DeployArgs) -> Result<Settings> {
    let file = match config::locate(args.config.as_deref()) {
        Some(path) => config::read(&path)?,
        None => Default::default(),
    };
    let arch = match (&file.arch, args.build.arch) {
        // The flag's default is x86_64: the file decides unless the flag says arm64.
        (Some(a), Arch::X86_64) => config::parse_arch(a)?,
        _ => args.build.arch,
    };
    let mut environment: BTreeMap<String, String> = file.environment.clone();
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--env {kv:?}: expected KEY=VALUE"))?;
        environment.insert(k.to_string(), v.to_string());
    }
    let efs = match &args.efs_access_point_arn {
        Some(arn) => Some(config::Efs {
            access_point_arn: arn.clone(),
            mount_path: args
                .efs_mount_path
                .clone()
                .unwrap_or_else(|| inference_core::settings::DEFAULT_EFS_DIR.into()),
        }),
        None => file.efs.clone(),
    };
    let vpc = if args.subnet_ids.is_empty() && args.security_group_ids.is_empty() {
        file.vpc.clone()
    } else {
        Some(config::Vpc {
            subnet_ids: args.subnet_ids.clone(),
            security_group_ids: args.security_group_ids.clone(),
        })
    };
    // The fallback reads EFS where the function mounts it.
    if let Some(e) = &efs {
        environment
            .entry(inference_core::settings::MODEL_EFS_DIR.into())
            .or_insert_with(|| e.mount_path.clone());
    }
    let s = Settings {
        function: args.function.clone().or(file.function).unwrap_or_default(),
        role: args.role.clone().or(file.role),
        arch,
        memory: match args.tuned_memory {
            true => crate::tune::recommended_memory()?,
            false => args.memory.or(file.memory).unwrap_or(1024),
        },
        timeout: args.timeout.or(file.timeout).unwrap_or(30),
        alias: args
            .alias
            .clone()
            .or(file.alias)
            .unwrap_or_else(|| "live".into()),
        s3_bucket: args.s3_bucket.clone().or(file.s3_bucket),
        s3_prefix: args
            .s3_prefix
            .clone()
            .or(file.s3_prefix)
            .unwrap_or_default(),
        environment,
        efs,
        vpc,
        url: url_settings(args, file.url)?,
        tracing: args.tracing.or(file.tracing),
        reserved_concurrency: args.reserved_concurrency.or(file.reserved_concurrency),
        provisioned_concurrency: args
            .provisioned_concurrency
            .or(file.provisioned_concurrency),
    };
    s.validate()?;
    if let Some(w) = args.canary_weight {
        if !(w > 0.0 && w < 1.0) {
            bail!("--canary-weight {w}: expected a share between 0 and 1, e.g. 0.1");
        }
    }
    Ok(s)
}

/// The Function URL wanted: `[url]` in the file, with `--url`, `--public` and
/// `--cors-origin` over it.
fn url_settings(
    args: &DeployArgs,
    file: Option<config::UrlSettings>,
) -> Result<Option<config::UrlSettings>> {
    let flags = args.public || !args.cors_origins.is_empty();
    let base = match (args.url, file) {
        (true, file) => file.unwrap_or_default(),
        (false, Some(file)) => file,
        (false, None) if flags => {
            bail!("--public and --cors-origin configure the Function URL: add --url")
        }
        (false, None) => return Ok(None),
    };
    Ok(Some(config::UrlSettings {
        public: args.public || base.public,
        cors_origins: if args.cors_origins.is_empty() {
            base.cors_origins
        } else {
            args.cors_origins.clone()
        },
    }))
}

pub fn deploy(args: &DeployArgs) -> Result<()> {
    let s = settings(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if args.promote {
        if args.dry_run {
            bail!("--promote with --dry-run: nothing to build; leave out --dry-run to promote");
        }
        let client = rt.block_on(lambda::client());
        let version = rt.block_on(lambda::promote(&client, &s.function, &s.alias))?;
        println!(
            "promoted: alias {} of {} now sends all traffic to version {version}",
            s.alias, s.function
        );
        // Provisioned concurrency belongs to the alias and stays with it; asked for again,
        // it is set and waited for on the promoted version.
        if let Some(n) = s.provisioned_concurrency {
            let p = rt.block_on(concurrency::provision(&client, &s.function, &s.alias, n))?;
            println!(
                "  provisioned   {} of {} ({})",
                p.allocated, p.requested, p.status
            );
        }
        return Ok(());
    }

    let package = build(&args.build)?;
    if let Some(path) = &args.emit_sam {
        let code_uri = pathdiff(&package.zip, path);
        let endpoint = match (&s.url, args.http_api) {
            (Some(_), true) => {
                bail!("--http-api and --url each put an endpoint in front of the function: choose one")
            }
            (None, true) => sam::Endpoint::HttpApi,
            (Some(u), false) => sam::Endpoint::Url(u.clone()),
            (None, false) => sam::Endpoint::None,
        };
        let template = sam::template(&s, &code_uri, args.canary_weight, &endpoint)?;
        crate::files::write_atomic(path, template.as_bytes())?;
        println!(
            "wrote {} (deploy it with `sam deploy --guided`)",
            path.display()
        );
        return Ok(());
    }
    if package.needs_s3() && s.s3_bucket.is_none() {
        bail!(
            "the zip is {}, over Lambda's {} limit for direct upload: pass --s3-bucket BUCKET (or s3_bucket in deploy.toml) to upload it through S3",
            mb(package.zip_size),
            mb(MAX_DIRECT_ZIP)
        );
    }
    let client = rt.block_on(lambda::client());
    let existing = rt.block_on(lambda::current(&client, &s.function))?;
    let s3_key = s.s3_bucket.as_ref().map(|_| {
        let prefix = s.s3_prefix.trim_matches('/');
        let key = format!("{}/{}.zip", s.function, package.sha256_hex);
        if prefix.is_empty() {
            key
        } else {
            format!("{prefix}/{key}")
        }
    });

    if args.dry_run {
        let verb = if existing.is_some() {
            "update"
        } else {
            "create"
        };
        println!("dry run: nothing was changed. A deploy would:");
        if let (Some(b), Some(k)) = (&s.s3_bucket, &s3_key) {
            println!("  upload {} to s3://{b}/{k}", mb(package.zip_size));
        }
        println!(
            "  {verb} function {} (provided.al2023, {}, {} MB, {} s)",
            s.function,
            s.arch.lambda_name(),
            s.memory,
            s.timeout
        );
        if existing.is_some() && s.role.is_none() {
            println!("  keep its execution role");
        }
        println!(
            "  publish a version with CodeSha256 {}",
            package.code_sha256
        );
        match args.canary_weight {
            Some(w) => println!("  route {w} of alias {} to it", s.alias),
            None => println!("  point alias {} at it", s.alias),
        }
        if let Some(t) = s.tracing {
            println!("  set X-Ray tracing to {t:?}");
        }
        if let Some(n) = s.reserved_concurrency {
            println!("  reserve {n} concurrent executions for the function");
        }
        if let Some(n) = s.provisioned_concurrency {
            println!(
                "  provision {n} execution environments on alias {} and wait until ready",
                s.alias
            );
        }
        if let Some(u) = &s.url {
            let auth = if u.public { "NONE (public)" } else { "AWS_IAM" };
            println!(
                "  create or update the Function URL of alias {} (auth {auth})",
                s.alias
            );
        }
        return Ok(());
    }

    let code = match (&s.s3_bucket, &s3_key) {
        (Some(bucket), Some(key)) => {
            let bytes = std::fs::read(&package.zip)?;
            rt.block_on(upload(bucket, key, bytes))?;
            lambda::Code::S3 {
                bucket: bucket.clone(),
                key: key.clone(),
            }
        }
        _ => lambda::Code::Zip(std::fs::read(&package.zip)?),
    };
    let action = if existing.is_some() {
        rt.block_on(lambda::update(&client, &s, code))?;
        "updated"
    } else {
        rt.block_on(lambda::create(&client, &s, code))?;
        "created"
    };
    let (version, arn) = rt.block_on(lambda::publish(&client, &s.function, &package))?;
    let primary = rt.block_on(lambda::point_alias(
        &client,
        &s.function,
        &s.alias,
        &version,
        args.canary_weight,
    ))?;
    if let Some(n) = s.reserved_concurrency {
        rt.block_on(concurrency::reserve(&client, &s.function, n))?;
    }
    let provisioned = match s.provisioned_concurrency {
        Some(n) => Some(rt.block_on(concurrency::provision(&client, &s.function, &s.alias, n))?),
        None => None,
    };
    let function_url = match &s.url {
        Some(u) => Some(rt.block_on(url::ensure(&client, &s.function, &s.alias, u))?),
        None => None,
    };
    println!("{action} {}", s.function);
    println!("  function arn  {arn}");
    println!("  version       {version}");
    if primary == version {
        println!("  alias         {} -> {version}", s.alias);
    } else {
        println!(
            "  alias         {} -> {primary}, {} of traffic to {version} (promote with --promote)",
            s.alias,
            args.canary_weight.unwrap_or_default()
        );
    }
    println!("  CodeSha256    {}", package.code_sha256);
    println!("  zip           {}", mb(package.zip_size));
    for m in &package.models {
        println!(
            "  model         {} {} ({})",
            m.name,
            m.version(),
            mb(m.size)
        );
    }
    if let Some(t) = s.tracing {
        println!("  tracing       {t:?}");
    }
    if let Some(n) = s.reserved_concurrency {
        println!("  reserved      {n} concurrent executions");
    }
    if let Some(p) = &provisioned {
        println!(
            "  provisioned   {} of {} ({})",
            p.allocated, p.requested, p.status
        );
    }
    if let (Some(address), Some(u)) = (&function_url, &s.url) {
        print_url(&client, address, u, &package)?;
    }
    Ok(())
}

/// The URL and a request to paste: the default model's sample request when the manifest
/// has one for a model this zip embeds, else the list of models.
fn print_url(
    client: &aws_sdk_lambda::Client,
    address: &str,
    u: &config::UrlSettings,
    package: &Package,
) -> Result<()> {
    let auth = if u.public { "NONE" } else { "AWS_IAM" };
    println!("  url           {address} (auth {auth})");
    if u.public {
        eprintln!("warning: the URL is public: anyone who finds it can call the function, and every call is billed; cap the cost with --reserved-concurrency");
    }
    let example = crate::manifest::default_example_request()
        .filter(|e| package.models.iter().any(|m| m.name == e.model))
        .map(|e| e.request);
    println!("call it:");
    println!(
        "  {}",
        url::curl(address, &url::region(client)?, u.public, example.as_deref())
    );
    Ok(())
}

async fn upload(bucket: &str, key: &str, bytes: Vec<u8>) -> Result<()> {
    let client = crate::fetch::s3::client().await;
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .map_err(|e| {
            crate::aws_error::explain(&format!("s3:PutObject on s3://{bucket}/{key}"), e)
        })?;
    Ok(())
}

/// The zip's path as the template should name it: relative to the template's directory
/// when it is below it, else absolute.
fn pathdiff(zip: &Path, template: &Path) -> String {
    let dir = template
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let zip = zip.canonicalize().unwrap_or_else(|_| zip.to_path_buf());
    zip.strip_prefix(&dir)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| zip.display().to_string())
}
