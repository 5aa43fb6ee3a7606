//! The bounded cache of plans built per request shape (sequence-length buckets, per-shape
//! plans): least recently used evicted past a count or a memory cap, a shape whose plan
//! cannot be built remembered as refused, and concurrent first requests of one shape
//! building its plan once — the others wait for it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Built;

/// A request's concrete input shapes: what a plan is built for.
pub(crate) type ShapeKey = Vec<Vec<usize>>;

/// How many plans one model keeps, and how much memory they may hold together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanCacheLimits {
    pub max_plans: usize,
    pub max_bytes: u64,
}

impl Default for PlanCacheLimits {
    fn default() -> Self {
        PlanCacheLimits {
            max_plans: crate::settings::DEFAULT_MAX_SHAPE_PLANS,
            max_bytes: crate::settings::DEFAULT_SHAPE_PLANS_BYTES,
        }
    }
}

/// Shapes refused are remembered (so a repeated bad shape costs no second attempt), up to
/// this many.
const REFUSED_KEPT: usize = 32;

/// A plan from the cache, and how long it took to build if this request built it.
pub(crate) struct Cached {
    pub built: Arc<Built>,
    pub build_time: Option<Duration>,
}

#[derive(Debug)]
struct State {
    /// Most recently used last.
    built: Vec<(ShapeKey, Arc<Built>)>,
    /// Shapes whose plan some request is building now.
    building: Vec<ShapeKey>,
    refused: VecDeque<(ShapeKey, String)>,
}

#[derive(Debug)]
pub(crate) struct PlanCache {
    limits: PlanCacheLimits,
    state: Mutex<State>,
    done: Condvar,
}

impl PlanCache {
    pub(crate) fn new(limits: PlanCacheLimits) -> Self {
        PlanCache {
            limits: PlanCacheLimits {
                max_plans: limits.max_plans.max(1),
                ..limits
            },
            state: Mutex::new(State {
                built: Vec::new(),
                building: Vec::new(),
                refused: VecDeque::new(),
            }),
            done: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plan for `key`, built by `build` if no request has built it yet. `Err` is why the
    /// shape cannot have a plan (said again, without a second attempt, for the same shape).
    pub(crate) fn get_or_build(
        &self,
        key: &ShapeKey,
        build: impl FnOnce() -> Result<Built, String>,
    ) -> Result<Cached, String> {
        let mut state = self.lock();
        loop {
            if let Some(ix) = state.built.iter().position(|(k, _)| k == key) {
                let hit = state.built.remove(ix);
                let built = hit.1.clone();
                state.built.push(hit);
                return Ok(Cached {
                    built,
                    build_time: None,
                });
            }
            if let Some((_, why)) = state.refused.iter().find(|(k, _)| k == key) {
                return Err(why.clone());
            }
            if !state.building.contains(key) {
                break;
            }
            state = self.done.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.building.push(key.clone());
        drop(state);
        // Whatever happens to the build (a panic included), waiters are released.
        let _building = Building { cache: self, key };
        let started = Instant::now();
        // A panic in tract while building for this shape refuses the shape like an error.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)).unwrap_or_else(|_| {
                Err("tract panicked while building a plan for inputs of this shape".into())
            });
        let build_time = started.elapsed();
        // The lock is taken and released here, before `_building` marks the shape done.
        let mut state = self.lock();
        let answer = match result {
            Ok(built) => {
                let built = Arc::new(built);
                state.built.push((key.clone(), built.clone()));
                self.evict(&mut state);
                Ok(Cached {
                    built,
                    build_time: Some(build_time),
                })
            }
            Err(why) => {
                if state.refused.len() >= REFUSED_KEPT {
                    state.refused.pop_front();
                }
                state.refused.push_back((key.clone(), why.clone()));
                Err(why)
            }
        };
        drop(state);
        answer
    }

    /// Drops the least recently used plans past the count or the memory cap; the newest
    /// stays even alone over the memory cap (the request that built it needs it).
    fn evict(&self, state: &mut State) {
        let held = |s: &State| s.built.iter().map(|(_, b)| b.bytes).sum::<u64>();
        while state.built.len() > 1
            && (state.built.len() > self.limits.max_plans || held(state) > self.limits.max_bytes)
        {
            let (key, built) = state.built.remove(0);
            tracing::info!(
                shape = ?key,
                plan_mb = built.bytes as f64 / (1 << 20) as f64,
                max_plans = self.limits.max_plans,
                "plan evicted (least recently used)"
            );
        }
    }

    /// Whether a plan for `key` is kept.
    #[cfg(test)]
    pub(crate) fn contains(&self, key: &ShapeKey) -> bool {
        self.lock().built.iter().any(|(k, _)| k == key)
    }

    /// How many plans are kept, and the memory they hold.
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, u64) {
        let state = self.lock();
        (
            state.built.len(),
            state.built.iter().map(|(_, b)| b.bytes).sum(),
        )
    }
}

/// Marks a shape as no longer building when dropped, and wakes the requests waiting for it.
struct Building<'a> {
    cache: &'a PlanCache,
    key: &'a ShapeKey,
}

impl Drop for Building<'_> {
    fn drop(&mut self) {
        let mut state = self.cache.lock();
        state.building.retain(|k| k != self.key);
        drop(state);
        self.cache.done.notify_all();
    }
}
