//! Durable, hijack-proof file operations for every command that writes.
//!
//! - A temporary is created beside its destination, exclusively (`O_CREAT|O_EXCL`, which also
//!   refuses a symlink planted at the name), under a name no one else can predict
//!   (`.NAME.etcdops-PID-RANDOM`), with its final restrictive mode from the first byte. An
//!   existing file is never adopted, followed or truncated.
//! - A temporary is removed when dropped unless committed; committing fsyncs it, renames it
//!   over the destination and fsyncs the directory (without that, a crash can lose the rename).
//! - Every temporary holds an exclusive `flock` while its process lives. Temporaries of ours
//!   left by killed processes (the lock is free, in any PID namespace) are removed by the next
//!   command that writes beside them: only names of our own pattern, only entries owned by us.
//! - Inputs are opened without blocking and refused unless they are regular files (a FIFO would
//!   otherwise block `open` forever).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// What every temporary name of ours has after the destination's name.
const TAG: &str = ".etcdops-";
/// The name used by versions before exclusive temporaries (`.NAME.etcdops-restore-PID`).
const LEGACY_TAG: &str = ".etcdops-restore-";

/// fsync a directory.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// fsync the directory that holds `path`.
pub fn sync_parent(path: &Path) -> Result<()> {
    sync_dir(&parent_dir(path))
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A name beside `dest` that only this process uses: `.NAME.etcdops-PID-RANDOM`.
fn temp_name(dest: &Path) -> PathBuf {
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
    fn fill(&mut self, dest: &Path, bytes: &[u8]) -> Result<()> {
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

fn set_owner_and_mode(f: &File, like: &fs::Metadata) -> io::Result<()> {
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

/// Open for reading without following a symlink or blocking on a FIFO.
fn open_nofollow(path: &Path) -> io::Result<File> {
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
fn locked_or_gone(p: &Path, f: File) -> io::Result<File> {
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

/// Temporaries ([`TempFile`], [`TempDir`]) alive in this process, for the signal handler.
static LIVE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
/// Set by a command that handles SIGINT/SIGTERM itself from here on.
static HANDLED_ELSEWHERE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Set once the signal handler has taken the list of temporaries: none is created after.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Set as soon as the signal handler has a signal to act on: it will exit the process.
static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Held across a sequence of renames that must finish together (see [`Critical`]); the signal
/// handler waits for it.
static CRITICAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// While this lives, SIGINT and SIGTERM wait: a restore's WAL dir, data dir and manifest, or a
/// renewal's keys and certificates, are renamed (or rolled back) as one step, never half.
pub struct Critical(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl Critical {
    pub fn enter() -> Critical {
        Critical(CRITICAL.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Remove a temporary file or directory; retried for a moment, since the command's thread
/// may still be adding a file inside a directory until it notices it is gone. Whether it is.
fn remove_now(path: &Path) -> bool {
    for _ in 0..50 {
        let _ = fs::remove_dir_all(path).or_else(|_| fs::remove_file(path));
        if fs::symlink_metadata(path).is_err() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    false
}

fn untrack(path: &Path) {
    live().retain(|p| p != path);
}

/// On SIGINT or SIGTERM, remove every live temporary and exit 2 with one line, instead of
/// dying with them on disk (a decoded snapshot holds every Secret in plain text). For the
/// commands that run to the end on one thread; a command with its own handling (a save that
/// aborts its upload, `verify --boot` that stops its etcd) holds a [`SignalsHandledHere`].
pub fn remove_temporaries_on_signals() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the signal handler")?;
    // Installed before this returns: no window in which a signal still kills outright.
    let (mut int, mut term) = {
        let _enter = rt.enter();
        (
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        )
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                loop {
                    let name = tokio::select! {
                        _ = int.recv() => "SIGINT",
                        _ = term.recv() => "SIGTERM",
                    };
                    if HANDLED_ELSEWHERE.load(std::sync::atomic::Ordering::SeqCst) {
                        continue;
                    }
                    SIGNALLED.store(true, std::sync::atomic::Ordering::SeqCst);
                    // Let a sequence of renames in progress finish first.
                    let _critical = Critical::enter();
                    let unfinished: Vec<PathBuf> = {
                        let mut live = live();
                        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
                        live.drain(..).collect()
                    };
                    let left: Vec<String> = unfinished
                        .iter()
                        .filter(|p| !remove_now(p))
                        .map(|p| crate::output::escape(&p.display().to_string()))
                        .collect();
                    let removed = unfinished.len() - left.len();
                    let line = if left.is_empty() {
                        format!("error: interrupted by {name}: {removed} unfinished file(s) removed; what was already complete stays")
                    } else {
                        format!("error: interrupted by {name}: {removed} unfinished file(s) removed, {} could not be: remove them by hand", left.join(", "))
                    };
                    // Never a panic here (stderr may be a closed pipe): the exit must happen.
                    let _ = writeln!(io::stderr().lock(), "{line}");
                    std::process::exit(crate::exit::ERROR.into());
                }
            })
        })
        .context("starting the signal handler")?;
    Ok(())
}

/// Called before the result is reported: once the signal handler has a signal to act on, its
/// line and exit are the ones to give (an error here is most likely its removal seen from the
/// command: a directory gone under its writer). Then this does not return: the handler exits
/// the process, or, should it not within 10 s, this does.
pub fn wait_if_signalled() {
    if !SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    std::thread::sleep(std::time::Duration::from_secs(10));
    let _ = writeln!(io::stderr().lock(), "error: interrupted");
    std::process::exit(crate::exit::ERROR.into());
}

/// While this lives, SIGINT and SIGTERM are the caller's to handle (see
/// [`remove_temporaries_on_signals`]); create it after the caller's own handlers.
pub struct SignalsHandledHere(());

impl SignalsHandledHere {
    pub fn start() -> SignalsHandledHere {
        HANDLED_ELSEWHERE.store(true, std::sync::atomic::Ordering::SeqCst);
        SignalsHandledHere(())
    }
}

impl Drop for SignalsHandledHere {
    fn drop(&mut self) {
        HANDLED_ELSEWHERE.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// SIGXFSZ on Linux.
pub const SIGXFSZ: i32 = 25;

/// Make a write past `ulimit -f` fail with EFBIG instead of killing the process (SIGXFSZ's
/// default action), so that the command can remove its temporaries and say why. The handler
/// stays installed for the life of the process.
pub fn catch_file_size_signal() -> Result<()> {
    let install = || {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ))
            .map(drop)
            .context("installing the SIGXFSZ handler")
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        return install();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the signal handler")?;
    let _enter = rt.enter();
    install()
}

/// What kind of file this is, in words, for an error message.
pub fn kind_name(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

/// Open `path` for reading without blocking (a FIFO's `open` would wait for a writer) and
/// refuse anything that is not a regular file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    // Look before opening: opening some devices has effects (a watchdog starts, a tape
    // rewinds). The open handle is checked again below, against a swap in between.
    let ft = fs::metadata(path)?.file_type();
    if !ft.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file", kind_name(ft)),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32)
        .open(path)?;
    let ft = file.metadata()?.file_type();
    if !ft.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file", kind_name(ft)),
        ));
    }
    // Regular files ignore O_NONBLOCK; clear it anyway so reads behave as usual.
    rustix::fs::fcntl_setfl(&file, rustix::fs::OFlags::empty())?;
    Ok(file)
}

/// Refuse when the file system of `dir` has less than `need` bytes free for `what`.
pub fn ensure_free_space(dir: &Path, need: u64, what: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let stat = rustix::fs::statvfs(dir)
        .with_context(|| format!("checking free space in {}", dir.display()))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    if free < need {
        anyhow::bail!(
            "not enough free space in {}: {what} needs {need} bytes, {free} are available",
            dir.display(),
        );
    }
    Ok(())
}

/// A small regular file whole ([`open_regular`]), refused when it is larger than `limit` bytes:
/// key, certificate, sidecar and profile files, whose real size is a few KB.
pub fn read_capped(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_regular(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// The same, as UTF-8 text.
pub fn read_capped_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_capped(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn non_regular_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = open_regular(dir.path()).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let e = open_regular(Path::new("/dev/null")).unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
    }
}
