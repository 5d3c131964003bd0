//! Cluster members as etcd stores them in the `members` bucket: key = member ID in lower-case
//! hex without leading zeros, value = JSON `{"id","peerURLs","name","clientURLs"?,"isLearner"?}`.
//! Mirrors etcd-io/etcd server/etcdserver/api/membership/member.go and store.go.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::text::go_json_string;
use crate::units::hex_id;

use super::SnapshotError;
use crate::bolt::bucket_entries;
use crate::bolt::reader::bucket_root;
use crate::bolt::{Db, ReadAt};

/// etcd's default `--initial-cluster-token`.
pub const DEFAULT_TOKEN: &str = "etcd-cluster";

/// A member record from the `members` bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMember {
    pub id: u64,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
    #[serde(
        rename = "isLearner",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_learner: bool,
}

impl StoredMember {
    /// The member stored under `key` (for the error message) as `value`.
    pub fn parse(key: &[u8], value: &[u8]) -> Result<StoredMember, SnapshotError> {
        serde_json::from_slice(value).map_err(|e| SnapshotError::Member {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: e.to_string(),
        })
    }
}

/// The members stored in a snapshot's `members` bucket (none when it has no such bucket).
pub fn read_stored<S: ReadAt>(db: &mut Db<S>) -> Result<Vec<StoredMember>, SnapshotError> {
    member_bucket(db, super::schema::BUCKET_MEMBERS, "members")?
        .iter()
        .map(|(k, v)| StoredMember::parse(k, v))
        .collect()
}

/// The `members` bucket as stored: (key, value) of every entry, nothing parsed (the restore's
/// preflight reads the key and the JSON apart, as etcd does).
pub fn read_member_entries<S: ReadAt>(db: &mut Db<S>) -> Result<Pairs, SnapshotError> {
    member_bucket(db, super::schema::BUCKET_MEMBERS, "members")
}

/// The member IDs in a snapshot's `members_removed` bucket (keys in hex).
pub fn read_removed<S: ReadAt>(db: &mut Db<S>) -> Result<Vec<u64>, SnapshotError> {
    Ok(
        member_bucket(db, super::schema::BUCKET_MEMBERS_REMOVED, "members_removed")?
            .iter()
            .filter_map(|(k, _)| u64::from_str_radix(std::str::from_utf8(k).ok()?, 16).ok())
            .collect(),
    )
}

/// A bucket's plain entries: (key, value).
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The plain entries of a top-level bucket (none when it is absent).
fn member_bucket<S: ReadAt>(
    db: &mut Db<S>,
    name: &[u8],
    label: &'static str,
) -> Result<Pairs, SnapshotError> {
    let root = db.root();
    let top = bucket_entries(db, &root)?;
    let Some(e) = top.iter().find(|e| e.bucket && e.key == name) else {
        return Ok(Vec::new());
    };
    let bucket = bucket_root(&e.value).map_err(|reason| SnapshotError::Bucket {
        bucket: label,
        reason,
    })?;
    Ok(bucket_entries(db, &bucket)?
        .into_iter()
        .filter(|e| !e.bucket)
        .map(|e| (e.key, e.value))
        .collect())
}

/// A member as the reports show it (`snapshot status`, `snapshot restore`): the ID in hex, and
/// etcd's JSON names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberSummary {
    pub id: String,
    pub name: String,
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs")]
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl From<&StoredMember> for MemberSummary {
    fn from(m: &StoredMember) -> MemberSummary {
        MemberSummary {
            id: hex_id(m.id),
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: m.client_urls.clone(),
            is_learner: m.is_learner,
        }
    }
}

impl From<&NewMember> for MemberSummary {
    fn from(m: &NewMember) -> MemberSummary {
        MemberSummary {
            id: hex_id(m.id),
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: Vec::new(),
            is_learner: false,
        }
    }
}

/// A member of the cluster being restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    pub name: String,
    pub id: u64,
    /// Normalized and sorted.
    pub peer_urls: Vec<String>,
}

/// The membership a restore creates: members in ascending ID order.
#[derive(Debug, Clone)]
pub struct Membership {
    pub members: Vec<NewMember>,
    pub local: u64,
    pub cluster_id: u64,
    pub token: String,
}

impl Membership {
    pub fn local_member(&self) -> Option<&NewMember> {
        self.members.iter().find(|m| m.id == self.local)
    }
}

/// `--initial-cluster` parsed: member name → its peer URLs, normalized and sorted.
pub type ClusterList = BTreeMap<String, Vec<String>>;

/// Why a membership is not one etcd would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    #[error("--initial-cluster: {0:?} is not NAME=URL")]
    NotNameUrl(String),
    #[error("{flag}: {reason}")]
    Url {
        flag: &'static str,
        reason: UrlError,
    },
    #[error(
        "couldn't find local name {0:?} in the initial cluster configuration (--initial-cluster)"
    )]
    LocalNameMissing(String),
    #[error("--initial-cluster has duplicate url {0}")]
    DuplicateUrl(String),
    #[error("member {0}: cannot use 0 as member id")]
    ZeroId(String),
    #[error(
        "--initial-cluster has {name}={listed} but --initial-advertise-peer-urls has {advertised}"
    )]
    AdvertiseMismatch {
        name: String,
        listed: String,
        advertised: String,
    },
    #[error("member exists with identical ID {id:x} ({a} and {b})")]
    SameId { id: u64, a: String, b: String },
    #[error("--initial-cluster lists more than {MAX_MEMBERS} members")]
    TooMany,
}

/// The most members a restore creates. etcd recommends 3 to 7; this bound keeps hostile lists
/// (and the commands printed per member) small.
pub const MAX_MEMBERS: usize = 128;

/// Why a peer URL is not one etcd accepts (etcd-io/etcd client/pkg/types/urls.go).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("URL scheme must be http, https, unix, or unixs: {0}")]
    Scheme(String),
    #[error("URL must not contain a path: {0}")]
    Path(String),
    #[error("URL must not contain user information: {0}")]
    UserInfo(String),
    #[error("URL address does not have the form \"host:port\": {0}")]
    HostPort(String),
    #[error("URL port must be 1 to 65535: {0}")]
    Port(String),
    #[error("URL host has a character no host name or address has: {0}")]
    Host(String),
}

/// Parse `--initial-cluster` (`NAME=URL,...`; a name may repeat for several URLs).
pub fn parse_initial_cluster(list: &str) -> Result<ClusterList, MemberError> {
    let mut by_name = ClusterList::new();
    for item in list.split(',').filter(|s| !s.trim().is_empty()) {
        let (n, url) = item
            .split_once('=')
            .ok_or_else(|| MemberError::NotNameUrl(item.to_string()))?;
        let url = normalize_url(url).map_err(|reason| MemberError::Url {
            flag: "--initial-cluster",
            reason,
        })?;
        by_name.entry(n.trim().to_string()).or_default().push(url);
        if by_name.len() > MAX_MEMBERS {
            return Err(MemberError::TooMany);
        }
    }
    for urls in by_name.values_mut() {
        urls.sort();
    }
    Ok(by_name)
}

/// Parse `--initial-advertise-peer-urls`: normalized and sorted.
pub fn parse_advertise(urls: &str) -> Result<Vec<String>, MemberError> {
    let mut v = urls
        .split(',')
        .filter(|u| !u.trim().is_empty())
        .map(normalize_url)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| MemberError::Url {
            flag: "--initial-advertise-peer-urls",
            reason,
        })?;
    v.sort();
    Ok(v)
}

/// Validate a membership against `--name` and `--initial-advertise-peer-urls` as etcd does
/// (etcd-io/etcd server/config/config.go, client/pkg/types/urls.go) and derive the member and
/// cluster IDs.
pub fn derive_membership(
    name: &str,
    list: &ClusterList,
    token: &str,
    advertised: &[String],
) -> Result<Membership, MemberError> {
    let local_urls = list
        .get(name)
        .ok_or_else(|| MemberError::LocalNameMissing(name.to_string()))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut members = Vec::new();
    for (n, urls) in list {
        if let Some(u) = urls.iter().find(|u| !seen.insert(u.to_string())) {
            return Err(MemberError::DuplicateUrl(u.clone()));
        }
        let id = member_id(urls, token);
        if id == 0 {
            return Err(MemberError::ZeroId(n.clone()));
        }
        members.push(NewMember {
            name: n.clone(),
            id,
            peer_urls: urls.clone(),
        });
    }
    if local_urls != advertised {
        return Err(MemberError::AdvertiseMismatch {
            name: name.to_string(),
            listed: local_urls.join(","),
            advertised: advertised.join(","),
        });
    }
    members.sort_by_key(|m| m.id);
    if let Some(w) = members.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(MemberError::SameId {
            id: w[0].id,
            a: w[0].name.clone(),
            b: w[1].name.clone(),
        });
    }
    let local = members
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.id)
        .unwrap_or_default();
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    Ok(Membership {
        cluster_id: cluster_id(&ids),
        members,
        local,
        token: token.to_string(),
    })
}

/// [`derive_membership`] from the flags' spellings (tests of the WAL and `.snap` writers).
#[cfg(test)]
pub fn membership_from_flags(
    name: &str,
    list: &str,
    token: &str,
    advertise: &str,
) -> Result<Membership, MemberError> {
    derive_membership(
        name,
        &parse_initial_cluster(list)?,
        token,
        &parse_advertise(advertise)?,
    )
}

/// A peer URL as etcd normalizes it: trimmed, scheme lower-cased, `scheme://host:port`, no
/// path; a host of letters, digits, `.-_:%` or a bracketed IPv6 address, a port 1..65535.
pub fn normalize_url(raw: &str) -> Result<String, UrlError> {
    let raw = raw.trim();
    let (scheme, rest) = raw
        .split_once("://")
        .ok_or_else(|| UrlError::Scheme(raw.to_string()))?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https" | "unix" | "unixs") {
        return Err(UrlError::Scheme(raw.to_string()));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(UrlError::Path(raw.to_string()));
    }
    if rest.contains('@') {
        return Err(UrlError::UserInfo(raw.to_string()));
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(UrlError::HostPort(raw.to_string()));
    };
    if host.is_empty() || port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(UrlError::HostPort(raw.to_string()));
    }
    if !matches!(port.parse::<u32>(), Ok(1..=65535)) {
        return Err(UrlError::Port(raw.to_string()));
    }
    let host_ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-_:%[]".contains(c));
    if !host_ok {
        return Err(UrlError::Host(raw.to_string()));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// First 8 bytes (big-endian) of SHA-1(sorted URLs concatenated ‖ token).
pub fn member_id(sorted_urls: &[String], token: &str) -> u64 {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    for u in sorted_urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    first_u64(&h.finalize())
}

/// First 8 bytes (big-endian) of SHA-1 over the member IDs, ascending, as 8-byte big-endian.
pub fn cluster_id(ids: &[u64]) -> u64 {
    use sha1::{Digest, Sha1};
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let mut h = Sha1::new();
    for id in sorted {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

/// The member JSON etcd stores in the `members` bucket and in ConfChange contexts:
/// `{"id":N,"peerURLs":[...],"name":"..."}` exactly as Go's encoding/json writes it.
pub fn member_json(m: &NewMember) -> String {
    let mut s = format!(
        "{{\"id\":{},\"peerURLs\":{}",
        m.id,
        go_string_list(&m.peer_urls)
    );
    if !m.name.is_empty() {
        s.push_str(",\"name\":");
        s.push_str(&go_json_string(&m.name));
    }
    s.push('}');
    s
}

/// The v2 store's `raftAttributes` value: `{"peerURLs":[...]}`.
pub fn raft_attributes_json(m: &NewMember) -> String {
    format!("{{\"peerURLs\":{}}}", go_string_list(&m.peer_urls))
}

fn go_string_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| go_json_string(s)).collect();
    format!("[{}]", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, list: &str, token: &str, advertise: &str) -> Result<Membership, String> {
        let list = parse_initial_cluster(list).map_err(|e| e.to_string())?;
        let advertised = parse_advertise(advertise).map_err(|e| e.to_string())?;
        derive_membership(name, &list, token, &advertised).map_err(|e| e.to_string())
    }

    // IDs from etcdutl 3.5.1 runs (docs/format.md, restore section).
    #[test]
    fn ids_match_etcd() {
        let m = plan(
            "default",
            "default=http://localhost:2380",
            "etcd-cluster",
            "http://localhost:2380",
        )
        .unwrap();
        assert_eq!(format!("{:x}", m.local), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", m.cluster_id), "cdf818194e3a8c32");

        let ic = "m1=http://127.0.0.1:12380,m2=http://127.0.0.2:12380,m3=http://127.0.0.3:12380";
        let m = plan("m1", ic, "tok-restore", "http://127.0.0.1:12380").unwrap();
        let ids: Vec<String> = m.members.iter().map(|x| format!("{:x}", x.id)).collect();
        assert_eq!(
            ids,
            ["5254e4654be8833f", "8babd0cbe19f0797", "d46128e04d9ee877"]
        );
        assert_eq!(format!("{:x}", m.cluster_id), "e1238eb99eb63873");
        assert_eq!(
            member_json(&m.members[0]),
            r#"{"id":5932617732870144831,"peerURLs":["http://127.0.0.1:12380"],"name":"m1"}"#
        );

        let ic = "a=http://127.0.0.9:2380,a=http://127.0.0.8:2380,b=https://127.0.0.7:2380";
        let m = plan(
            "a",
            ic,
            "etcd-cluster",
            "http://127.0.0.9:2380,http://127.0.0.8:2380",
        )
        .unwrap();
        assert_eq!(format!("{:x}", m.local), "32b3df762b822477");
        assert_eq!(format!("{:x}", m.cluster_id), "bb91171c543c7a42");
        assert_eq!(
            m.local_member().unwrap().peer_urls,
            ["http://127.0.0.8:2380", "http://127.0.0.9:2380"]
        );
    }

    #[test]
    fn bad_clusters_name_the_problem() {
        let e = plan("x", "a=http://h:1", "t", "http://h:1").unwrap_err();
        assert!(e.contains("couldn't find local name \"x\""), "{e}");
        let e = plan("a", "a=http://h:1", "t", "http://h:2").unwrap_err();
        assert!(
            e.contains("--initial-advertise-peer-urls has http://h:2"),
            "{e}"
        );
        let e = plan("a", "a=http://h:1,b=http://h:1", "t", "http://h:1").unwrap_err();
        assert!(e.contains("duplicate url"), "{e}");
        let e = plan("a", "a=ftp://h:1", "t", "ftp://h:1").unwrap_err();
        assert!(e.contains("URL scheme must be"), "{e}");
        let e = plan("a", "a=http://h:1/x", "t", "http://h:1/x").unwrap_err();
        assert!(e.contains("must not contain a path"), "{e}");
        let e = plan("a", "a=http://h", "t", "http://h").unwrap_err();
        assert!(e.contains("host:port"), "{e}");
        let e = plan("a", "a", "t", "http://h:1").unwrap_err();
        assert!(e.contains("NAME=URL"), "{e}");
        let e = plan("a", "a=http://h:99999", "t", "http://h:99999").unwrap_err();
        assert!(e.contains("port must be 1 to 65535"), "{e}");
        let e = plan("a", "a=http://h;x:1", "t", "http://h;x:1").unwrap_err();
        assert!(e.contains("URL host"), "{e}");
        assert!(normalize_url("https://[::1]:2380").is_ok());
        let many: Vec<String> = (0..=MAX_MEMBERS)
            .map(|i| format!("m{i}=http://h:{}", i + 1))
            .collect();
        let e = plan("m0", &many.join(","), "t", "http://h:1").unwrap_err();
        assert!(e.contains("more than 128 members"), "{e}");
    }
}
