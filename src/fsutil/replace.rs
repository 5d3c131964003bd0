//! Several files replaced as one step, the old ones kept (cert-renew's keys and certificates).
//!
//! 1. [`Replacement::begin`] copies every file that will change into a temporary directory
//!    beside the backup directory (each copy at its absolute path below it, directories 0700,
//!    files with their owner and mode). The backup directory must be new: a rerun never
//!    overwrites the copies an earlier run made.
//! 2. [`Replacement::stage`] takes each new file, already written and synced beside its
//!    destination ([`super::prepare`]): a full disk or a refused write fails here, before
//!    anything is renamed, and leaves no backup.
//! 3. [`Replacement::commit`] gives the backup its name, then renames the new files in the
//!    order they were staged, as one [`super::Critical`] step (a signal waits). Should a rename
//!    fail, the files already replaced are put back from the backup, and the error says
//!    whether every one is.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use super::{read_capped, sync_dir, write_atomic, Critical, TempDir, TempFile};
use crate::exit::Hinted;

pub struct Replacement {
    backup_dir: PathBuf,
    flag: &'static str,
    copies: TempDir,
    /// The largest file a copy is read back from (what the caller's files may be).
    max_file: u64,
    staged: Vec<(PathBuf, TempFile)>,
}

impl Replacement {
    /// Copy `files` (each at most `max_file` bytes) into a new backup directory, named
    /// `backup_dir` only at [`Replacement::commit`]; `flag` is the option that names it.
    pub fn begin<'a>(
        backup_dir: &Path,
        flag: &'static str,
        files: impl IntoIterator<Item = &'a Path>,
        max_file: u64,
    ) -> Result<Replacement> {
        if let Some(e) = backup_taken(backup_dir, flag) {
            return Err(e);
        }
        if let Some(parent) = backup_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let copies = TempDir::beside(backup_dir)
            .with_context(|| format!("creating the backup directory {}", backup_dir.display()))?;
        // Every directory of the copy is synced before the backup takes its name.
        let mut dirs = BTreeSet::new();
        for f in files {
            let dest = backup_path(copies.path(), f);
            let rel = dest
                .parent()
                .and_then(|p| p.strip_prefix(copies.path()).ok())
                .unwrap_or(Path::new(""));
            let parent = copies.create_within(rel)?;
            dirs.extend(
                parent
                    .ancestors()
                    .take(rel.components().count() + 1)
                    .map(Path::to_path_buf),
            );
            let bytes =
                read_capped(f, max_file).with_context(|| format!("reading {}", f.display()))?;
            let like = fs::metadata(f).with_context(|| format!("reading {}", f.display()))?;
            write_atomic(&dest, &bytes, Some(&like))?;
        }
        for d in dirs.iter().rev() {
            sync_dir(d)?;
        }
        Ok(Replacement {
            backup_dir: backup_dir.to_path_buf(),
            flag,
            copies,
            max_file,
            staged: Vec::new(),
        })
    }

    /// The new content of `dest`, written and synced beside it; renamed in staging order.
    pub fn stage(&mut self, dest: &Path, temp: TempFile) {
        self.staged.push((dest.to_path_buf(), temp));
    }

    /// Name the backup, then rename every staged file over its destination; on a failed
    /// rename, put back what was replaced.
    pub fn commit(self) -> Result<()> {
        let Replacement {
            backup_dir,
            flag,
            copies,
            max_file,
            staged,
        } = self;
        let _critical = Critical::enter();
        copies
            .commit_new(&backup_dir)
            .map_err(|e| backup_taken(&backup_dir, flag).unwrap_or(e))?;
        let mut done: Vec<PathBuf> = Vec::new();
        for (dest, temp) in staged {
            let renamed = temp.commit(&dest);
            // The rename may have happened before a failure (a directory sync): put `dest`
            // back too; restoring an unreplaced file rewrites the same bytes.
            done.push(dest);
            let Err(e) = renamed else { continue };
            let undone = done
                .iter()
                .filter(|d| restore_from(&backup_dir, d, max_file).is_ok())
                .count();
            let state = if undone == done.len() {
                "every file is as it was".to_string()
            } else {
                format!("only {undone} of the {} files touched are back", done.len())
            };
            return Err(e.context(format!(
                "replacing {}: {state} (the old files are in {})",
                done.last()
                    .map_or(String::new(), |d| d.display().to_string()),
                backup_dir.display()
            )));
        }
        Ok(())
    }
}

/// Where `file` is copied in the backup directory `dir`: `dir/<its absolute path>`.
fn backup_path(dir: &Path, file: &Path) -> PathBuf {
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    dir.join(abs.strip_prefix("/").unwrap_or(&abs))
}

/// Put `file` back from its copy in the backup directory (nothing to do if it still holds the
/// old bytes: the rename that failed never happened).
fn restore_from(backups: &Path, file: &Path, max_file: u64) -> Result<()> {
    let copy = backup_path(backups, file);
    let bytes =
        read_capped(&copy, max_file).with_context(|| format!("reading {}", copy.display()))?;
    if read_capped(file, max_file).is_ok_and(|now| now == bytes) {
        return Ok(());
    }
    let like = fs::metadata(&copy).with_context(|| format!("reading {}", copy.display()))?;
    write_atomic(file, &bytes, Some(&like))
}

/// The refusal for a backup directory that exists already, if it does.
fn backup_taken(dir: &Path, flag: &str) -> Option<anyhow::Error> {
    dir.symlink_metadata().is_ok().then(|| {
        Hinted {
            error: anyhow!("the backup directory {} already exists", dir.display()),
            hint: format!("give a new {flag}: the copies of an earlier run are never overwritten"),
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_together_and_the_old_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, b"old a").unwrap();
        fs::write(&b, b"old b").unwrap();
        let backups = dir.path().join("backup/1");
        let mut r = Replacement::begin(
            &backups,
            "--backup-dir",
            [a.as_path(), b.as_path()],
            1 << 10,
        )
        .unwrap();
        assert!(!backups.exists(), "named only at commit");
        for (f, new) in [(&a, b"new a"), (&b, b"new b")] {
            r.stage(f, super::super::prepare(f, new, None).unwrap());
        }
        r.commit().unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new a");
        assert_eq!(fs::read(backup_path(&backups, &b)).unwrap(), b"old b");
        let again = Replacement::begin(&backups, "--backup-dir", [a.as_path()], 1 << 10)
            .err()
            .unwrap();
        assert!(again.to_string().contains("already exists"), "{again}");
    }

    #[test]
    fn a_failed_rename_puts_back_what_was_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("sub/b"));
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(&a, b"old a").unwrap();
        fs::write(&b, b"old b").unwrap();
        let backups = dir.path().join("backup");
        let mut r = Replacement::begin(
            &backups,
            "--backup-dir",
            [a.as_path(), b.as_path()],
            1 << 10,
        )
        .unwrap();
        r.stage(&a, super::super::prepare(&a, b"new a", None).unwrap());
        r.stage(&b, super::super::prepare(&b, b"new b", None).unwrap());
        // b's directory becomes a file: its rename fails after a's has happened.
        fs::remove_dir_all(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub"), b"").unwrap();
        let e = format!("{:#}", r.commit().unwrap_err());
        assert_eq!(fs::read(&a).unwrap(), b"old a", "{e}");
        assert!(e.contains("only 1 of the 2 files touched are back"), "{e}");
    }
}
