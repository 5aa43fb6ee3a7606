//! `plans` in a lock entry: which execution plans the function builds for a model.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How the function shapes its execution plans. Symbolic dims keep tract off some of its
/// fastest kernels (convolutions fall back to generic im2col, products with an unknown
/// side to matrix-vector kernels); a concrete plan lets it choose by size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", deny_unknown_fields)]
pub enum Plans {
    /// One plan for every request shape.
    #[default]
    Symbolic,
    /// One plan with the batch dim (the first of every input and output) fixed to 1,
    /// built at load; a request's rows run one after another.
    Rows,
    /// Text models: the sequence dim padded (with a masked tail) up to the smallest of these
    /// lengths, one plan per length, built on first use and kept.
    Buckets { lengths: Vec<u64> },
    /// A plan for each concrete request shape, built on first use from the graph kept at
    /// load and kept in a bounded cache: for graphs tract cannot type with their symbolic
    /// dims (a detector's height and width), or that run faster specialised.
    #[serde(rename = "per-shape")]
    PerShape {
        /// The batch dim (the first of every input and output) is 1 in every plan, and a
        /// request's rows run one after another: the shape key is one row's.
        #[serde(default)]
        rows: bool,
        /// What each plan is specialised from.
        from: ShapeSource,
        /// Shapes the manifest declared, proved at pack time: each one input name → dims.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        declared: Vec<BTreeMap<String, Vec<u64>>>,
        /// Build the declared shapes' plans when the model loads rather than on first use.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        prebuild: bool,
    },
}

/// What per-shape plans are specialised from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShapeSource {
    /// The typed, decluttered graph with its symbolic dims: a new shape costs a declutter
    /// and an optimize.
    Typed,
    /// The ONNX graph, typed anew for each shape: tract cannot type it with symbolic dims
    /// (shapes computed from a symbolic size that its analysis cannot follow).
    Onnx,
}

/// Most bucket lengths one model may have: each is a plan kept in memory.
pub const MAX_BUCKETS: usize = 8;
/// Most shapes a manifest may declare for one model's per-shape plans.
pub const MAX_SHAPE_PLANS: usize = 16;

impl Plans {
    pub fn is_symbolic(&self) -> bool {
        *self == Plans::Symbolic
    }

    /// Whether the batch dim is 1 in every plan and rows run one at a time.
    pub fn rows(&self) -> bool {
        matches!(self, Plans::Rows | Plans::PerShape { rows: true, .. })
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Plans::PerShape { declared, .. } = self {
            if declared.len() > MAX_SHAPE_PLANS {
                return Err(format!(
                    "plans.declared: {} shapes, at most {MAX_SHAPE_PLANS}",
                    declared.len()
                ));
            }
        }
        if let Plans::Buckets { lengths } = self {
            if lengths.is_empty() || lengths.len() > MAX_BUCKETS {
                return Err(format!(
                    "plans.lengths: {} lengths, expected 1 to {MAX_BUCKETS}",
                    lengths.len()
                ));
            }
            if lengths[0] == 0 || lengths.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "plans.lengths = {lengths:?}: expected positive lengths in increasing order"
                ));
            }
        }
        Ok(())
    }

    /// The smallest bucket that holds `n`, if any.
    pub fn bucket(&self, n: u64) -> Option<u64> {
        match self {
            Plans::Buckets { lengths } => lengths.iter().copied().find(|l| *l >= n),
            _ => None,
        }
    }
}

impl fmt::Display for Plans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plans::Symbolic => f.write_str("symbolic"),
            Plans::Rows => f.write_str("rows"),
            Plans::Buckets { lengths } => {
                let l: Vec<String> = lengths.iter().map(u64::to_string).collect();
                write!(f, "buckets {}", l.join("/"))
            }
            Plans::PerShape { rows, from, .. } => {
                let from = match from {
                    ShapeSource::Typed => "typed graph",
                    ShapeSource::Onnx => "ONNX",
                };
                match rows {
                    true => write!(f, "per-shape (rows, from the {from})"),
                    false => write!(f, "per-shape (from the {from})"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_lengths_must_grow_and_stay_few() {
        let b = |lengths: Vec<u64>| Plans::Buckets { lengths }.validate();
        assert!(b(vec![16, 32, 128]).is_ok());
        assert!(b(vec![]).is_err());
        assert!(b(vec![32, 16]).is_err());
        assert!(b(vec![0, 16]).is_err());
        assert!(b((1..=9).collect()).is_err());
        let plans = Plans::Buckets {
            lengths: vec![16, 32],
        };
        assert_eq!(plans.bucket(1), Some(16));
        assert_eq!(plans.bucket(17), Some(32));
        assert_eq!(plans.bucket(33), None);
        assert_eq!(Plans::Rows.bucket(3), None);
    }
}
