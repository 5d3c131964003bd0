//! Changing a static-pod manifest for a restore, and only what must change: the hostPath of
//! the data volume, found in the raw text and replaced byte for byte (comments, order and
//! quoting stay), proven by parsing the result again, then written atomically with a backup
//! outside the manifests directory. Also the name of a new data dir beside the old one.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::{Kind, Manifest, ManifestError};
use crate::fsutil;

/// Why the data volume's path could not be found in the manifest's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetargetError {
    #[error("no entry for volume {0:?} under volumes:")]
    NoVolume(String),
    #[error("volume {volume:?} has no hostPath path {old:?}")]
    NoHostPath { volume: String, old: String },
    #[error("volume {volume:?} names {old:?} more than once")]
    Twice { volume: String, old: String },
}

/// Point the hostPath of volume `volume` at `new` instead of `old`, changing nothing else: the
/// same bytes before and after the path value. Block and flow style are both handled; the
/// value must appear exactly once as a `path:` inside that volume's entry.
pub fn retarget_volume(
    text: &str,
    volume: &str,
    old: &str,
    new: &str,
) -> Result<String, RetargetError> {
    let (start, end) =
        volume_entry(text, volume).ok_or_else(|| RetargetError::NoVolume(volume.to_string()))?;
    let entry = &text[start..end];
    let mut hits = Vec::new();
    let bytes = entry.as_bytes();
    let mut from = 0;
    while let Some(i) = entry[from..].find("path:") {
        let at = from + i;
        from = at + 5;
        // `path:` but not `mountPath:` or `hostPath:`.
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let mut v = at + 5;
        while v < bytes.len() && bytes[v] == b' ' {
            v += 1;
        }
        let quote = bytes.get(v).copied().filter(|q| *q == b'"' || *q == b'\'');
        let value_start = v + usize::from(quote.is_some());
        if entry[value_start..].starts_with(old) {
            let after = bytes.get(value_start + old.len()).copied();
            let ends = match quote {
                Some(q) => after == Some(q),
                None => matches!(
                    after,
                    None | Some(b'\n' | b'\r' | b' ' | b',' | b'}' | b'#')
                ),
            };
            if ends {
                hits.push(start + value_start);
            }
        }
    }
    match hits.as_slice() {
        [one] => Ok(format!(
            "{}{new}{}",
            &text[..*one],
            &text[*one + old.len()..]
        )),
        [] => Err(RetargetError::NoHostPath {
            volume: volume.to_string(),
            old: old.to_string(),
        }),
        _ => Err(RetargetError::Twice {
            volume: volume.to_string(),
            old: old.to_string(),
        }),
    }
}

/// Byte range of the `volumes:` list item whose `name:` is `volume`.
fn volume_entry(text: &str, volume: &str) -> Option<(usize, usize)> {
    // The line holding the `volumes:` key; the list starts on the next line.
    let mut key_end = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        at += line.len();
        if line.trim_start().starts_with("volumes:") {
            key_end = Some(at);
            break;
        }
    }
    let start = key_end?;
    // Items start with "- " at the list's indent; the section ends at a line indented less.
    let mut offsets = Vec::new();
    let mut pos = start;
    let mut item_indent = None;
    for line in text[start..].split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            pos += line.len();
            continue;
        }
        match item_indent {
            None if trimmed.starts_with("- ") => item_indent = Some(indent),
            Some(ii) if indent < ii || (indent == ii && !trimmed.starts_with("- ")) => break,
            None => break,
            _ => {}
        }
        if Some(indent) == item_indent && trimmed.starts_with("- ") {
            offsets.push(pos);
        }
        pos += line.len();
    }
    offsets.push(pos);
    let named = |item: &str| {
        item.split(['\n', ',', '{', '}'])
            .map(|p| p.trim().trim_start_matches("- ").trim())
            .any(|p| {
                p.strip_prefix("name:")
                    .map(|v| v.trim().trim_matches(['"', '\'']) == volume)
                    .unwrap_or(false)
            })
    };
    offsets
        .windows(2)
        .map(|w| (w[0], w[1]))
        .find(|(a, b)| named(&text[*a..*b]))
}

/// `--from-manifest` without `--data-dir`: a new sibling of the manifest's host data dir,
/// `/var/lib/etcd-restore-20261122T040000Z` for `/var/lib/etcd`, named from the original base
/// also when the manifest already points at an earlier restore.
pub fn sibling_data_dir(m: &Manifest) -> Result<PathBuf> {
    let (host, _) = m.host_data_dir()?;
    let host = host.as_os_str().to_string_lossy();
    Ok(PathBuf::from(format!(
        "{}-restore-{}",
        original_base(host.trim_end_matches('/')),
        utc_stamp()
    )))
}

/// `/var/lib/etcd` for `/var/lib/etcd-restore-20261122T040000Z-restore-20261123T...`.
fn original_base(mut dir: &str) -> &str {
    const STAMP: usize = "20261122T040000Z".len();
    while let Some((base, stamp)) = dir.rsplit_once("-restore-") {
        let b = stamp.as_bytes();
        let is_stamp = b.len() == STAMP
            && b[8] == b'T'
            && b[15] == b'Z'
            && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
        if !is_stamp || base.is_empty() {
            break;
        }
        dir = base;
    }
    dir
}

fn utc_stamp() -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_else(|_| std::process::id().to_string())
}

/// A planned change of the manifest's data volume (`--update-manifest`), checked before the
/// restore runs.
pub struct ManifestEdit {
    pub path: PathBuf,
    old_text: String,
    new_text: String,
}

/// Prepare `--update-manifest`: only a static-pod manifest whose data dir sits on a hostPath
/// volume can be pointed at the new directory, and the result must parse to the same pod with
/// only that path changed.
pub fn plan_manifest_update(m: &Manifest, data_dir: &Path) -> Result<ManifestEdit> {
    if m.kind != Kind::StaticPod {
        bail!(
            "--update-manifest works on static-pod manifests; {} is a {} (edit its --data-dir by hand)",
            m.path.display(),
            m.kind.name()
        );
    }
    let (old_host, volume) = m.host_data_dir()?;
    let volume = volume.ok_or_else(|| ManifestError::DataDirNotOnVolume {
        path: m.path.clone(),
    })?;
    let new_dir = std::path::absolute(data_dir)
        .with_context(|| format!("resolving {}", data_dir.display()))?;
    let new_text = retarget_volume(
        m.text(),
        &volume,
        &old_host.display().to_string(),
        &new_dir.display().to_string(),
    )
    .map_err(|e| anyhow!("manifest {}: {e}", m.path.display()))?;
    // Prove it: the edited manifest must describe the same etcd, on the new directory.
    let edited = Manifest::parse(&m.path, &new_text)?;
    if edited.flags != m.flags || edited.image != m.image {
        bail!(
            "manifest {}: the edit would change more than the data volume",
            m.path.display()
        );
    }
    match edited.host_data_dir() {
        Ok((dir, _)) if dir == new_dir => {}
        _ => bail!(
            "manifest {}: the edited manifest does not point at {}",
            m.path.display(),
            new_dir.display()
        ),
    }
    let edit = ManifestEdit {
        path: m.path.clone(),
        old_text: m.text().to_string(),
        new_text,
    };
    // Both writes must be possible before anything is restored (a read-only mount, say).
    for dir in [fsutil::parent_dir(&edit.path), edit.backup_dir()] {
        rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK)
            .map_err(|e| anyhow!("--update-manifest cannot write in {}: {e}", dir.display()))?;
    }
    Ok(edit)
}

impl ManifestEdit {
    /// Where the old manifest is kept: the manifests directory's parent.
    fn backup_dir(&self) -> PathBuf {
        std::path::absolute(fsutil::parent_dir(&self.path))
            .ok()
            .and_then(|d| d.parent().map(Path::to_path_buf))
            .unwrap_or_else(std::env::temp_dir)
    }

    /// A unified diff of the change (one hunk per changed line, with no context).
    pub fn diff(&self) -> String {
        let name = self.path.display();
        let mut out = format!("--- {name}\n+++ {name}\n");
        for (i, (a, b)) in self.old_text.lines().zip(self.new_text.lines()).enumerate() {
            if a != b {
                out.push_str(&format!("@@ -{n},1 +{n},1 @@\n-{a}\n+{b}\n", n = i + 1));
            }
        }
        out
    }

    /// Keep the old manifest outside the manifests directory (kubelet runs every file there),
    /// then replace it atomically. Both files keep the manifest's owner and mode. Returns the
    /// backup path.
    pub fn apply(&self) -> Result<PathBuf> {
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "etcd.yaml".into());
        let backup = self
            .backup_dir()
            .join(format!("{file_name}.etcdops-backup-{}", utc_stamp()));
        let like =
            fs::metadata(&self.path).with_context(|| format!("reading {}", self.path.display()))?;
        // The restore took a while: never overwrite a change made meanwhile.
        let now = fs::read_to_string(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?;
        if now != self.old_text {
            bail!(
                "{} changed while the restore ran; it was not updated (point its data volume at the restored data dir by hand)",
                self.path.display()
            );
        }
        fsutil::write_atomic(&backup, self.old_text.as_bytes(), Some(&like))?;
        fsutil::write_atomic(&self.path, self.new_text.as_bytes(), Some(&like))?;
        Ok(backup)
    }

    pub fn next_steps(&self, backup: &Path) -> Vec<String> {
        vec![
            format!(
                "updated {}: the etcd-data hostPath now points at the restored data dir (old manifest kept at {})",
                self.path.display(),
                backup.display()
            ),
            "next: kubelet restarts etcd from the updated manifest; check it with `etcdops health`".to_string(),
            "next: restart kube-apiserver, kube-controller-manager and kube-scheduler (move their manifests out of the manifests directory and back) so they drop their caches".to_string(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBEADM: &str = include_str!("../../tests/fixtures/manifests/kubeadm-1.31.yaml");

    #[test]
    fn retarget_changes_only_the_host_path() {
        let new =
            retarget_volume(KUBEADM, "etcd-data", "/var/lib/etcd", "/var/lib/etcd-new").unwrap();
        let changed: Vec<(&str, &str)> = KUBEADM
            .lines()
            .zip(new.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            [("      path: /var/lib/etcd", "      path: /var/lib/etcd-new")]
        );
        let m = Manifest::parse(Path::new("x"), &new).unwrap();
        assert_eq!(
            m.host_data_dir().unwrap().0,
            PathBuf::from("/var/lib/etcd-new")
        );
        // Flow style, quoted, name after path.
        let flow = "spec:\n  volumes:\n  - {hostPath: {path: \"/data/etcd\", type: Directory}, name: etcd-data}\n  - {name: other, hostPath: {path: /data/etcd}}\n";
        let out = retarget_volume(flow, "etcd-data", "/data/etcd", "/data/new").unwrap();
        assert!(
            out.contains("{path: \"/data/new\", type")
                && out.contains("name: other, hostPath: {path: /data/etcd}}"),
            "{out}"
        );
        assert!(retarget_volume(KUBEADM, "missing", "/x", "/y").is_err());
        assert!(retarget_volume(KUBEADM, "etcd-data", "/not/there", "/y").is_err());
    }

    #[test]
    fn new_data_dirs_are_named_from_the_original_base() {
        assert_eq!(original_base("/var/lib/etcd"), "/var/lib/etcd");
        assert_eq!(
            original_base("/var/lib/etcd-restore-20261122T040000Z"),
            "/var/lib/etcd"
        );
        assert_eq!(
            original_base("/var/lib/etcd-restore-20261122T040000Z-restore-20261123T050000Z"),
            "/var/lib/etcd"
        );
        assert_eq!(
            original_base("/data/x-restore-later"),
            "/data/x-restore-later"
        );
    }
}
