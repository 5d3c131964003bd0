//! Snapshots off the node: object storage (S3 and compatible servers), compression (zstd),
//! encryption (age), the metadata sidecar, retention, and opening any of it as a plain
//! snapshot file for the offline commands.
//!
//! ```text
//! sigv4 ─▶ credentials ─▶ s3 ─▶ store (DIR/ or s3:// prefix: list, sidecars, delete)
//! http ──┘                      codec (zstd + age, both directions)   meta (names, sidecar)
//!                               retention (which snapshots a policy keeps)
//! source (SOURCE → a plain local snapshot file, verified against its sidecar)
//! ```

pub mod codec;
pub mod credentials;
pub mod http;
pub mod meta;
pub mod multipart;
pub mod prune;
pub mod retention;
pub mod s3;
pub mod sigv4;
pub mod source;
pub mod store;

use std::path::PathBuf;

use anyhow::{bail, Result};

/// A place a snapshot is read from or written to, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    /// `s3://BUCKET/KEY`; KEY empty or ending in `/` is a prefix.
    S3 {
        bucket: String,
        key: String,
    },
}

impl Location {
    pub fn parse(arg: &str) -> Result<Location> {
        let Some(rest) = arg.strip_prefix("s3://") else {
            if arg.contains("://") {
                bail!("{arg:?}: only s3:// URLs and local paths are supported");
            }
            return Ok(Location::Local(PathBuf::from(arg)));
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !valid {
            bail!("{arg:?}: {bucket:?} is not a valid bucket name (3 to 63 characters: lower-case letters, digits, '-', '.')");
        }
        if key.split('/').any(|seg| seg == ".." || seg == ".") {
            bail!("{arg:?}: '.' and '..' are not allowed in object keys");
        }
        Ok(Location::S3 {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// A directory or prefix (where generated names go), rather than one snapshot.
    pub fn is_prefix(&self) -> bool {
        match self {
            Location::Local(p) => p.as_os_str().to_string_lossy().ends_with('/') || p.is_dir(),
            Location::S3 { key, .. } => key.is_empty() || key.ends_with('/'),
        }
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Location::S3 { .. })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            Location::parse("s3://backups/etcd/prod/").unwrap(),
            Location::S3 {
                bucket: "backups".into(),
                key: "etcd/prod/".into()
            }
        );
        assert!(Location::parse("s3://backups").unwrap().is_prefix());
        assert!(!Location::parse("s3://backups/x.db").unwrap().is_prefix());
        assert!(Location::parse("/var/backups/").unwrap().is_prefix());
        for bad in [
            "s3://Bad/x",
            "s3://ab/x",
            "s3://-ab/x",
            "gs://b/x",
            "s3://bucket/../x",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
