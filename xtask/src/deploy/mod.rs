//! `cargo xtask deploy`: `build` (`crate::build`), then the zip or the image to a
//! published, aliased Lambda version.

mod concurrency;
mod config;
mod lambda;
mod push;
mod sam;
mod url;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use model_lock::{Artifact, ModelEntry};

use crate::build::package::{mb, Arch, MAX_DIRECT_ZIP};
use crate::build::{build, BuildArgs, Built};
use config::Settings;

#[derive(Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// With --image: the ECR repository to push to (created when missing).
    #[arg(long, requires = "image")]
    pub repository: Option<String>,
    /// With --repository: send the image to this registry (`host[:port]` or URL) instead of
    /// the account's ECR endpoint; the credentials still come from ECR.
    #[arg(long, requires = "repository")]
    pub registry: Option<String>,
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

    let (built, lock) = build(&args.build)?;
    let models = built.models(lock.as_ref());
    if let (Built::Image(_), None) = (&built, &args.repository) {
        bail!("deploying an image needs the ECR repository to push it to: add --repository NAME");
    }
    if let Some(path) = &args.emit_sam {
        let endpoint = match (&s.url, args.http_api) {
            (Some(_), true) => {
                bail!("--http-api and --url each put an endpoint in front of the function: choose one")
            }
            (None, true) => sam::Endpoint::HttpApi,
            (Some(u), false) => sam::Endpoint::Url(u.clone()),
            (None, false) => sam::Endpoint::None,
        };
        let code = match &built {
            Built::Zip(package) => sam::Code::Zip(pathdiff(&package.zip, path)),
            // The template names the image by digest: it must be in ECR first.
            Built::Image(image) => {
                let repository = args.repository.as_deref().unwrap_or_default();
                let pushed = push::push(&rt, repository, args.registry.as_deref(), image)?;
                println!("pushed {}", pushed.uri);
                sam::Code::Image(pushed.uri)
            }
        };
        let template = sam::template(&s, &code, args.canary_weight, &endpoint)?;
        crate::files::write_atomic(path, template.as_bytes())?;
        println!(
            "wrote {} (deploy it with `sam deploy --guided`)",
            path.display()
        );
        return Ok(());
    }
    if let Built::Zip(package) = &built {
        if package.needs_s3() && s.s3_bucket.is_none() {
            bail!(
                "the zip is {}, over Lambda's {} limit for direct upload: pass --s3-bucket BUCKET (or s3_bucket in deploy.toml) to upload it through S3",
                mb(package.zip_size),
                mb(MAX_DIRECT_ZIP)
            );
        }
    }
    let client = rt.block_on(lambda::client());
    let existing = rt.block_on(lambda::current(&client, &s.function))?;
    // Lambda cannot change a function's package type.
    let want = match &built {
        Built::Zip(_) => aws_sdk_lambda::types::PackageType::Zip,
        Built::Image(_) => aws_sdk_lambda::types::PackageType::Image,
    };
    if let Some(have) = existing.as_ref().and_then(|c| c.package_type.clone()) {
        if have != want {
            bail!(
                "{} is a {} function and this deploy is a {}: Lambda cannot change a function's package type. Deploy under another --function name, or delete the function first.",
                s.function,
                have.as_str(),
                want.as_str()
            );
        }
    }
    let s3_key = match (&built, &s.s3_bucket) {
        (Built::Zip(package), Some(_)) => {
            let prefix = s.s3_prefix.trim_matches('/');
            let key = format!("{}/{}.zip", s.function, package.sha256_hex);
            Some(if prefix.is_empty() {
                key
            } else {
                format!("{prefix}/{key}")
            })
        }
        _ => None,
    };

    if args.dry_run {
        let verb = if existing.is_some() {
            "update"
        } else {
            "create"
        };
        println!("dry run: nothing was changed. A deploy would:");
        let kind = match &built {
            Built::Zip(package) => {
                if let (Some(b), Some(k)) = (&s.s3_bucket, &s3_key) {
                    println!("  upload {} to s3://{b}/{k}", mb(package.zip_size));
                }
                "provided.al2023"
            }
            Built::Image(image) => {
                println!(
                    "  push image {} ({} compressed) to ECR repository {} (tag {}), skipping the layers it has",
                    image.digest(),
                    mb(image.compressed),
                    args.repository.as_deref().unwrap_or_default(),
                    push::tag(image)
                );
                "image"
            }
        };
        println!(
            "  {verb} function {} ({kind}, {}, {} MB, {} s)",
            s.function,
            s.arch.lambda_name(),
            s.memory,
            s.timeout
        );
        if existing.is_some() && s.role.is_none() {
            println!("  keep its execution role");
        }
        match &built {
            Built::Zip(package) => println!(
                "  publish a version with CodeSha256 {}",
                package.code_sha256
            ),
            Built::Image(_) => println!("  publish a version of the pushed image"),
        }
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

    let mut pushed = None;
    let code = match (&built, &s.s3_bucket, &s3_key) {
        (Built::Zip(package), Some(bucket), Some(key)) => {
            let bytes = std::fs::read(&package.zip)?;
            rt.block_on(upload(bucket, key, bytes))?;
            lambda::Code::S3 {
                bucket: bucket.clone(),
                key: key.clone(),
            }
        }
        (Built::Zip(package), _, _) => lambda::Code::Zip(std::fs::read(&package.zip)?),
        (Built::Image(image), _, _) => {
            let repository = args.repository.as_deref().unwrap_or_default();
            let p = push::push(&rt, repository, args.registry.as_deref(), image)?;
            let uri = p.uri.clone();
            pushed = Some(p);
            lambda::Code::Image { uri }
        }
    };
    let (action, code_sha256) = if existing.is_some() {
        ("updated", rt.block_on(lambda::update(&client, &s, code))?)
    } else {
        ("created", rt.block_on(lambda::create(&client, &s, code))?)
    };
    // A zip's hash is known here: the version must be of exactly that zip. An image's is
    // Lambda's to compute: the version is of what the update installed.
    let (code_sha256, description) = match &built {
        Built::Zip(package) => (
            package.code_sha256.clone(),
            format!("bootstrap.zip sha256 {}", package.sha256_hex),
        ),
        Built::Image(image) => (code_sha256, format!("image {}", image.digest())),
    };
    let (version, arn) = rt.block_on(lambda::publish(
        &client,
        &s.function,
        &code_sha256,
        &description,
    ))?;
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
    println!("  CodeSha256    {code_sha256}");
    match (&built, &pushed) {
        (Built::Image(image), Some(p)) => {
            println!("  image         {}", p.uri);
            println!(
                "  pushed        {} blobs ({}), {} already there{}",
                p.uploaded,
                mb(p.bytes),
                p.skipped,
                if p.repository_created {
                    "; repository created"
                } else {
                    ""
                }
            );
            println!(
                "  size          {} uncompressed, {} compressed",
                mb(image.uncompressed),
                mb(image.compressed)
            );
        }
        (Built::Zip(package), _) => println!("  zip           {}", mb(package.zip_size)),
        (Built::Image(_), None) => {}
    }
    for m in &models {
        println!(
            "  model         {} {} ({}{})",
            m.name,
            m.version(),
            mb(m.size),
            if m.artifact == Artifact::Image {
                ", in the image"
            } else {
                ""
            }
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
        print_url(&client, address, u, &models)?;
    }
    Ok(())
}

/// The URL and a request to paste: the default model's sample request when the manifest
/// has one for a model this zip embeds, else the list of models.
fn print_url(
    client: &aws_sdk_lambda::Client,
    address: &str,
    u: &config::UrlSettings,
    models: &[ModelEntry],
) -> Result<()> {
    let auth = if u.public { "NONE" } else { "AWS_IAM" };
    println!("  url           {address} (auth {auth})");
    if u.public {
        eprintln!("warning: the URL is public: anyone who finds it can call the function, and every call is billed; cap the cost with --reserved-concurrency");
    }
    let example = crate::example::default_request()
        .filter(|e| models.iter().any(|m| m.name == e.model))
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
