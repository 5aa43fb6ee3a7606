//! glibc malloc settings for a process that decodes a model once and then runs it per event.
//!
//! Lambda runs on Firecracker, where the first touch of a page is expensive (here ~0.5 ms per
//! MB). By default glibc serves every block over 128 KB with a fresh `mmap` and returns it on
//! `free`, so the init's successive copies of the weights (protobuf, dequantized, tract
//! tensors, packed matrices) and every invocation's intermediate tensors fault in new pages
//! each time. Keeping blocks up to 32 MB (glibc's ceiling) on the heap and never trimming it
//! lets freed pages be reused: MiniLM's decode went from ~52 to ~43 ms (BENCHMARKS.md).
//! Peak RSS is what the peak needs either way; only the return of memory after it is given up,
//! and a function's memory is its own.

/// glibc's upper limit for `M_MMAP_THRESHOLD` on 64-bit (`HEAP_MAX_SIZE / 2`).
const MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// Grow the heap in large steps: fewer `brk` calls while the weights are copied.
const TOP_PAD: libc::c_int = 64 << 20;

pub fn configure() {
    // SAFETY: mallopt only changes allocator parameters; called before any other thread
    // exists. A refused setting (another libc) leaves the default, which is still correct.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
    }
}
