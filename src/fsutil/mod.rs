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

//!
//! Rooms: `temp` (temporaries and their commit), `lock` (locks and the sweep of what killed
//! runs left), `signals` (the process-wide SIGINT/SIGTERM/SIGXFSZ handling), `read` (inputs
//! that must be regular files, capped reads, free space), `replace` (several files replaced
//! as one step, rolled back on failure).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

mod direct;
mod lock;
mod read;
mod replace;
mod signals;
mod temp;

pub use crate::regular::{kind_name, open_regular, read_capped, read_capped_text};
pub use direct::{direct_writer, DirectFile, DirectWriter};
pub use lock::{clean_stale, lock_dir};
pub use read::ensure_free_space;
pub use replace::Replacement;
pub use signals::{
    catch_file_size_signal, interruption_leaves, remove_temporaries_on_signals, wait_if_signalled,
    Critical, SignalsHandledHere, SIGXFSZ,
};
pub use temp::{
    prepare, prepare_secret, undo_commit, write_atomic, write_atomic_public, TempDir, TempFile,
};

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
