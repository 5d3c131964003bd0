//! A directory or an S3 prefix holding generated snapshots and their sidecars: list them,
//! read sidecars, delete — one interface, so `ls` and `prune` are the same code for both.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use bytes::Bytes;

use super::meta::{self, Metadata, Name, MAX_SIDECAR, SIDECAR_SUFFIX};
use super::s3::{S3Settings, S3};
use super::Location;

pub enum Store {
    Dir(PathBuf),
    S3 {
        s3: std::sync::Arc<S3>,
        bucket: String,
        prefix: String,
    },
}

/// One generated snapshot found in a store.
#[derive(Debug, Clone)]
pub struct Backup {
    pub name: String,
    pub size: u64,
    pub parsed: Name,
    /// The sidecar, or why it is not usable (missing, unreadable, describing another size).
    pub meta: std::result::Result<Metadata, String>,
}

impl Backup {
    /// Listed, prunable and restorable: the sidecar is there and agrees with the object's size.
    pub fn verified(&self) -> bool {
        self.meta.is_ok()
    }
}

impl Store {
    /// The store a DIR/ or s3:// prefix names (checking that the bucket is reachable).
    pub async fn open(location: &Location, s3: &S3Settings) -> Result<Store> {
        match location {
            Location::Local(dir) => {
                let meta = std::fs::metadata(dir)
                    .with_context(|| format!("reading the directory {}", dir.display()))?;
                if !meta.is_dir() {
                    bail!("{} is not a directory", dir.display());
                }
                Ok(Store::Dir(dir.clone()))
            }
            Location::S3 { bucket, key } => {
                let s3 = S3::connect(s3).await?;
                s3.check_bucket(bucket).await?;
                Ok(Store::S3 {
                    s3: std::sync::Arc::new(s3),
                    bucket: bucket.clone(),
                    prefix: key.clone(),
                })
            }
        }
    }

    /// The full name of `name` in this store, for messages.
    pub fn url(&self, name: &str) -> String {
        match self {
            Store::Dir(d) => d.join(name).display().to_string(),
            Store::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}{name}"),
        }
    }

    /// Where the object `name` of this store is, as a SOURCE.
    pub fn location_of(&self, name: &str) -> Location {
        match self {
            Store::Dir(d) => Location::Local(d.join(name)),
            Store::S3 { bucket, prefix, .. } => Location::S3 {
                bucket: bucket.clone(),
                key: format!("{prefix}{name}"),
            },
        }
    }

    /// Every object or file directly in the store: (name, size).
    pub async fn objects(&self) -> Result<Vec<(String, u64)>> {
        match self {
            Store::Dir(dir) => {
                let mut out = Vec::new();
                let rd =
                    std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
                for entry in rd {
                    let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
                    let Ok(name) = entry.file_name().into_string() else {
                        continue;
                    };
                    // Regular files only: symlinks and directories are never ours.
                    match entry.file_type() {
                        Ok(t) if t.is_file() => {}
                        _ => continue,
                    }
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    out.push((name, size));
                }
                Ok(out)
            }
            Store::S3 { s3, bucket, prefix } => Ok(s3
                .list(bucket, prefix)
                .await?
                .into_iter()
                .filter_map(|o| Some((o.key.strip_prefix(prefix.as_str())?.to_string(), o.size)))
                .collect()),
        }
    }

    pub async fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        match self {
            Store::Dir(dir) => {
                let path = dir.join(name);
                crate::fsutil::read_capped(&path, MAX_SIDECAR as u64)
                    .with_context(|| format!("reading {}", path.display()))
            }
            Store::S3 { s3, bucket, prefix } => {
                s3.get_small(bucket, &format!("{prefix}{name}"), MAX_SIDECAR + 1)
                    .await
            }
        }
    }

    /// A whole object of at most `limit` bytes (a revision-log segment: its sidecar declares
    /// the size, and a body that goes on past it is refused, never stored).
    pub async fn read_object(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let bytes = match self {
            Store::Dir(dir) => {
                let path = dir.join(name);
                crate::fsutil::read_capped(&path, limit)
                    .with_context(|| format!("reading {}", path.display()))?
            }
            Store::S3 { s3, bucket, prefix } => {
                s3.get_small(bucket, &format!("{prefix}{name}"), limit as usize + 1)
                    .await?
            }
        };
        if bytes.len() as u64 > limit {
            bail!(
                "{} is larger than the {limit} bytes its metadata declares",
                self.url(name)
            );
        }
        Ok(bytes)
    }

    /// Write a whole object under a name no other object has (local: an exclusive 0600
    /// temporary, fsynced, renamed without replacing anything).
    pub async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        match self {
            Store::Dir(dir) => {
                let dest = dir.join(name);
                let mut tmp = crate::fsutil::TempFile::beside(&dest, 0o600)?;
                tmp.fill(&dest, &bytes)?;
                tmp.commit_new(&dest)
            }
            Store::S3 { s3, bucket, prefix } => {
                s3.put_object(bucket, &format!("{prefix}{name}"), Bytes::from(bytes))
                    .await
            }
        }
    }

    /// Delete one object (a missing one is not an error: a prune may have been interrupted).
    pub async fn delete_object(&self, name: &str) -> Result<()> {
        match self {
            Store::Dir(dir) => {
                let path = dir.join(name);
                match std::fs::remove_file(&path) {
                    Ok(()) => crate::fsutil::sync_dir(dir),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e).with_context(|| format!("deleting {}", path.display())),
                }
            }
            Store::S3 { s3, bucket, prefix } => {
                s3.delete_object(bucket, &format!("{prefix}{name}")).await
            }
        }
    }

    /// Write a sidecar (local: atomically, 0600).
    pub async fn write_sidecar(&self, name: &str, meta: &Metadata) -> Result<()> {
        let bytes = meta.to_bytes();
        let sidecar = format!("{name}{SIDECAR_SUFFIX}");
        match self {
            Store::Dir(dir) => crate::fsutil::write_atomic(&dir.join(sidecar), &bytes, None),
            Store::S3 { s3, bucket, prefix } => {
                s3.put_object(bucket, &format!("{prefix}{sidecar}"), Bytes::from(bytes))
                    .await
            }
        }
    }

    /// Delete a snapshot: its sidecar first (so that a crash in between leaves an object no
    /// command trusts, never a sidecar naming nothing), then the snapshot.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let sidecar = format!("{name}{SIDECAR_SUFFIX}");
        match self {
            Store::Dir(dir) => {
                for n in [&sidecar, name] {
                    let path = dir.join(n);
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(e).with_context(|| format!("deleting {}", path.display()))
                        }
                    }
                }
                crate::fsutil::sync_dir(dir)
            }
            Store::S3 { s3, bucket, prefix } => {
                s3.delete_object(bucket, &format!("{prefix}{sidecar}"))
                    .await?;
                s3.delete_object(bucket, &format!("{prefix}{name}")).await
            }
        }
    }

    /// The generated snapshots in the store, oldest first, each with its sidecar's verdict.
    /// Anything else (other names, files without our pattern) is left out: never ours.
    pub async fn backups(&self) -> Result<Vec<Backup>> {
        let entries = self.objects().await?;
        self.backups_in(&entries).await
    }

    /// [`Store::backups`] of a listing already read (one listing for several readers).
    pub async fn backups_in(&self, entries: &[(String, u64)]) -> Result<Vec<Backup>> {
        let sizes: std::collections::HashMap<&str, u64> =
            entries.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let ours: Vec<(&String, u64, Name)> = entries
            .iter()
            .filter_map(|(name, size)| Some((name, *size, meta::parse_name(name)?)))
            .collect();
        let with_sidecar: Vec<String> = ours
            .iter()
            .map(|(name, _, _)| format!("{name}{SIDECAR_SUFFIX}"))
            .filter(|sidecar| sizes.contains_key(sidecar.as_str()))
            .collect();
        let mut sidecars = self.read_many(with_sidecar).await;
        let mut out: Vec<Backup> = ours
            .into_iter()
            .map(|(name, size, parsed)| {
                let meta = match sidecars.remove(&format!("{name}{SIDECAR_SUFFIX}")) {
                    Some(Ok(bytes)) => Metadata::parse(&bytes, name)
                        .map_err(|e| format!("{e:#}"))
                        .and_then(|m| {
                            if m.object_size == size {
                                Ok(m)
                            } else {
                                Err(format!(
                                    "the object is {size} bytes, its metadata says {}",
                                    m.object_size
                                ))
                            }
                        }),
                    Some(Err(e)) => Err(format!("{e:#}")),
                    None => Err(
                        "no metadata sidecar (an interrupted save or prune, or not ours)"
                            .to_string(),
                    ),
                };
                Backup {
                    name: name.clone(),
                    size,
                    parsed,
                    meta,
                }
            })
            .collect();
        out.sort_by(|a, b| a.parsed.time.cmp(&b.parsed.time).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// Small objects by name: from S3 [`SIDECAR_FETCHES`] at a time, from a directory one by
    /// one.
    pub async fn read_many(
        &self,
        names: Vec<String>,
    ) -> std::collections::HashMap<String, Result<Vec<u8>>> {
        let mut out = std::collections::HashMap::new();
        let Store::S3 { s3, bucket, prefix } = self else {
            for name in names {
                let bytes = self.read_small(&name).await;
                out.insert(name, bytes);
            }
            return out;
        };
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(SIDECAR_FETCHES));
        let mut tasks = tokio::task::JoinSet::new();
        for name in names {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (s3, key) = (s3.clone(), format!("{prefix}{name}"));
            let bucket = bucket.clone();
            tasks.spawn(async move {
                let bytes = s3.get_small(&bucket, &key, MAX_SIDECAR + 1).await;
                drop(permit);
                (name, bytes)
            });
        }
        while let Some(done) = tasks.join_next().await {
            if let Ok((name, bytes)) = done {
                out.insert(name, bytes);
            }
        }
        out
    }
}

/// Sidecars fetched at once from an object store.
pub const SIDECAR_FETCHES: usize = 8;
