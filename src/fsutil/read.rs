//! Free space checked before a large write. Regular-file opens and capped reads live one floor
//! down, in `crate::regular` (re-exported by `fsutil`), so that `tls.rs` can use them too.

use std::path::Path;

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
