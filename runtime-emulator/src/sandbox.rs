//! The execution environment of an image function: between fork and exec the child enters
//! a private mount namespace and makes the unpacked root its `/` as Lambda presents it —
//! read-only, with a writable size-limited `/tmp`, `/proc`, and `/dev/{null,zero,urandom}` —
//! then drops to an unprivileged user. The mounts live in the child's namespace only and
//! vanish with it: nothing to clean up after a crash. Needs root (`CAP_SYS_ADMIN`).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

/// Lambda runs functions as a user with no rights on the image's files beyond reading them
/// (sbx_user1051, uid and gid 993).
const LAMBDA_UID: libc::uid_t = 993;
const LAMBDA_GID: libc::gid_t = 993;
const DEVICES: [&str; 3] = ["null", "zero", "urandom"];

/// Everything the child needs, made before the fork: the hook only makes system calls.
pub(crate) struct Sandbox {
    root: CString,
    proc_dir: CString,
    tmp_dir: CString,
    tmp_options: CString,
    dev_dir: CString,
    /// (host device, its stand-in file under the root).
    devices: Vec<(CString, CString)>,
    workdir: CString,
    cpus: Option<libc::cpu_set_t>,
    proc_fs: CString,
    tmpfs: CString,
}

fn c(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other(format!("{} contains a NUL byte", path.display())))
}

fn lit(s: &str) -> CString {
    CString::new(s).expect("a literal without NUL")
}

/// `"0"`, `"0,2"`, `"0-3"` (taskset's list form) as a CPU set.
fn cpu_set(list: &str) -> std::io::Result<libc::cpu_set_t> {
    let bad = || std::io::Error::other(format!("CPU list {list:?}: expected e.g. 0 or 0-1,3"));
    // SAFETY: cpu_set_t is plain bits; all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for part in list.split(',') {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let n: usize = part.trim().parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        if from > to || to >= libc::CPU_SETSIZE as usize {
            return Err(bad());
        }
        for cpu in from..=to {
            // SAFETY: `cpu` is below CPU_SETSIZE, checked above.
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
    }
    Ok(set)
}

impl Sandbox {
    /// `root` is an unpacked image with `proc/`, `tmp/` and `dev/` directories; `tmp_mb` the
    /// size of `/tmp` (Lambda's ephemeral storage, 512 MB by default).
    pub(crate) fn new(
        root: &Path,
        workdir: &str,
        tmp_mb: u32,
        cpus: Option<&str>,
    ) -> std::io::Result<Sandbox> {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "running an image needs root (a mount namespace and chroot); run as root, or run the binary itself without --image",
            ));
        }
        let root = root.canonicalize()?;
        for dir in ["proc", "tmp", "dev"] {
            if !root.join(dir).is_dir() {
                return Err(std::io::Error::other(format!(
                    "{} has no /{dir} directory to mount on; the image must provide it",
                    root.display()
                )));
            }
        }
        let devices = DEVICES
            .iter()
            .map(|d| Ok((lit(&format!("/dev/{d}")), c(&root.join("dev").join(d))?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Sandbox {
            proc_dir: c(&root.join("proc"))?,
            tmp_dir: c(&root.join("tmp"))?,
            tmp_options: lit(&format!("size={tmp_mb}m,mode=1777")),
            dev_dir: c(&root.join("dev"))?,
            devices,
            workdir: lit(if workdir.is_empty() { "/" } else { workdir }),
            cpus: cpus.map(cpu_set).transpose()?,
            root: c(&root)?,
            proc_fs: lit("proc"),
            tmpfs: lit("tmpfs"),
        })
    }

    /// Called in the child between fork and exec: system calls only, no allocation.
    pub(crate) fn enter(&self) -> std::io::Result<()> {
        fn check(ret: libc::c_int) -> std::io::Result<()> {
            if ret < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
        let null = std::ptr::null();
        // SAFETY: every pointer is a NUL-terminated string owned by `self` (alive until
        // exec) or null where the call allows it; these calls are async-signal-safe.
        unsafe {
            if let Some(set) = &self.cpus {
                check(libc::sched_setaffinity(
                    0,
                    std::mem::size_of::<libc::cpu_set_t>(),
                    set,
                ))?;
            }
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Nothing mounted here propagates back to the host.
            check(libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                null.cast(),
            ))?;
            check(libc::mount(
                self.root.as_ptr(),
                self.root.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                null.cast(),
            ))?;
            check(libc::mount(
                null,
                self.root.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                null.cast(),
            ))?;
            // Mounted on the read-only root, not under it: after the bind, or it would hide them.
            check(libc::mount(
                self.proc_fs.as_ptr(),
                self.proc_dir.as_ptr(),
                self.proc_fs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                null.cast(),
            ))?;
            check(libc::mount(
                self.tmpfs.as_ptr(),
                self.tmp_dir.as_ptr(),
                self.tmpfs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                self.tmp_options.as_ptr().cast(),
            ))?;
            check(libc::mount(
                self.tmpfs.as_ptr(),
                self.dev_dir.as_ptr(),
                self.tmpfs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NOEXEC,
                c"size=64k,mode=755".as_ptr().cast(),
            ))?;
            for (host, inside) in &self.devices {
                let fd = libc::open(
                    inside.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o666,
                );
                check(fd)?;
                libc::close(fd);
                check(libc::mount(
                    host.as_ptr(),
                    inside.as_ptr(),
                    null,
                    libc::MS_BIND,
                    null.cast(),
                ))?;
            }
            check(libc::chroot(self.root.as_ptr()))?;
            check(libc::chdir(self.workdir.as_ptr()))?;
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setgid(LAMBDA_GID))?;
            check(libc::setuid(LAMBDA_UID))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_as_taskset_reads_them() {
        let set = cpu_set("0-1,3").unwrap();
        let has = |n| unsafe { libc::CPU_ISSET(n, &set) };
        assert!(has(0) && has(1) && !has(2) && has(3));
        assert!(cpu_set("2-1").is_err());
        assert!(cpu_set("x").is_err());
        assert!(cpu_set("99999").is_err());
    }
}
