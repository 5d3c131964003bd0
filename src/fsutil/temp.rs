//! Temporaries beside their destination: created exclusively under a name no one else can
//! predict, on the signal handler's list from the moment they exist, removed on drop unless
//! committed (fsync, rename, fsync of the directory).

use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::lock::{clean_stale, locked_or_gone, open_nofollow};
use super::signals::{live, untrack, INTERRUPTED};
use super::{parent_dir, sync_parent, TAG};

/// A name beside `dest` that only this process uses: `.NAME.etcdops-PID-RANDOM`.
pub(super) fn temp_name(dest: &Path) -> PathBuf {
    let base = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "etcdops".into());
    // RandomState is seeded from the OS's randomness once per thread and varied per call.
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    parent_dir(dest).join(format!(
        ".{base}{TAG}{}-{:016x}",
        std::process::id(),
        h.finish()
    ))
}

/// Run `create` on fresh temporary names until one does not exist yet, after removing what
/// killed runs left beside `dest` ([`clean_stale`]): every writer sweeps where it writes.
/// The new temporary is on the signal handler's list the moment it exists: the list stays
/// locked from its creation to its entry, and none is created once the handler has begun.
fn create_exclusive<T>(
    dest: &Path,
    create: impl Fn(&Path) -> io::Result<T>,
) -> Result<(PathBuf, T)> {
    clean_stale(&parent_dir(dest));
    let mut last = None;
    for _ in 0..16 {
        let path = temp_name(dest);
        let mut live = live();
        if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            bail!("interrupted: no new temporary beside {}", dest.display());
        }
        match create(&path) {
            Ok(t) => {
                live.push(path.clone());
                return Ok((path, t));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some((path, e)),
            Err(e) => {
                return Err(e).with_context(|| format!("creating a temporary {}", path.display()))
            }
        }
    }
    let (path, e) =
        last.unwrap_or_else(|| (dest.to_path_buf(), io::ErrorKind::AlreadyExists.into()));
    Err(e).with_context(|| format!("creating a temporary {}", path.display()))
}

/// A temporary file beside its destination, removed on drop unless committed.
pub struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    /// Create a new, empty temporary beside `dest` with `mode`.
    pub fn beside(dest: &Path, mode: u32) -> Result<TempFile> {
        let (path, file) = create_exclusive(dest, |p| {
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(p)?;
            locked_or_gone(p, f)
        })?;
        Ok(TempFile {
            path,
            file: Some(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file (`None` once committed).
    pub fn file(&mut self) -> Option<&mut File> {
        self.file.as_mut()
    }

    /// Give the temporary the owner and permission bits of `like` (an existing file it is
    /// about to replace).
    pub fn copy_owner_and_mode(&self, like: &fs::Metadata) -> Result<()> {
        if let Some(f) = &self.file {
            set_owner_and_mode(f, like)
                .with_context(|| format!("setting owner and mode of {}", self.path.display()))?;
        }
        Ok(())
    }

    /// Write all of `bytes` and fsync (errors name `dest`).
    pub fn fill(&mut self, dest: &Path, bytes: &[u8]) -> Result<()> {
        if let Some(f) = self.file() {
            f.write_all(bytes)
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", dest.display()))?;
        }
        Ok(())
    }

    /// fsync, rename over `dest`, fsync the directory.
    pub fn commit(self, dest: &Path) -> Result<()> {
        self.commit_as(dest, false)
    }

    /// [`TempFile::commit`] that never replaces: fails when `dest` exists (a generated name
    /// taken by a concurrent save), leaving it untouched.
    pub fn commit_new(self, dest: &Path) -> Result<()> {
        self.commit_as(dest, true)
    }

    fn commit_as(mut self, dest: &Path, exclusive: bool) -> Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all()
                .with_context(|| format!("syncing {}", self.path.display()))?;
        }
        let renamed = if exclusive {
            rename_noreplace(&self.path, dest)
        } else {
            fs::rename(&self.path, dest)
        };
        if renamed.is_ok() {
            untrack(&self.path);
        }
        match renamed {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                bail!("{} already exists (nothing was replaced)", dest.display())
            }
            r => r.with_context(|| {
                format!("renaming {} to {}", self.path.display(), dest.display())
            })?,
        }
        self.path = PathBuf::new();
        sync_parent(dest)
    }
}

/// rename(2) that fails with `AlreadyExists` instead of replacing `to`: renameat2's
/// RENAME_NOREPLACE, or a hard link and unlink where the filesystem lacks it.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            fs::hard_link(from, to)?;
            // `to` is in place; a temporary name left behind is swept by the next writer.
            let _ = fs::remove_file(from);
            Ok(())
        }
        r => r.map_err(io::Error::from),
    }
}

/// [`rename_noreplace`] for a directory, where a hard link cannot stand in: without
/// RENAME_NOREPLACE (NFS), claim `to` with mkdir (EEXIST if taken), then rename onto that empty
/// directory, which rename(2) replaces atomically (ENOTEMPTY should another writer fill it).
fn rename_dir_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            fs::DirBuilder::new().mode(0o700).create(to)?;
            fs::rename(from, to)
        }
        r => r.map_err(io::Error::from),
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("the temporary file is already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
            untrack(&self.path);
        }
    }
}

/// Write `bytes` to `dest` atomically: a new temporary, fsynced and renamed over it. When
/// `like` is given (the file being replaced, or the file a copy is made of) the new file gets
/// its owner and mode; otherwise mode 0600.
pub fn write_atomic(dest: &Path, bytes: &[u8], like: Option<&fs::Metadata>) -> Result<()> {
    prepare(dest, bytes, like)?.commit(dest)
}

/// [`write_atomic`] for a file others read (a systemd unit, a Prometheus textfile): mode 0644,
/// set before the rename. Nothing secret goes through it.
pub fn write_atomic_public(dest: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut temp = prepare(dest, bytes, None)?;
    if let Some(f) = temp.file() {
        f.set_permissions(fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting the mode of {}", dest.display()))?;
    }
    temp.commit(dest)
}

/// The temporary [`write_atomic`] commits: written and synced beside `dest`, not yet renamed
/// (a caller replacing several files prepares them all before the first rename).
pub fn prepare(dest: &Path, bytes: &[u8], like: Option<&fs::Metadata>) -> Result<TempFile> {
    let mut tmp = TempFile::beside(dest, 0o600)?;
    if let Some(like) = like {
        tmp.copy_owner_and_mode(like)?;
    }
    tmp.fill(dest, bytes)?;
    Ok(tmp)
}

/// [`prepare`] for key material: the owner of `like`, its mode without group write or any bit
/// for others (a `root:etcd 0640` key stays readable by etcd), set before a byte is written.
pub fn prepare_secret(dest: &Path, bytes: &[u8], like: &fs::Metadata) -> Result<TempFile> {
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = TempFile::beside(dest, 0o600)?;
    tmp.copy_owner_and_mode(like)?;
    if let Some(f) = tmp.file() {
        f.set_permissions(fs::Permissions::from_mode(like.mode() & 0o740))
            .with_context(|| format!("setting the mode of {}", dest.display()))?;
    }
    tmp.fill(dest, bytes)?;
    Ok(tmp)
}

pub(super) fn set_owner_and_mode(f: &File, like: &fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = f.metadata()?;
    if md.uid() != like.uid() || md.gid() != like.gid() {
        std::os::unix::fs::fchown(f, Some(like.uid()), Some(like.gid()))?;
    }
    f.set_permissions(fs::Permissions::from_mode(like.mode() & 0o7777))
}

/// A temporary directory beside its destination (mode 0700), removed with everything in it on
/// drop unless committed.
pub struct TempDir {
    path: PathBuf,
    /// Holds the directory's lock while it lives.
    _lock: File,
}

impl TempDir {
    pub fn beside(dest: &Path) -> Result<TempDir> {
        let (path, lock_handle) = create_exclusive(dest, |p| {
            fs::DirBuilder::new().mode(0o700).create(p)?;
            locked_or_gone(p, open_nofollow(p)?)
        })?;
        Ok(TempDir {
            path,
            _lock: lock_handle,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Create `rel` inside this directory, each level 0700. The directory itself is never
    /// created again: should the signal handler have removed it, this fails (ENOENT) instead of
    /// building a tree no one will remove.
    pub fn create_within(&self, rel: &Path) -> Result<PathBuf> {
        let mut p = self.path.clone();
        for c in rel.components() {
            p.push(c);
            match fs::DirBuilder::new().mode(0o700).create(&p) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(e).with_context(|| format!("creating {}", p.display()))
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// Rename to `dest`, which must not exist (`renameat2` without replace), and fsync the
    /// parent (the caller has fsynced the contents).
    pub fn commit_new(mut self, dest: &Path) -> Result<()> {
        match rename_dir_noreplace(&self.path, dest) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                bail!("{} already exists (nothing was replaced)", dest.display())
            }
            r => r.with_context(|| {
                format!("renaming {} to {}", self.path.display(), dest.display())
            })?,
        }
        untrack(&self.path);
        self.path = PathBuf::new();
        sync_parent(dest)
    }

    /// Rename onto `dest` and fsync the parent (the caller has fsynced the contents). An
    /// empty directory at `dest` is replaced (rename(2) does that) but passes its owner and
    /// mode on to the new one, as a restore into it would leave them.
    pub fn commit(mut self, dest: &Path) -> Result<()> {
        let replaced = fs::symlink_metadata(dest).ok().filter(|m| m.is_dir());
        fs::rename(&self.path, dest)
            .with_context(|| format!("renaming {} to {}", self.path.display(), dest.display()))?;
        untrack(&self.path);
        self.path = PathBuf::new();
        if let Some(like) = replaced {
            open_nofollow(dest)
                .and_then(|d| set_owner_and_mode(&d, &like))
                .with_context(|| format!("keeping the owner and mode of {}", dest.display()))?;
        }
        sync_parent(dest)
    }
}

/// Take the place of a committed directory back: move `dir` aside and remove it, and put back
/// the empty directory it replaced (`replaced`), if any.
pub fn undo_commit(dir: &Path, replaced: Option<&fs::Metadata>) {
    let aside = temp_name(dir);
    if fs::rename(dir, &aside).is_ok() {
        let _ = fs::remove_dir_all(&aside);
    }
    if let Some(like) = replaced {
        if fs::DirBuilder::new().mode(0o700).create(dir).is_ok() {
            let _ = open_nofollow(dir).and_then(|d| set_owner_and_mode(&d, like));
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.path);
            untrack(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_never_follow_or_adopt() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("t.db");
        let mut t = TempFile::beside(&dest, 0o600).unwrap();
        let path = t.path().to_path_buf();
        t.file().unwrap().write_all(b"hello").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        t.commit(&dest).unwrap();
        assert!(!path.exists());
        assert_eq!(fs::read(&dest).unwrap(), b"hello");

        // Dropped without commit: gone.
        let t = TempFile::beside(&dest, 0o600).unwrap();
        let path = t.path().to_path_buf();
        drop(t);
        assert!(!path.exists());
        let d = TempDir::beside(&dest).unwrap();
        let path = d.path().to_path_buf();
        fs::write(path.join("x"), b"x").unwrap();
        drop(d);
        assert!(!path.exists());
    }
}
