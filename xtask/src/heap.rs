//! xtask's heap, counted per thread: `pack-models` measures the peak memory a model's
//! requests need (`inference_core::prepare::memory_cost`) on the allocator itself, which
//! sees every byte tract, the registry and the JSON answer take. Only the measuring
//! thread's allocations count, so other threads (tests running beside it) cannot move the
//! figure that goes into the lock.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use inference_core::prepare::PeakMeter;

thread_local! {
    // Const-initialised and without destructors: touching them never allocates, so the
    // allocator may use them.
    static CURRENT: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

/// The system allocator, counting each thread's live bytes and their peak.
struct Counting;

fn grew(by: usize) {
    let _ = CURRENT.try_with(|current| {
        let now = current.get().wrapping_add(by as i64);
        current.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrank(by: usize) {
    // Freed on another thread than it was allocated on: this thread's count dips, which
    // only lowers a peak already taken.
    let _ = CURRENT.try_with(|current| current.set(current.get().wrapping_sub(by as i64)));
}

// SAFETY: every call is forwarded to `System` unchanged; only thread-local counters change.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak of this thread's heap since the last reset.
pub struct HeapPeak;

impl PeakMeter for HeapPeak {
    fn reset(&self) -> u64 {
        let now = CURRENT.with(Cell::get);
        PEAK.with(|peak| peak.set(now));
        now.max(0) as u64
    }

    fn peak(&self) -> u64 {
        PEAK.with(Cell::get).max(0) as u64
    }
}
