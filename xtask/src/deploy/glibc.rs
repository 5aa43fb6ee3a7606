//! Amazon Linux 2023 (`provided.al2023`) ships glibc 2.34: a `bootstrap` linked against
//! newer symbol versions fails at exec time with "version `GLIBC_2.xx' not found". This
//! reads the ELF's version-needed table and names every symbol that needs more than 2.34.

use anyhow::{bail, Context, Result};

/// The newest glibc the runtime provides.
pub const MAX_GLIBC: (u32, u32) = (2, 34);

const SHT_DYNSYM: u32 = 11;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
const SHT_GNU_VERSYM: u32 = 0x6fff_ffff;

struct Section {
    kind: u32,
    offset: usize,
    size: usize,
    link: usize,
    info: usize,
}

/// Little-endian reads that fail instead of panicking on a truncated file.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn slice(&self, at: usize, len: usize) -> Result<&[u8]> {
        at.checked_add(len)
            .and_then(|end| self.0.get(at..end))
            .context("the ELF file is truncated or malformed")
    }
    fn u16(&self, at: usize) -> Result<u16> {
        Ok(u16::from_le_bytes(self.slice(at, 2)?.try_into()?))
    }
    fn u32(&self, at: usize) -> Result<u32> {
        Ok(u32::from_le_bytes(self.slice(at, 4)?.try_into()?))
    }
    fn u64(&self, at: usize) -> Result<u64> {
        Ok(u64::from_le_bytes(self.slice(at, 8)?.try_into()?))
    }
    fn cstr(&self, at: usize) -> Result<String> {
        let rest = self.0.get(at..).context("string offset outside the file")?;
        let end = rest
            .iter()
            .position(|b| *b == 0)
            .context("unterminated string")?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

/// `GLIBC_2.35` → (2, 35).
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let v = name.strip_prefix("GLIBC_")?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `symbol@GLIBC_x.y` for every dynamic symbol needing a glibc newer than `max`, and the
/// newer versions required without a symbol, sorted. Empty: the binary runs on `max`.
pub fn too_new(elf: &[u8], max: (u32, u32)) -> Result<Vec<String>> {
    let b = Bytes(elf);
    if b.slice(0, 4)? != b"\x7fELF" {
        bail!("not an ELF file");
    }
    if b.slice(4, 2)? != [2, 1] {
        bail!("not a 64-bit little-endian ELF file (Lambda runs x86_64 and arm64 ones)");
    }
    let shoff = usize::try_from(b.u64(0x28)?)?;
    let shentsize = usize::from(b.u16(0x3a)?);
    let shnum = usize::from(b.u16(0x3c)?);
    let mut sections = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let at = shoff + i * shentsize;
        sections.push(Section {
            kind: b.u32(at + 4)?,
            offset: usize::try_from(b.u64(at + 24)?)?,
            size: usize::try_from(b.u64(at + 32)?)?,
            link: b.u32(at + 40)? as usize,
            info: b.u32(at + 44)? as usize,
        });
    }
    let strtab = |s: &Section| -> Result<usize> {
        sections
            .get(s.link)
            .map(|t| t.offset)
            .context("a section links to a missing string table")
    };

    // Version index → name, for the versions this binary needs from glibc.
    let mut needed: Vec<(u16, String)> = Vec::new();
    for s in sections.iter().filter(|s| s.kind == SHT_GNU_VERNEED) {
        let strings = strtab(s)?;
        let mut at = s.offset;
        for _ in 0..s.info {
            let count = b.u16(at + 2)?;
            let mut aux = at + b.u32(at + 8)? as usize;
            for _ in 0..count {
                let index = b.u16(aux + 6)? & 0x7fff;
                let name = b.cstr(strings + b.u32(aux + 8)? as usize)?;
                needed.push((index, name));
                aux += b.u32(aux + 12)? as usize;
            }
            let next = b.u32(at + 12)? as usize;
            if next == 0 {
                break;
            }
            at += next;
        }
    }
    let is_too_new = |name: &str| glibc_version(name).is_some_and(|v| v > max);

    let mut offending = Vec::new();
    let dynsym = sections.iter().find(|s| s.kind == SHT_DYNSYM);
    let versym = sections.iter().find(|s| s.kind == SHT_GNU_VERSYM);
    let mut with_symbols = std::collections::BTreeSet::new();
    if let (Some(dynsym), Some(versym)) = (dynsym, versym) {
        let strings = strtab(dynsym)?;
        for i in 0..dynsym.size / 24 {
            let index = b.u16(versym.offset + i * 2)? & 0x7fff;
            let Some((_, version)) = needed.iter().find(|(ix, _)| *ix == index) else {
                continue;
            };
            if is_too_new(version) {
                let name = b.cstr(strings + b.u32(dynsym.offset + i * 24)? as usize)?;
                offending.push(format!("{name}@{version}"));
                with_symbols.insert(version.clone());
            }
        }
    }
    for (_, version) in &needed {
        if is_too_new(version) && !with_symbols.contains(version) {
            offending.push(format!("(no symbol)@{version}"));
        }
    }
    offending.sort();
    offending.dedup();
    Ok(offending)
}

/// Fails naming the offending symbols when `elf` needs a glibc newer than Lambda's.
pub fn check(elf: &[u8], what: &str) -> Result<()> {
    let offending = too_new(elf, MAX_GLIBC)?;
    if !offending.is_empty() {
        bail!(
            "{what} needs a newer glibc than provided.al2023 has ({}.{}); it would fail to start on Lambda. Symbols:\n  {}\nBuild on an older distribution, or with cargo-zigbuild targeting x86_64-unknown-linux-gnu.2.34.",
            MAX_GLIBC.0,
            MAX_GLIBC.1,
            offending.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_garbage() {
        assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version("GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
        assert!(too_new(b"not an elf", MAX_GLIBC).is_err());
        assert!(too_new(b"\x7fELF\x02\x01", MAX_GLIBC).is_err(), "truncated");
    }

    #[test]
    fn this_test_binary_is_read() {
        // Whatever glibc this machine has, the parser must get through a real binary.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        too_new(&me, (2, 0)).unwrap();
    }
}
