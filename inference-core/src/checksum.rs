//! SHA-256 verification of model bytes against the hash recorded at pack time.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes whose SHA-256 is not the recorded one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sha256 {actual}, expected {expected}")]
pub struct HashMismatch {
    pub expected: String,
    pub actual: String,
}

/// `Ok` when `bytes` hash to `expected` (hex, case-insensitive).
pub fn verify_sha256(bytes: &[u8], expected: &str) -> Result<(), HashMismatch> {
    let actual = sha256_hex(bytes);
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(HashMismatch {
            expected: expected.to_string(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(verify_sha256(
            b"abc",
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        )
        .is_ok());
        assert_eq!(verify_sha256(b"abd", "00").unwrap_err().actual.len(), 64);
    }
}
