//! The targets of the `--wrap=hypot,--wrap=hypotf` link arguments (see build.rs): jumps to
//! the GLIBC_2.2.5 versions, so the binary needs nothing newer than provided.al2023's
//! glibc 2.34. In one asm block so the `.symver` renames apply to these references.

#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
std::arch::global_asm!(
    ".symver hypot_glibc_2_2_5, hypot@GLIBC_2.2.5",
    ".symver hypotf_glibc_2_2_5, hypotf@GLIBC_2.2.5",
    ".globl __wrap_hypot",
    ".type __wrap_hypot, @function",
    "__wrap_hypot:",
    "    jmp hypot_glibc_2_2_5@PLT",
    ".globl __wrap_hypotf",
    ".type __wrap_hypotf, @function",
    "__wrap_hypotf:",
    "    jmp hypotf_glibc_2_2_5@PLT",
);
