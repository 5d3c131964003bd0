//! Locks: a temporary is in use while its `flock` is held, in any PID namespace; a directory
//! lock keeps one writer at a time on a set of files. And the sweep of temporaries that killed
//! runs left: names of our pattern only, owned by us, never following a symlink.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{LEGACY_TAG, TAG};

/// Open for reading without following a symlink or blocking on a FIFO.
pub(super) fn open_nofollow(path: &Path) -> io::Result<File> {
    use rustix::fs::OFlags;
    OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
        .open(path)
}

/// An exclusive lock that says "this temporary is in use" for as long as the handle lives.
/// Lock a temporary just created at `p`. Should another process hold the lock already (a sweep
/// probing it in the moment between creation and lock), remove it and report the name taken,
/// so that [`create_exclusive`] tries a fresh one.
pub(super) fn locked_or_gone(p: &Path, f: File) -> io::Result<File> {
    match lock(&f) {
        Ok(()) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            drop(f);
            let _ = fs::remove_dir(p).or_else(|_| fs::remove_file(p));
            Err(io::ErrorKind::AlreadyExists.into())
        }
        Err(e) => Err(e),
    }
}

/// Hold an exclusive lock on an existing directory for as long as the handle lives, or say who
/// holds it: one writer at a time for a set of files (cert-renew's certificates and keys).
pub fn lock_dir(dir: &Path, what: &str) -> Result<File> {
    let handle = open_nofollow(dir).with_context(|| format!("opening {}", dir.display()))?;
    match lock(&handle) {
        Ok(()) => Ok(handle),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            bail!(
                "{} is locked by another {what} running now; wait for it to finish",
                dir.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("locking {}", dir.display())),
    }
}

fn lock(f: &File) -> io::Result<()> {
    rustix::fs::flock(f, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
    Ok(())
}

/// The PID in a temporary name of ours, and whether the name is of the locking pattern;
/// `None` for any other name.
fn pid_of_ours(name: &[u8]) -> Option<(u32, bool)> {
    if name.first() != Some(&b'.') {
        return None;
    }
    let text = std::str::from_utf8(name).ok()?;
    if let Some((_, tail)) = text.rsplit_once(TAG) {
        let (pid, random) = tail.split_once('-')?;
        let random_ok = random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit());
        if random_ok && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
            return pid.parse().ok().map(|p| (p, true));
        }
    }
    let (_, pid) = text.rsplit_once(LEGACY_TAG)?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().map(|p| (p, false))
}

/// Remove temporaries of ours in `dir` whose process is gone: names of our pattern only, owned
/// by the user we run as, never following a symlink. A temporary is in use while its lock is
/// held (whatever PID namespace its process is in); names of the older pattern, which had no
/// lock, go by their PID in /proc. Returns what was removed.
pub fn clean_stale(dir: &Path) -> Vec<PathBuf> {
    let me = rustix::process::geteuid().as_raw();
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return removed;
    };
    for e in entries.flatten() {
        let name: OsString = e.file_name();
        let Some((pid, locked)) = pid_of_ours(name.as_bytes()) else {
            continue;
        };
        let path = e.path();
        let Ok(md) = fs::symlink_metadata(&path) else {
            continue;
        };
        if md.uid() != me || pid == std::process::id() {
            continue;
        }
        let stale = if locked {
            is_abandoned(&path, &md, pid)
        } else {
            pid_is_gone(pid)
        };
        if !stale {
            continue;
        }
        let gone = if md.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// No process of this PID in our /proc (false when there is no /proc to ask).
fn pid_is_gone(pid: u32) -> bool {
    Path::new("/proc/self").exists() && !Path::new("/proc").join(pid.to_string()).exists()
}

/// A temporary whose lock nobody holds. A brand-new one may be unlocked only because its
/// creator has not taken the lock yet: it counts as abandoned only when the PID in its name
/// is gone too (a run killed a moment ago; its rerun cleans up at once).
fn is_abandoned(path: &Path, md: &fs::Metadata, pid: u32) -> bool {
    const GRACE: std::time::Duration = std::time::Duration::from_secs(5);
    let young = md
        .modified()
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age < GRACE);
    if young && !pid_is_gone(pid) {
        return false;
    }
    if md.file_type().is_symlink() {
        // Never ours to follow; a link under our name is debris.
        return true;
    }
    open_nofollow(path).and_then(|f| lock(&f)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::temp::temp_name;

    #[test]
    fn our_names_and_only_ours() {
        assert_eq!(
            pid_of_ours(b".t.db.etcdops-123-0123456789abcdef"),
            Some((123, true))
        );
        assert_eq!(pid_of_ours(b".etcd.etcdops-restore-77"), Some((77, false)));
        for other in [
            &b"t.db.etcdops-123-0123456789abcdef"[..],
            b".t.db.etcdops-123-0123",
            b".t.db.etcdops-x-0123456789abcdef",
            b".t.db.part",
            b".etcd.etcdops-restore-",
            b".etcd.etcdops-restore-1a",
            b".bashrc",
        ] {
            assert_eq!(
                pid_of_ours(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        let name = temp_name(Path::new("/x/t.db"));
        let file = name.file_name().unwrap().as_bytes();
        assert_eq!(pid_of_ours(file), Some((std::process::id(), true)));
        assert_ne!(
            temp_name(Path::new("/x/t.db")),
            name,
            "names are not reused"
        );
    }

    fn backdate(p: &Path) {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        File::open(p).unwrap().set_modified(old).unwrap();
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        let dead = at(".t.db.etcdops-7-0123456789abcdef");
        let held = at(".u.db.etcdops-8-0123456789abcdef");
        // Young: kept while its PID lives (PID 1 always does), removed once it is gone.
        let young = at(".v.db.etcdops-1-0123456789abcdef");
        let young_dead = at(".y.db.etcdops-0-0123456789abcdef");
        let dead_dir = at(".w.etcdops-10-0123456789abcdef");
        // PID 0 never names a process in /proc.
        let legacy = at(".etcd.etcdops-restore-0");
        let other = at(".t.db.something-0");
        for f in [&dead, &held, &young, &young_dead, &other] {
            fs::write(f, b"x").unwrap();
        }
        fs::create_dir(&dead_dir).unwrap();
        fs::create_dir(&legacy).unwrap();
        for p in [&dead, &held, &dead_dir, &other] {
            backdate(p);
        }
        // Another open file description holding the lock: the temporary is in use.
        let holder = File::open(&held).unwrap();
        lock(&holder).unwrap();
        let mut removed = clean_stale(dir.path());
        removed.sort();
        assert_eq!(
            removed,
            [
                legacy.clone(),
                dead.clone(),
                dead_dir.clone(),
                young_dead.clone()
            ]
        );
        assert!(held.exists() && young.exists() && other.exists());
        drop(holder);
        assert_eq!(clean_stale(dir.path()), [held]);
    }
}
