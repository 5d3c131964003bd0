//! Durable file operations for commands that write: after a temporary file is fsynced and
//! renamed into place, the directory holding it must be fsynced too, or a crash can lose the
//! rename.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};

/// fsync a directory.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// fsync the directory that holds `path`.
pub fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}
