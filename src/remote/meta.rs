//! Generated snapshot names and the metadata sidecar written beside each saved snapshot.
//!
//! Name: `<PREFIX>etcd-<node>-<YYYYMMDDTHHMMSSZ>.db[.zst][.age]`, node being the etcd member
//! name of the endpoint the snapshot came from (`[A-Za-z0-9._-]` kept, anything else `_`).
//! Sidecar: `NAME.json`, written only after the snapshot itself is complete and verified.
//! Revision-log segments (`snapshot follow`) are named after their base:
//! `etcd-<node>-<stamp>.log-<THROUGH>-<MILLIS>.seg[.zst][.age]` (revlog/chain.rs). `ls`,
//! `prune` and `restore` trust a snapshot only when its sidecar is there and names it.

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

use crate::timestamp::{compact_utc, parse_compact_utc};

pub const SIDECAR_SUFFIX: &str = ".json";
/// Written into every sidecar; a different value is not ours to read.
pub const FORMAT: &str = "etcdops-snapshot/1";
/// A sidecar is a few KB; more is not one of ours.
pub const MAX_SIDECAR: usize = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// The sidecar `NAME.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
    pub format: String,
    /// The snapshot's own name (without any prefix).
    pub name: String,
    /// RFC 3339, when the save began.
    pub created: String,
    /// sha256 and size of the plain snapshot file (database + trailer), as `etcdctl snapshot
    /// save` would have written it.
    pub db_sha256: String,
    pub db_size: u64,
    /// sha256 and size of the stored object (after compression and encryption).
    pub object_sha256: String,
    pub object_size: u64,
    /// The server's revision when the snapshot was requested; the snapshot holds at least it.
    pub revision: i64,
    pub etcd_version: String,
    pub cluster_id: String,
    pub member_id: String,
    pub members: Vec<Member>,
    /// `zstd` or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<i32>,
    /// `age` or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// The recipients' public keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    pub etcdops_version: String,
}

impl Metadata {
    pub fn parse(bytes: &[u8], expected_name: &str) -> Result<Metadata> {
        if bytes.len() > MAX_SIDECAR {
            bail!("the metadata is larger than 1 MiB");
        }
        let meta: Metadata =
            serde_json::from_slice(bytes).map_err(|e| anyhow!("the metadata is not valid: {e}"))?;
        if meta.format != FORMAT {
            bail!("the metadata is format {:?}, not {FORMAT}", meta.format);
        }
        if meta.name != expected_name {
            bail!(
                "the metadata describes {:?}, not {expected_name:?}",
                meta.name
            );
        }
        Ok(meta)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// The parts of a generated name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub node: String,
    /// Unix seconds.
    pub time: i64,
    pub compressed: bool,
    pub encrypted: bool,
}

pub fn generate(node: &str, unix: i64, suffix: &str) -> String {
    format!("etcd-{}-{}.db{suffix}", name_node(node), compact_utc(unix))
}

/// A member name as generated names hold it: `[A-Za-z0-9._-]` kept, anything else `_`,
/// `unnamed` when empty.
pub fn name_node(node: &str) -> String {
    let node: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if node.is_empty() {
        "unnamed".to_string()
    } else {
        node
    }
}

/// `Some` for names [`generate`] makes, `None` for anything else (never ours to touch).
pub fn parse_name(name: &str) -> Option<Name> {
    let rest = name.strip_prefix("etcd-")?;
    let (stem, compressed, encrypted) = if let Some(s) = rest.strip_suffix(".db.zst.age") {
        (s, true, true)
    } else if let Some(s) = rest.strip_suffix(".db.zst") {
        (s, true, false)
    } else if let Some(s) = rest.strip_suffix(".db.age") {
        (s, false, true)
    } else {
        (rest.strip_suffix(".db")?, false, false)
    };
    let (node, stamp) = stem.rsplit_once('-')?;
    if node.is_empty()
        || !node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return None;
    }
    Some(Name {
        node: node.to_string(),
        time: parse_compact_utc(stamp)?,
        compressed,
        encrypted,
    })
}

/// The parts of a segment's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    /// The base's name without `.db` and its suffixes.
    pub stem: String,
    pub through: i64,
    pub millis: i64,
}

/// The stem of a generated base name (`etcd-NODE-STAMP`), `None` for other names.
pub fn stem_of(base: &str) -> Option<String> {
    let n = parse_name(base)?;
    let name = generate(&n.node, n.time, "");
    Some(name.strip_suffix(".db")?.to_string())
}

pub fn segment_name(stem: &str, through: i64, millis: i64, suffix: &str) -> String {
    format!("{stem}.log-{through:020}-{millis:013}.seg{suffix}")
}

/// `Some` for names [`segment_name`] makes.
pub fn parse_segment_name(name: &str) -> Option<SegmentName> {
    let rest = [".seg.zst.age", ".seg.zst", ".seg.age", ".seg"]
        .iter()
        .find_map(|s| name.strip_suffix(s))?;
    let (stem, numbers) = rest.rsplit_once(".log-")?;
    let (through, millis) = numbers.split_once('-')?;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(through, 20) || !digits(millis, 13) {
        return None;
    }
    stem_of(&format!("{stem}.db")).filter(|s| s == stem)?;
    Some(SegmentName {
        stem: stem.to_string(),
        through: through.parse().ok()?,
        millis: millis.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = generate("cp-1.example", 1_764_307_200, ".zst.age");
        assert_eq!(n, "etcd-cp-1.example-20251128T052000Z.db.zst.age");
        assert_eq!(
            parse_name(&n),
            Some(Name {
                node: "cp-1.example".into(),
                time: 1_764_307_200,
                compressed: true,
                encrypted: true
            })
        );
        assert_eq!(generate("a b/c", 0, ""), "etcd-a_b_c-19700101T000000Z.db");
        for not_ours in [
            "etcd-x-20251128T052000Z.db.json",
            "etcd--20251128T052000Z.db",
            "etcd-x-2025112T052000Z.db",
            "etcd-x-20251399T052000Z.db",
            "backup.db",
            "etcd-x-20251128T052000Z.db.gz",
        ] {
            assert_eq!(parse_name(not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn sidecar_must_name_its_snapshot() {
        let meta = Metadata {
            format: FORMAT.into(),
            name: "etcd-a-19700101T000000Z.db".into(),
            created: "1970-01-01T00:00:00Z".into(),
            db_sha256: "00".into(),
            db_size: 1,
            object_sha256: "00".into(),
            object_size: 1,
            revision: 5,
            etcd_version: "3.5.1".into(),
            cluster_id: "1".into(),
            member_id: "2".into(),
            members: vec![],
            compression: None,
            compression_level: None,
            encryption: None,
            recipients: vec![],
            etcdops_version: "0".into(),
        };
        let bytes = meta.to_bytes();
        assert_eq!(Metadata::parse(&bytes, &meta.name).unwrap(), meta);
        assert!(Metadata::parse(&bytes, "etcd-b-19700101T000000Z.db").is_err());
        assert!(Metadata::parse(b"{", &meta.name).is_err());
        assert!(Metadata::parse(&vec![b' '; MAX_SIDECAR + 1], &meta.name).is_err());
    }
}
