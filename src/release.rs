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

/// The schema version etcd 3.6/3.7 detect in a data dir (etcd-io/etcd v3.6.14 and v3.7.1
/// `server/storage/schema/schema.go` 92-108, `version.go` 34-44): `meta/storageVersion` when
/// it parses as a semver `X.Y.Z` (go-semver; anything else counts as missing), else 3.5 when
/// `meta/term` is not 0, else unknown. 3.6.0-3.6.4 also wanted `meta/confState` for 3.5; commit
/// 40053e325 (in v3.6.5) dropped that.
pub fn detect_schema(storage_version: Option<&str>, term: u64) -> Option<Release> {
    match storage_version.and_then(strict_semver) {
        Some(v) => Some(v),
        None => (term != 0).then_some(Release::new(3, 5, 0)),
    }
}

/// go-semver's `NewVersion` core: exactly three dot-separated numbers before any `-` or `+`.
fn strict_semver(text: &str) -> Option<Release> {
    let core = text.split(['-', '+']).next()?;
    let parts: Vec<&str> = core.split('.').collect();
    let [major, minor, patch] = parts.as_slice() else {
        return None;
    };
    let num = |p: &str| {
        (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    Some(Release::new(num(major)?, num(minor)?, num(patch)?))
}

/// Whether an etcd of release `binary` (3.6 or later) has a migration plan from the data's
/// schema `current`, as its boot (`schema.Validate`) and its version monitor (`Migrate`) ask:
/// one step per minor, an upgrade step needing the `schemaChanges` entry of the minor it goes
/// to, a downgrade step the entry of the minor it leaves (v3.6.14 `migration.go` 29-51,
/// `schema.go` 110-139). etcd 3.6 knows the entry of 3.6, etcd 3.7 those of 3.6 and 3.7
/// (v3.7.1 `schema.go` 130-135); a later release is taken to add its own, as 3.7 did. So data
/// newer than the binary is refused, and so is a schema older than 3.5.
pub fn schema_plan(current: Release, binary: Release) -> Result<(), String> {
    if current.major != binary.major {
        return Err("changing major storage version is not supported".to_string());
    }
    let known = |minor: u32| binary.major == 3 && (6..=binary.minor).contains(&minor);
    let unsupported =
        |minor: u32| format!("version \"{}.{minor}.0\" is not supported", binary.major);
    let mut at = current.minor;
    while at != binary.minor {
        let entry = if at < binary.minor { at + 1 } else { at };
        if !known(entry) {
            return Err(unsupported(entry));
        }
        at = if at < binary.minor { at + 1 } else { at - 1 };
    }
    Ok(())
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

    #[test]
    fn schema_detected_as_etcd_3_6_does() {
        assert_eq!(detect_schema(Some("3.6.0"), 0), Some(r(3, 6, 0)));
        assert_eq!(detect_schema(Some("3.7.0"), 1), Some(r(3, 7, 0)));
        // Not a semver X.Y.Z: etcd reads it as missing and falls back on the term.
        assert_eq!(detect_schema(Some("3.6"), 1), Some(r(3, 5, 0)));
        assert_eq!(detect_schema(Some(""), 0), None);
        assert_eq!(detect_schema(Some("v3.6.0"), 0), None);
        assert_eq!(detect_schema(None, 4), Some(r(3, 5, 0)));
        assert_eq!(detect_schema(None, 0), None);
    }

    #[test]
    fn schema_plans_of_3_6_and_3_7() {
        let (v35, v36, v37) = (r(3, 5, 0), r(3, 6, 14), r(3, 7, 1));
        assert_eq!(schema_plan(v35, v36), Ok(()));
        assert_eq!(schema_plan(r(3, 6, 0), v36), Ok(()));
        assert_eq!(
            schema_plan(r(3, 7, 0), v36),
            Err("version \"3.7.0\" is not supported".into())
        );
        assert_eq!(schema_plan(v35, v37), Ok(()));
        assert_eq!(schema_plan(r(3, 6, 0), v37), Ok(()));
        assert_eq!(schema_plan(r(3, 7, 0), v37), Ok(()));
        assert_eq!(
            schema_plan(r(3, 8, 0), v37),
            Err("version \"3.8.0\" is not supported".into())
        );
        assert_eq!(
            schema_plan(r(3, 4, 0), v36),
            Err("version \"3.5.0\" is not supported".into())
        );
        assert_eq!(
            schema_plan(r(4, 0, 0), v37),
            Err("changing major storage version is not supported".into())
        );
    }
}
