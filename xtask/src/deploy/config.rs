//! Deploy settings: `deploy.toml` (optional, next to the workspace's Cargo.toml or given
//! with `--config`), overridden by command-line flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::build::package::Arch;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployToml {
    pub function: Option<String>,
    pub role: Option<String>,
    pub arch: Option<String>,
    pub memory: Option<i32>,
    pub timeout: Option<i32>,
    pub alias: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_prefix: Option<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub efs: Option<Efs>,
    pub vpc: Option<Vpc>,
    pub url: Option<UrlSettings>,
    pub tracing: Option<Tracing>,
    pub reserved_concurrency: Option<i32>,
    pub provisioned_concurrency: Option<i32>,
}

/// A Function URL on the alias.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UrlSettings {
    /// No auth: anyone on the internet may call it (`AuthType NONE`).
    #[serde(default)]
    pub public: bool,
    /// Browser origins allowed to call it (CORS); `*` for any.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

/// X-Ray tracing of the function (`TracingConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Tracing {
    /// Sample and record traces (the execution role needs X-Ray write access).
    Active,
    /// Lambda's default: only pass on a caller's trace header.
    PassThrough,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Efs {
    pub access_point_arn: String,
    /// Where the function sees it; must start with /mnt/ (Lambda's rule).
    #[serde(default = "default_mount")]
    pub mount_path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

fn default_mount() -> String {
    inference_core::settings::DEFAULT_EFS_DIR.into()
}

/// Everything `deploy` needs, flags over file over defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    pub function: String,
    pub role: Option<String>,
    pub arch: Arch,
    pub memory: i32,
    pub timeout: i32,
    pub alias: String,
    pub s3_bucket: Option<String>,
    pub s3_prefix: String,
    pub environment: BTreeMap<String, String>,
    pub efs: Option<Efs>,
    pub vpc: Option<Vpc>,
    pub url: Option<UrlSettings>,
    pub tracing: Option<Tracing>,
    pub reserved_concurrency: Option<i32>,
    pub provisioned_concurrency: Option<i32>,
}

pub fn read(path: &Path) -> Result<DeployToml> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid deploy.toml", path.display()))
}

/// `--config`, else `deploy.toml` in the workspace root when there is one.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let p = crate::workspace::root().join("deploy.toml");
            p.exists().then_some(p)
        }
    }
}

pub fn parse_arch(s: &str) -> Result<Arch> {
    match s {
        "x86_64" => Ok(Arch::X86_64),
        "arm64" => Ok(Arch::Arm64),
        other => bail!("arch = {other:?}: expected \"x86_64\" or \"arm64\""),
    }
}

impl Settings {
    pub fn validate(&self) -> Result<()> {
        if self.function.is_empty() {
            bail!("no function name: pass --function NAME or set function in deploy.toml");
        }
        if !(128..=10240).contains(&self.memory) {
            bail!("memory = {} MB: Lambda allows 128 to 10240", self.memory);
        }
        if !(1..=900).contains(&self.timeout) {
            bail!("timeout = {} s: Lambda allows 1 to 900", self.timeout);
        }
        if let Some(efs) = &self.efs {
            if !efs.mount_path.starts_with("/mnt/") {
                bail!("efs.mount_path {:?} must start with /mnt/", efs.mount_path);
            }
            if self.vpc.is_none() {
                bail!("an EFS access point needs the function in a VPC: set [vpc] subnet_ids and security_group_ids");
            }
        }
        if let Some(n) = self.reserved_concurrency.filter(|n| *n < 0) {
            bail!(
                "reserved concurrency {n}: expected 0 or more (0 stops the function from running)"
            );
        }
        if let Some(n) = self.provisioned_concurrency {
            if n < 1 {
                bail!("provisioned concurrency {n}: expected 1 or more");
            }
            if let Some(r) = self.reserved_concurrency.filter(|r| n > *r) {
                bail!("provisioned concurrency {n} is more than the reserved concurrency {r}: Lambda refuses that; raise --reserved-concurrency or lower --provisioned-concurrency");
            }
        }
        if let Some(url) = &self.url {
            let valid = |o: &String| {
                o == "*"
                    || ((o.starts_with("https://") || o.starts_with("http://"))
                        && !o.contains(char::is_whitespace))
            };
            if let Some(bad) = url.cors_origins.iter().find(|o| !valid(o)) {
                bail!("CORS origin {bad:?}: expected * or an origin like https://app.example.com");
            }
        }
        Ok(())
    }
}
