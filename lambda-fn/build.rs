//! provided.al2023 has glibc 2.34. Linking on a newer glibc binds libm's `hypot`/`hypotf`
//! to their GLIBC_2.35 versions, and the binary then fails to start on Lambda. Every
//! reference is redirected (`--wrap`) to `src/glibc_compat.rs`, which calls the baseline
//! versions that every x86_64 glibc has.

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch == "x86_64" && os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,--wrap=hypot,--wrap=hypotf");
    }
}
