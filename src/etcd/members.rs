//! Cluster members as etcd stores them in the `members` bucket: key = member ID in lower-case
//! hex without leading zeros, value = JSON `{"id","peerURLs","name","clientURLs"?,"isLearner"?}`.
//! Mirrors etcd-io/etcd server/etcdserver/api/membership/member.go and store.go.

use serde::{Deserialize, Serialize};

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
    pub fn parse(value: &[u8]) -> Result<StoredMember, String> {
        serde_json::from_slice(value).map_err(|e| format!("member JSON: {e}"))
    }
}
