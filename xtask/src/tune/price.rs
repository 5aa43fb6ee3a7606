//! What Lambda charges for an invocation: duration billed per millisecond (rounded up) at a
//! price per GB-second that depends on the architecture, plus a price per request. The
//! first tier of Lambda's published on-demand prices (us-east-1); other regions and volume
//! tiers differ: `--gb-second-price` and `--request-price` override them.

use clap::ValueEnum;
use serde::Serialize;

/// Where and when the prices below were read (https://aws.amazon.com/lambda/pricing/;
/// unchanged since tiered pricing began, August 2022).
pub const PRICES_AS_OF: &str = "us-east-1, first tier, as published on 2026-12-04";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    Arm64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// USD per GB-second of duration.
    pub fn gb_second(self) -> f64 {
        match self {
            Arch::X86_64 => 0.000_016_666_7,
            Arch::Arm64 => 0.000_013_333_4,
        }
    }
}

/// USD per million requests (both architectures).
pub const PER_MILLION_REQUESTS: f64 = 0.20;

/// The prices a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    pub arch: Arch,
    pub gb_second: f64,
    pub per_million_requests: f64,
}

impl Prices {
    pub fn new(arch: Arch, gb_second: Option<f64>, per_million_requests: Option<f64>) -> Self {
        Prices {
            arch,
            gb_second: gb_second.unwrap_or(arch.gb_second()),
            per_million_requests: per_million_requests.unwrap_or(PER_MILLION_REQUESTS),
        }
    }

    /// USD for one million invocations of a function of `memory_mb` whose invocations take
    /// `durations_ms` (each billed rounded up to the millisecond), averaged over them.
    pub fn per_million(&self, memory_mb: u32, durations_ms: &[f64]) -> f64 {
        if durations_ms.is_empty() {
            return f64::NAN;
        }
        let billed_ms =
            durations_ms.iter().map(|d| d.ceil()).sum::<f64>() / durations_ms.len() as f64;
        // Lambda's GB is 1,024 MB.
        let gb = f64::from(memory_mb) / 1024.0;
        1e6 * billed_ms / 1000.0 * gb * self.gb_second + self.per_million_requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_invocations_of_100_ms_at_1024_mb() {
        let p = Prices::new(Arch::X86_64, None, None);
        // 1e6 × 0.1 s × 1 GB × $0.0000166667 + $0.20.
        let cost = p.per_million(1024, &[99.2, 100.0]);
        assert!((cost - (1.666_67 + 0.20)).abs() < 1e-3, "{cost}");
        let arm = Prices::new(Arch::Arm64, None, None).per_million(1024, &[100.0]);
        assert!(arm < cost);
        let custom = Prices::new(Arch::X86_64, Some(0.00002), Some(0.0)).per_million(512, &[10.0]);
        assert!(
            (custom - 1e6 * 0.01 * 0.5 * 0.00002).abs() < 1e-9,
            "{custom}"
        );
        assert!(p.per_million(1024, &[]).is_nan());
    }
}
