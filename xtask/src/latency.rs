//! Latency statistics of a set of timed calls (the bench's and `tune`'s).

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Stats {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len().max(1);
        // Nearest-rank percentiles.
        let rank = |p: f64| s[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Stats {
            n: s.len(),
            p50_ms: rank(0.5),
            p99_ms: rank(0.99),
            min_ms: s[0],
            max_ms: s[n - 1],
            mean_ms: s.iter().sum::<f64>() / n as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stats::of(&samples);
        assert_eq!(
            (s.p50_ms, s.p99_ms, s.min_ms, s.max_ms),
            (50.0, 99.0, 1.0, 100.0)
        );
        let s = Stats::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.p50_ms, s.p99_ms), (2.0, 3.0));
    }
}
