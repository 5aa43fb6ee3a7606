//! How many threads tract's matrix products use.
//!
//! Lambda gives a function CPU in proportion to its memory: one vCPU's worth at 1,769 MB, up
//! to six at 10,240 MB. Below 1,769 MB a second thread only contends for the same share, so
//! the default follows the memory setting rather than the host's core count.

use tract_linalg::multithread::{set_default_executor, Executor};

/// Memory per vCPU on Lambda.
const MB_PER_VCPU: u64 = 1769;
const MAX_LAMBDA_VCPUS: usize = 6;

/// The thread count for a function with `memory_mb` (None: not on Lambda), never more than
/// the cores this process may use.
pub fn default_threads(memory_mb: Option<u64>, available: usize) -> usize {
    let vcpus = match memory_mb {
        Some(mb) => (mb.div_ceil(MB_PER_VCPU) as usize).clamp(1, MAX_LAMBDA_VCPUS),
        None => available,
    };
    vcpus.min(available).max(1)
}

/// Makes every later tract run use `threads` threads (one: no thread pool at all).
pub fn set_intra_op_threads(threads: usize) {
    if threads <= 1 {
        set_default_executor(Executor::SingleThread);
    } else {
        set_default_executor(Executor::multithread_with_name(threads, "tract"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_per_lambda_vcpu() {
        assert_eq!(default_threads(Some(128), 2), 1);
        assert_eq!(default_threads(Some(1769), 2), 1);
        assert_eq!(default_threads(Some(1770), 2), 2);
        assert_eq!(default_threads(Some(3008), 2), 2);
        assert_eq!(default_threads(Some(10240), 8), 6);
        assert_eq!(default_threads(Some(10240), 2), 2);
        assert_eq!(default_threads(None, 4), 4);
        assert_eq!(default_threads(None, 0), 1);
    }
}
