//! The function's settings: every `MODEL_*` environment variable, its default and its parse
//! error, in one place. `lambda-fn` reads them once at init; the bench and the tests name the
//! variables through the constants here; the settings table in docs/configuration.md is
//! tested against [`VARIABLES`].

use std::path::PathBuf;
use std::time::Duration;

use crate::fallback::s3::S3Location;
use crate::fallback::FallbackConfig;

pub const MODEL_LOAD: &str = "MODEL_LOAD";
pub const MODEL_EFS_DIR: &str = "MODEL_EFS_DIR";
/// Set by a container image's config (`cargo xtask build --image`): where its models are.
pub const MODEL_IMAGE_DIR: &str = "MODEL_IMAGE_DIR";
pub const MODEL_S3_BUCKET: &str = "MODEL_S3_BUCKET";
pub const MODEL_S3_PREFIX: &str = "MODEL_S3_PREFIX";
pub const MODEL_TMP_DIR: &str = "MODEL_TMP_DIR";
pub const MODEL_FALLBACK_BUDGET_SECS: &str = "MODEL_FALLBACK_BUDGET_SECS";
pub const MODEL_MAX_LOADED: &str = "MODEL_MAX_LOADED";
pub const MODEL_THREADS: &str = "MODEL_THREADS";
pub const MODEL_METRICS: &str = "MODEL_METRICS";
pub const MODEL_METRICS_NAMESPACE: &str = "MODEL_METRICS_NAMESPACE";
pub const MODEL_CORS_ORIGIN: &str = "MODEL_CORS_ORIGIN";
pub const MODEL_MAX_SHAPE_PLANS: &str = "MODEL_MAX_SHAPE_PLANS";
pub const MODEL_SHAPE_PLANS_MB: &str = "MODEL_SHAPE_PLANS_MB";
/// Set by Lambda: the function's memory size in MB, which decides its vCPUs.
pub const AWS_LAMBDA_FUNCTION_MEMORY_SIZE: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";

pub const DEFAULT_EFS_DIR: &str = "/mnt/models";
pub const DEFAULT_TMP_DIR: &str = "/tmp/onnx-models";
/// Below Lambda's 10 s init phase (an eager load's fallback happens there) and below the
/// 30 s timeout `deploy` gives a function, so a slow store gives the documented init error
/// or 503, not a timeout.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(8);
/// The longest fallback budget accepted: Lambda's longest invocation.
pub const MAX_BUDGET_SECS: f64 = 900.0;
pub const DEFAULT_MAX_LOADED: usize = 8;
pub const MAX_THREADS: usize = 64;
pub const DEFAULT_METRICS_NAMESPACE: &str = "OnnxLambda";
/// Plans one model keeps that were built on first use of a shape (per-shape plans,
/// sequence buckets).
pub const DEFAULT_MAX_SHAPE_PLANS: usize = 8;
/// The memory those plans may hold together when the function's memory is not known; with
/// it, a quarter of it.
pub const DEFAULT_SHAPE_PLANS_BYTES: u64 = 512 << 20;

/// One setting as docs/configuration.md documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    /// The default as the documented table writes it.
    pub default: &'static str,
}

/// Every variable [`Settings::from_vars`] reads that a user sets.
pub const VARIABLES: [Variable; 14] = [
    Variable {
        name: MODEL_LOAD,
        default: "`eager`",
    },
    Variable {
        name: MODEL_IMAGE_DIR,
        default: "unset (the image sets `/opt/models`)",
    },
    Variable {
        name: MODEL_EFS_DIR,
        default: "`/mnt/models`",
    },
    Variable {
        name: MODEL_S3_BUCKET,
        default: "unset",
    },
    Variable {
        name: MODEL_S3_PREFIX,
        default: "empty",
    },
    Variable {
        name: MODEL_TMP_DIR,
        default: "`/tmp/onnx-models`",
    },
    Variable {
        name: MODEL_FALLBACK_BUDGET_SECS,
        default: "`8`",
    },
    Variable {
        name: MODEL_MAX_LOADED,
        default: "`8`",
    },
    Variable {
        name: MODEL_THREADS,
        default: "one per vCPU",
    },
    Variable {
        name: MODEL_METRICS,
        default: "`on`",
    },
    Variable {
        name: MODEL_METRICS_NAMESPACE,
        default: "`OnnxLambda`",
    },
    Variable {
        name: MODEL_CORS_ORIGIN,
        default: "unset",
    },
    Variable {
        name: MODEL_MAX_SHAPE_PLANS,
        default: "`8`",
    },
    Variable {
        name: MODEL_SHAPE_PLANS_MB,
        default: "a quarter of the function's memory",
    },
];

/// When models are loaded (`MODEL_LOAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadMode {
    /// Every model at init: the first request pays nothing.
    #[default]
    Eager,
    /// On first use, then cached: for functions with many models.
    Lazy,
}

/// A setting that cannot be used; init reports it and the function does not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: expected {expected}")]
pub struct SettingsError {
    pub name: &'static str,
    /// The value as given, cut to a readable length.
    pub value: String,
    pub expected: &'static str,
}

impl SettingsError {
    fn new(name: &'static str, value: &str, expected: &'static str) -> Self {
        SettingsError {
            name,
            value: value.chars().take(64).collect(),
            expected,
        }
    }
}

/// How the function loads and runs its models.
#[derive(Debug, Clone)]
pub struct Settings {
    pub load: LoadMode,
    /// Where to look when an embedded copy is missing or corrupt.
    pub fallback: FallbackConfig,
    /// The LRU cap on models loaded on first use (`embed = false`, or lazy mode); models
    /// loaded at init are not counted and never evicted.
    pub max_loaded: usize,
    /// Intra-op threads: `MODEL_THREADS`, else one per vCPU the memory setting buys.
    pub threads: usize,
    /// The function's memory in MB (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, set by Lambda): a
    /// request needing more working memory than the process has left of it gets a 413.
    pub memory_mb: Option<u64>,
    /// What each model's plans built on first use of a shape may hold.
    pub plan_cache: crate::plans::PlanCacheLimits,
    pub metrics: MetricsSettings,
    /// Origins a browser may call from (`MODEL_CORS_ORIGIN`, comma-separated, or `*`);
    /// empty: no CORS headers, same-origin only.
    pub cors_origins: Vec<String>,
}

/// Whether the function writes metrics, and under which CloudWatch namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub namespace: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            namespace: DEFAULT_METRICS_NAMESPACE.into(),
        }
    }
}

impl MetricsSettings {
    fn from_vars(var: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let enabled = match var(MODEL_METRICS) {
            None => true,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => return Err(SettingsError::new(MODEL_METRICS, &v, "\"on\" or \"off\"")),
            },
        };
        let namespace = match var(MODEL_METRICS_NAMESPACE).filter(|n| !n.trim().is_empty()) {
            None => DEFAULT_METRICS_NAMESPACE.to_string(),
            Some(n) => {
                // CloudWatch's rule for a custom namespace; `AWS/` is reserved for AWS's own.
                let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c);
                let n = n.trim();
                if n.len() > 255 || !n.chars().all(allowed) || n.starts_with("AWS/") {
                    return Err(SettingsError::new(
                        MODEL_METRICS_NAMESPACE,
                        n,
                        "a CloudWatch namespace: up to 255 letters, digits, spaces and . - _ / # :, not starting with AWS/",
                    ));
                }
                n.to_string()
            }
        };
        Ok(MetricsSettings { enabled, namespace })
    }
}

impl Default for Settings {
    /// What a function with no `MODEL_*` variables gets, on one vCPU.
    fn default() -> Self {
        Settings {
            load: LoadMode::Eager,
            fallback: FallbackConfig::default(),
            max_loaded: DEFAULT_MAX_LOADED,
            threads: 1,
            memory_mb: None,
            plan_cache: Default::default(),
            metrics: MetricsSettings::default(),
            cors_origins: Vec::new(),
        }
    }
}

impl Settings {
    /// No fallback store: a model that is not embedded intact cannot be served (pack-time
    /// checks, tests).
    pub fn embedded_only(load: LoadMode) -> Self {
        Settings {
            load,
            fallback: FallbackConfig::disabled(),
            ..Settings::default()
        }
    }

    /// The function's settings from its environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::from_vars(|k| std::env::var(k).ok(), cores)
    }

    /// Reads every setting through `var` (normally `std::env::var`); `cores` is what this
    /// process may use, the ceiling for the default thread count.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        cores: usize,
    ) -> Result<Self, SettingsError> {
        let load = match var(MODEL_LOAD) {
            None => LoadMode::Eager,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "eager" => LoadMode::Eager,
                "lazy" => LoadMode::Lazy,
                _ => return Err(SettingsError::new(MODEL_LOAD, &v, "\"eager\" or \"lazy\"")),
            },
        };
        let mut fallback = FallbackConfig {
            image_dir: var(MODEL_IMAGE_DIR)
                .filter(|d| !d.trim().is_empty())
                .map(|d| PathBuf::from(d.trim())),
            ..Default::default()
        };
        if let Some(dir) = var(MODEL_EFS_DIR) {
            // Empty turns EFS off.
            fallback.efs_dir = (!dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()));
        }
        if let Some(bucket) = var(MODEL_S3_BUCKET).filter(|b| !b.trim().is_empty()) {
            fallback.s3 = Some(S3Location {
                bucket: bucket.trim().to_string(),
                prefix: var(MODEL_S3_PREFIX)
                    .unwrap_or_default()
                    .trim_matches('/')
                    .to_string(),
            });
        }
        if let Some(dir) = var(MODEL_TMP_DIR).filter(|d| !d.trim().is_empty()) {
            fallback.tmp_dir = PathBuf::from(dir.trim());
        }
        if let Some(secs) = var(MODEL_FALLBACK_BUDGET_SECS) {
            let expected = "a number of seconds above 0 and at most 900";
            let parsed: f64 = secs
                .trim()
                .parse()
                .map_err(|_| SettingsError::new(MODEL_FALLBACK_BUDGET_SECS, &secs, expected))?;
            if !(parsed.is_finite() && parsed > 0.0 && parsed <= MAX_BUDGET_SECS) {
                return Err(SettingsError::new(
                    MODEL_FALLBACK_BUDGET_SECS,
                    &secs,
                    expected,
                ));
            }
            fallback.budget = Duration::from_secs_f64(parsed);
        }
        let max_loaded = match var(MODEL_MAX_LOADED) {
            None => DEFAULT_MAX_LOADED,
            Some(v) => whole_number(
                MODEL_MAX_LOADED,
                &v,
                1..=usize::MAX,
                "a whole number above 0",
            )?,
        };
        let memory_mb: Option<u64> = var(AWS_LAMBDA_FUNCTION_MEMORY_SIZE)
            .and_then(|v| v.trim().parse().ok())
            .filter(|mb| *mb > 0);
        let threads = match var(MODEL_THREADS) {
            Some(v) => whole_number(
                MODEL_THREADS,
                &v,
                1..=MAX_THREADS,
                "a whole number from 1 to 64",
            )?,
            None => crate::threads::default_threads(memory_mb, cores),
        };
        let max_plans = match var(MODEL_MAX_SHAPE_PLANS) {
            None => DEFAULT_MAX_SHAPE_PLANS,
            Some(v) => whole_number(
                MODEL_MAX_SHAPE_PLANS,
                &v,
                1..=1024,
                "a whole number from 1 to 1024",
            )?,
        };
        let max_bytes = match var(MODEL_SHAPE_PLANS_MB) {
            None => memory_mb.map_or(DEFAULT_SHAPE_PLANS_BYTES, |mb| (mb << 20) / 4),
            Some(v) => {
                (whole_number(
                    MODEL_SHAPE_PLANS_MB,
                    &v,
                    1..=1 << 20,
                    "a whole number of MB above 0",
                )? as u64)
                    << 20
            }
        };
        Ok(Settings {
            load,
            fallback,
            max_loaded,
            threads,
            memory_mb,
            plan_cache: crate::plans::PlanCacheLimits {
                max_plans,
                max_bytes,
            },
            metrics: MetricsSettings::from_vars(&var)?,
            cors_origins: cors_origins(&var)?,
        })
    }
}

fn cors_origins(var: &impl Fn(&str) -> Option<String>) -> Result<Vec<String>, SettingsError> {
    let Some(list) = var(MODEL_CORS_ORIGIN) else {
        return Ok(Vec::new());
    };
    let origins: Vec<String> = list
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    let valid = |o: &String| {
        o == "*"
            || ((o.starts_with("https://") || o.starts_with("http://"))
                && !o.contains(|c: char| c.is_whitespace() || c.is_control()))
    };
    if !origins.iter().all(valid) {
        return Err(SettingsError::new(
            MODEL_CORS_ORIGIN,
            &list,
            "*, or origins like https://app.example.com separated by commas",
        ));
    }
    Ok(origins)
}

fn whole_number(
    name: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<usize>,
    expected: &'static str,
) -> Result<usize, SettingsError> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| SettingsError::new(name, value, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_vars(vars(pairs), 2)
    }

    #[test]
    fn settings_from_the_environment() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.load, LoadMode::Eager);
        assert_eq!(
            c.fallback.efs_dir.as_deref(),
            Some(std::path::Path::new("/mnt/models"))
        );
        assert!(c.fallback.s3.is_none());
        assert_eq!(c.fallback.budget, DEFAULT_BUDGET);
        assert_eq!(c.max_loaded, DEFAULT_MAX_LOADED);
        assert_eq!(
            c.threads, 2,
            "not on Lambda: the cores this process may use"
        );

        let c = parse(&[
            ("MODEL_LOAD", " Lazy "),
            ("MODEL_EFS_DIR", ""),
            ("MODEL_S3_BUCKET", "models"),
            ("MODEL_S3_PREFIX", "/prod/v1/"),
            ("MODEL_FALLBACK_BUDGET_SECS", "2.5"),
            ("MODEL_MAX_LOADED", "3"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"),
        ])
        .unwrap();
        assert_eq!(c.load, LoadMode::Lazy);
        assert!(c.fallback.efs_dir.is_none());
        let s3 = c.fallback.s3.unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("models", "prod/v1")
        );
        assert_eq!(
            s3.key("m", "AB", model_lock::ModelFormat::Onnx),
            "prod/v1/m/ab.onnx"
        );
        assert_eq!(c.fallback.budget, Duration::from_millis(2500));
        assert_eq!(c.max_loaded, 3);
        assert_eq!(c.threads, 1, "1,024 MB buys under one vCPU");
        assert_eq!(parse(&[("MODEL_THREADS", "4")]).unwrap().threads, 4);
    }

    #[test]
    fn every_bad_value_names_its_variable_and_what_was_expected() {
        for (name, bad) in [
            ("MODEL_LOAD", "sometimes"),
            ("MODEL_FALLBACK_BUDGET_SECS", "soon"),
            ("MODEL_FALLBACK_BUDGET_SECS", "0"),
            ("MODEL_FALLBACK_BUDGET_SECS", "-1"),
            ("MODEL_FALLBACK_BUDGET_SECS", "NaN"),
            ("MODEL_FALLBACK_BUDGET_SECS", "901"),
            ("MODEL_MAX_LOADED", "0"),
            ("MODEL_MAX_LOADED", "many"),
            ("MODEL_THREADS", "0"),
            ("MODEL_THREADS", "65"),
        ] {
            let e = parse(&[(name, bad)]).unwrap_err();
            assert_eq!(e.name, name);
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("{name}={bad:?}: expected ")),
                "{text}"
            );
        }
        // A huge value is not echoed whole.
        let e = parse(&[("MODEL_LOAD", &"x".repeat(10_000))]).unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
    }

    #[test]
    fn metrics_settings() {
        assert_eq!(parse(&[]).unwrap().metrics, MetricsSettings::default());
        let m = parse(&[
            (MODEL_METRICS, " OFF "),
            (MODEL_METRICS_NAMESPACE, "Team/Search"),
        ])
        .unwrap()
        .metrics;
        assert_eq!(
            m,
            MetricsSettings {
                enabled: false,
                namespace: "Team/Search".into()
            }
        );
        let e = parse(&[(MODEL_METRICS, "maybe")]).unwrap_err();
        assert_eq!(e.name, MODEL_METRICS);
        for bad in ["AWS/Lambda", "caf\u{e9}", &"n".repeat(256)] {
            let e = parse(&[(MODEL_METRICS_NAMESPACE, bad)]).unwrap_err();
            assert_eq!(e.name, MODEL_METRICS_NAMESPACE, "{bad}");
        }
    }

    #[test]
    fn cors_origins() {
        assert!(parse(&[]).unwrap().cors_origins.is_empty());
        let c = parse(&[(
            MODEL_CORS_ORIGIN,
            "https://a.example.com/, http://localhost:3000",
        )]);
        assert_eq!(
            c.unwrap().cors_origins,
            ["https://a.example.com", "http://localhost:3000"]
        );
        assert_eq!(
            parse(&[(MODEL_CORS_ORIGIN, "*")]).unwrap().cors_origins,
            ["*"]
        );
        let e = parse(&[(MODEL_CORS_ORIGIN, "a.example.com")]).unwrap_err();
        assert_eq!(e.name, MODEL_CORS_ORIGIN);
    }

    /// The documented settings table lists exactly these variables with these defaults.
    #[test]
    fn the_documented_table_matches() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
        )
        .unwrap();
        let table = doc
            .split("## Function settings")
            .nth(1)
            .expect("docs/configuration.md has a Function settings section");
        let rows: Vec<(String, String)> = table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((name.to_string(), cells.get(2)?.to_string()))
            })
            .filter(|(name, _)| name.starts_with("MODEL_"))
            .collect();
        let documented: Vec<(String, String)> = VARIABLES
            .iter()
            .map(|v| (v.name.to_string(), v.default.to_string()))
            .collect();
        assert_eq!(rows, documented);
    }
}
