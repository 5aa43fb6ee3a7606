//! `limits` and `memory` in a lock entry: how big one request may be.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How big one request may be: `[model.limits]` in the manifest, filled in by `pack-models`
/// where the manifest is silent, recorded in the lock. Past a cap the function answers 413.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most input values (all inputs together) one request may send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_elements: Option<u64>,
    /// Largest value of each symbolic dim, by name (`batch = 64`, `sequence = 512`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_dims: BTreeMap<String, u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.max_input_elements.is_none() && self.max_dims.is_empty()
    }
}

/// What a request costs in memory, measured by `pack-models` on two request sizes and
/// extrapolated (with a margin): the function derives the default cap on a request's input
/// values from it and the memory it has, where the manifest sets no `max_input_elements`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryCost {
    /// Peak bytes a request needs whatever its size.
    pub fixed_bytes: u64,
    /// Peak bytes each input value adds.
    pub bytes_per_input_element: u64,
}

impl MemoryCost {
    /// Input values of the largest request that fits `budget` bytes.
    pub fn largest_request(&self, budget: u64) -> u64 {
        budget.saturating_sub(self.fixed_bytes) / self.bytes_per_input_element.max(1)
    }
}
