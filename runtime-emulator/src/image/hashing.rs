//! A reader or writer that digests and counts what passes through it, so a layer's digest
//! and diff_id come from the same single pass that writes or unpacks it.

use std::io::{Read, Write};

use sha2::{Digest as _, Sha256};

/// Reads or writes through to `inner`, hashing and counting the bytes that pass.
pub struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    count: u64,
}

impl<T> Hashing<T> {
    pub fn new(inner: T) -> Hashing<T> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The inner reader or writer, the bytes' `sha256:<hex>` digest and their number.
    pub fn finish(self) -> (T, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.count)
    }

    fn passed(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.count += bytes.len() as u64;
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.passed(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.passed(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::spec::digest_of;

    #[test]
    fn both_directions_digest_and_count_what_passed() {
        let mut r = Hashing::new(&b"hello"[..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        let (_, read_digest, n) = r.finish();
        assert_eq!((read_digest.as_str(), n), (digest_of(b"hello").as_str(), 5));

        let mut w = Hashing::new(Vec::new());
        w.write_all(b"hello").unwrap();
        let (bytes, written_digest, n) = w.finish();
        assert_eq!((bytes.as_slice(), n), (&b"hello"[..], 5));
        assert_eq!(written_digest, read_digest);
    }
}
