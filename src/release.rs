//! etcd release numbers: `3.6.5`, `v3.6.5`, image tags (`registry.k8s.io/etcd:3.6.5-0`,
//! with a registry port or an `@sha256:…` digest), `etcd --version` output, and the release a
//! data dir needs.
//!
//! What a binary opens (etcd-io/etcd v3.6.14 and v3.7.1, `server/storage/schema/schema.go`
//! 92-125, `migration.go` 29-51): the data's version is `meta/storageVersion` when present,
//! else 3.5 when `meta/term` is set; a binary opens data of its own minor or older and
//! refuses newer (`version "3.7.0" is not supported`). Besides, every release since 3.5 stops
//! when `cluster/clusterVersion` is newer than itself (`membership/cluster.go`
//! `MustDetectDowngrade`: "invalid downgrade"). A 3.5 binary knows no `storageVersion` and
//! boots 3.6 data by ignoring it: a boot that proves nothing. So the data needs the newer of
//! the two minors.

use std::fmt;
use std::path::Path;

/// One etcd release (`major.minor.patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Release {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Release {
        Release {
            major,
            minor,
            patch,
        }
    }

    /// `3.6.5`, `v3.6.5`, `3.6.5-0`, `3.6.0-rc.1`, `3.6`: the numbers before any `-` or `+`.
    pub fn parse(text: &str) -> Option<Release> {
        let core = text.trim().trim_start_matches('v');
        let core = core.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Release {
            major,
            minor,
            patch,
        })
    }

    /// The release in an image reference: the tag after the last `:` of the last path
    /// segment, the digest (`@sha256:…`) left out, so that a registry port is never a tag.
    pub fn from_image(image: &str) -> Option<Release> {
        let name = image.split('@').next()?;
        let last = name.rsplit('/').next()?;
        Release::parse(last.split_once(':')?.1)
    }

    /// What `etcd --version` printed (`etcd Version: 3.5.1`).
    pub fn from_version_output(text: &str) -> Option<Release> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix("etcd Version:"))
            .and_then(Release::parse)
    }

    /// Ask a binary (`etcd --version`, with nothing of the caller's environment: etcd reads
    /// `ETCD_*` variables as flags).
    pub fn of_binary(etcd: &Path) -> Option<Release> {
        let out = std::process::Command::new(etcd)
            .arg("--version")
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        Release::from_version_output(&String::from_utf8_lossy(&out.stdout))
    }

    /// `major.minor`, the part the schema and the cluster version go by.
    pub fn minor_only(self) -> Release {
        Release { patch: 0, ..self }
    }

    /// `3.6`.
    pub fn short(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The release a data dir needs, and why (the key that says so), from `meta/storageVersion`
/// and `cluster/clusterVersion` as stored; `None` when neither is there or parses.
pub fn data_needs(
    storage_version: Option<&str>,
    cluster_version: Option<&str>,
) -> Option<(Release, String)> {
    // On a tie the last wins: the storage version, the one etcd's schema check reads.
    let found = [
        (cluster_version, "cluster/clusterVersion"),
        (storage_version, "meta/storageVersion"),
    ];
    found
        .into_iter()
        .filter_map(|(v, key)| {
            let text = v?;
            let r = Release::parse(text)?.minor_only();
            Some((r, format!("{key} {text}")))
        })
        .max_by_key(|(r, _)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(major: u32, minor: u32, patch: u32) -> Release {
        Release {
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn versions_tags_and_outputs() {
        assert_eq!(Release::parse("3.6.5"), Some(r(3, 6, 5)));
        assert_eq!(Release::parse("v3.5.30"), Some(r(3, 5, 30)));
        assert_eq!(Release::parse("3.6.0-rc.1"), Some(r(3, 6, 0)));
        assert_eq!(Release::parse("3.6"), Some(r(3, 6, 0)));
        assert_eq!(Release::parse("latest"), None);
        assert_eq!(Release::parse("3.6.5.1"), None);
        for (image, want) in [
            ("registry.k8s.io/etcd:3.6.5-0", Some(r(3, 6, 5))),
            (
                "registry.k8s.io/etcd:3.6.5-0@sha256:0123abcd",
                Some(r(3, 6, 5)),
            ),
            ("my.registry:5000/etcd:3.5.12-0", Some(r(3, 5, 12))),
            ("my.registry:5000/etcd", None),
            ("quay.io/coreos/etcd:v3.5.21", Some(r(3, 5, 21))),
            ("registry.k8s.io/etcd@sha256:0123abcd", None),
        ] {
            assert_eq!(Release::from_image(image), want, "{image}");
        }
        assert_eq!(
            Release::from_version_output(
                "etcd Version: 3.5.1\nGit SHA: e8732fb5f\nGo Version: go1.16.3\n"
            ),
            Some(r(3, 5, 1))
        );
        assert!(r(3, 10, 0) > r(3, 9, 9));
    }

    #[test]
    fn the_newer_of_storage_and_cluster_version() {
        assert_eq!(data_needs(None, None), None);
        assert_eq!(
            data_needs(None, Some("3.5.0")),
            Some((r(3, 5, 0), "cluster/clusterVersion 3.5.0".into()))
        );
        assert_eq!(
            data_needs(Some("3.6.0"), Some("3.5.0")),
            Some((r(3, 6, 0), "meta/storageVersion 3.6.0".into()))
        );
        assert_eq!(
            data_needs(Some("3.6.0"), Some("3.7.0")),
            Some((r(3, 7, 0), "cluster/clusterVersion 3.7.0".into()))
        );
    }
}
