//! Which members a restore creates, decided the same way on every node.
//!
//! A restore writes the whole membership into every member's data dir, and the cluster ID is a
//! hash of the member IDs, each a hash of its peer URLs and the token. Nodes that decide
//! different memberships form different clusters: split brain. So the decision may only use
//! what every node sees alike.
//!
//! 1. An explicit `--initial-cluster` wins (etcdutl's rule). The printed commands for the other
//!    members pass it explicitly, so every node restores the same list.
//! 2. With `--from-manifest` and no explicit list, the manifest's `--initial-cluster` is *not*
//!    the membership: kubeadm writes a growing list (the first node names only itself, the
//!    second two, ...). When the snapshot holds more than one member, the membership is the
//!    snapshot's own member list (peer URLs); the manifest only checks it (this node must be a
//!    member, at its peer URL, under its name; every member the manifest names must match)
//!    and completes names. A one-member snapshot restored by a node whose manifest names one
//!    member is a new one-member cluster on that node, as before.
//!
//! Names: etcd 3.5 does not store the names of members that joined with `member add`. A
//! missing name is completed from the manifest or this node's `--name`, else it becomes the
//! placeholder `unnamed-<ID>` (the member's ID in the snapshot). This is safe: member and
//! cluster IDs depend only on peer URLs and the token, and every member publishes its own
//! `--name` when it starts, replacing whatever name the restore wrote (the HA drill in
//! tests/snapshot_restore.rs shows the three real names after boot). A node that finds its
//! peer URL under a placeholder takes the placeholder as its own member.

use std::collections::BTreeMap;

use super::members::{normalize_url, plan, Membership, StoredMember};

/// Prefix of the names given to members the snapshot holds no name for.
pub const PLACEHOLDER: &str = "unnamed-";

/// What the membership is decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `--initial-cluster` on the command line.
    Flag,
    /// This node alone (`--name=--initial-advertise-peer-urls`), or the manifest's one-member list.
    ThisNode,
    /// The snapshot's member list.
    Snapshot,
}

/// This node and what the command line or manifest say about the cluster.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub name: &'a str,
    pub advertise: &'a str,
    pub token: &'a str,
    /// `--initial-cluster` given on the command line.
    pub flag: Option<&'a str>,
    /// The manifest's `--initial-cluster` (only with `--from-manifest`).
    pub manifest: Option<&'a str>,
    /// Whether `--from-manifest` was given: only then does the snapshot decide.
    pub from_manifest: bool,
    /// The members stored in the snapshot.
    pub snapshot: &'a [StoredMember],
}

/// The decided membership.
#[derive(Debug, Clone)]
pub struct Decision {
    pub membership: Membership,
    /// `--initial-cluster` that reproduces it on every other node (placeholders included).
    pub initial_cluster: String,
    pub source: Source,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MembershipError {
    /// Bad `--initial-cluster`, name or URLs, as etcd would refuse them.
    #[error("{0}")]
    Invalid(String),
    #[error("this node ({name}, {urls}) is not a member of the snapshot's cluster ({members}); the manifest and the snapshot disagree. To restore into a new membership, pass the same --initial-cluster on every node")]
    NotAMember {
        name: String,
        urls: String,
        members: String,
    },
    #[error("{who}: the snapshot has {name} at {snapshot} but {place} says {given}; pass --initial-cluster to choose")]
    PeerUrlDiffers {
        who: String,
        name: String,
        snapshot: String,
        place: &'static str,
        given: String,
    },
    #[error("{place} names the member at {urls} {given:?} but the snapshot names it {stored:?}; pass --initial-cluster to choose")]
    NameDiffers {
        urls: String,
        given: String,
        stored: String,
        place: &'static str,
    },
    #[error("the manifest's --initial-cluster lists {name}={urls}, which the snapshot's cluster does not have ({members}); pass --initial-cluster to restore into a new membership")]
    NotInSnapshot {
        name: String,
        urls: String,
        members: String,
    },
    #[error("the snapshot holds two members named {0:?}")]
    DuplicateName(String),
}

/// Decide the membership (see the module docs for the rules).
pub fn decide(i: &Inputs) -> Result<Decision, MembershipError> {
    if let Some(list) = i.flag {
        return from_list(i, list, Source::Flag);
    }
    if i.from_manifest && i.snapshot.len() > 1 {
        return from_snapshot(i);
    }
    let list = match i.manifest {
        Some(list) if i.from_manifest => list.to_string(),
        _ => format!("{}={}", i.name, i.advertise),
    };
    if i.from_manifest {
        // One member in the snapshot: the manifest's list, if it names this node alone.
        let entries = parse_list(&list)?;
        if entries.len() > 1 {
            return from_snapshot(i);
        }
    }
    from_list(i, &list, Source::ThisNode)
}

/// `NAME=URL,...` grouped by name, URLs normalized and sorted.
fn parse_list(list: &str) -> Result<BTreeMap<String, Vec<String>>, MembershipError> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in list.split(',').filter(|s| !s.trim().is_empty()) {
        let (n, url) = item.split_once('=').ok_or_else(|| {
            MembershipError::Invalid(format!("--initial-cluster: {item:?} is not NAME=URL"))
        })?;
        let url = normalize_url(url)
            .map_err(|e| MembershipError::Invalid(format!("--initial-cluster: {e}")))?;
        by_name.entry(n.trim().to_string()).or_default().push(url);
    }
    for urls in by_name.values_mut() {
        urls.sort();
    }
    Ok(by_name)
}

fn sorted_urls(s: &str) -> Result<Vec<String>, MembershipError> {
    let mut v = s
        .split(',')
        .filter(|u| !u.trim().is_empty())
        .map(normalize_url)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MembershipError::Invalid(format!("--initial-advertise-peer-urls: {e}")))?;
    v.sort();
    Ok(v)
}

fn render(members: &BTreeMap<String, Vec<String>>) -> String {
    let mut parts = Vec::new();
    for (name, urls) in members {
        for u in urls {
            parts.push(format!("{name}={u}"));
        }
    }
    parts.join(",")
}

/// An explicit list: etcd's own rules, except that a node whose name is not listed takes the
/// placeholder listed at its peer URLs.
fn from_list(i: &Inputs, list: &str, source: Source) -> Result<Decision, MembershipError> {
    let mut members = parse_list(list)?;
    let shared = render(&members);
    if !members.contains_key(i.name) {
        let mine = sorted_urls(i.advertise)?;
        let adopt = members
            .iter()
            .find(|(n, urls)| n.starts_with(PLACEHOLDER) && **urls == mine)
            .map(|(n, _)| n.clone());
        if let Some(placeholder) = adopt {
            if let Some(urls) = members.remove(&placeholder) {
                members.insert(i.name.to_string(), urls);
            }
        }
    }
    let membership =
        plan(i.name, &render(&members), i.token, i.advertise).map_err(MembershipError::Invalid)?;
    Ok(Decision {
        membership,
        initial_cluster: shared,
        source,
    })
}

/// A member of the snapshot while names are being completed.
struct Slot {
    /// The ID stored in the snapshot (the restore derives a new one from URLs and token).
    id: u64,
    urls: Vec<String>,
    name: String,
}

fn describe(slots: &[Slot]) -> String {
    slots
        .iter()
        .map(|s| {
            let n = if s.name.is_empty() {
                "(no name)"
            } else {
                &s.name
            };
            format!("{n}={}", s.urls.join(","))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Give the snapshot member at `urls` the name `name`, or say why that contradicts it.
fn claim(
    slots: &mut [Slot],
    name: &str,
    urls: &[String],
    place: &'static str,
    this_node: bool,
) -> Result<(), MembershipError> {
    if let Some(s) = slots.iter_mut().find(|s| s.urls == urls) {
        if s.name.is_empty() || s.name == name {
            s.name = name.to_string();
            return Ok(());
        }
        return Err(MembershipError::NameDiffers {
            urls: urls.join(","),
            given: name.to_string(),
            stored: s.name.clone(),
            place,
        });
    }
    if let Some(s) = slots.iter().find(|s| s.name == name) {
        return Err(MembershipError::PeerUrlDiffers {
            who: if this_node {
                "this node".into()
            } else {
                name.to_string()
            },
            name: name.to_string(),
            snapshot: s.urls.join(","),
            place,
            given: urls.join(","),
        });
    }
    let (name, urls, members) = (name.to_string(), urls.join(","), describe(slots));
    Err(if this_node {
        MembershipError::NotAMember {
            name,
            urls,
            members,
        }
    } else {
        MembershipError::NotInSnapshot {
            name,
            urls,
            members,
        }
    })
}

/// The snapshot's members, checked against and named from this node and the manifest.
fn from_snapshot(i: &Inputs) -> Result<Decision, MembershipError> {
    let mut slots = Vec::new();
    for m in i.snapshot {
        let mut urls = m
            .peer_urls
            .iter()
            .map(|u| normalize_url(u))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| MembershipError::Invalid(format!("snapshot member {:x}: {e}", m.id)))?;
        urls.sort();
        slots.push(Slot {
            id: m.id,
            urls,
            name: m.name.clone(),
        });
    }
    let mine = sorted_urls(i.advertise)?;
    claim(
        &mut slots,
        i.name,
        &mine,
        "this node's --name/--initial-advertise-peer-urls",
        true,
    )?;
    if let Some(list) = i.manifest {
        for (name, urls) in parse_list(list)? {
            claim(
                &mut slots,
                &name,
                &urls,
                "the manifest's --initial-cluster",
                false,
            )?;
        }
    }
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &slots {
        let name = if s.name.is_empty() {
            format!("{PLACEHOLDER}{:x}", s.id)
        } else {
            s.name.clone()
        };
        if members.insert(name.clone(), s.urls.clone()).is_some() {
            return Err(MembershipError::DuplicateName(name));
        }
    }
    let shared = render(&members);
    let membership =
        plan(i.name, &shared, i.token, i.advertise).map_err(MembershipError::Invalid)?;
    Ok(Decision {
        membership,
        initial_cluster: shared,
        source: Source::Snapshot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "https://10.0.0.1:2380";
    const U2: &str = "https://10.0.0.2:2380";
    const U3: &str = "https://10.0.0.3:2380";

    /// A kubeadm-joined cluster as etcd 3.5.1 stores it: the first member named, the two that
    /// joined with `member add` nameless.
    fn kubeadm_snapshot() -> Vec<StoredMember> {
        [(0x11, "cp1", U1), (0x22, "", U2), (0x33, "", U3)]
            .into_iter()
            .map(|(id, name, url)| StoredMember {
                id,
                peer_urls: vec![url.to_string()],
                name: name.to_string(),
                client_urls: Vec::new(),
                is_learner: false,
            })
            .collect()
    }

    fn on_node<'a>(
        name: &'a str,
        url: &'a str,
        manifest: &'a str,
        flag: Option<&'a str>,
        snapshot: &'a [StoredMember],
    ) -> Inputs<'a> {
        Inputs {
            name,
            advertise: url,
            token: "etcd-cluster",
            flag,
            manifest: Some(manifest),
            from_manifest: true,
            snapshot,
        }
    }

    #[test]
    fn kubeadm_growing_lists_decide_one_cluster_on_every_node() {
        let snap = kubeadm_snapshot();
        let l1 = format!("cp1={U1}");
        let l2 = format!("cp1={U1},cp2={U2}");
        let l3 = format!("cp1={U1},cp2={U2},cp3={U3}");
        let d1 = decide(&on_node("cp1", U1, &l1, None, &snap)).unwrap();
        let d2 = decide(&on_node("cp2", U2, &l2, None, &snap)).unwrap();
        let d3 = decide(&on_node("cp3", U3, &l3, None, &snap)).unwrap();
        assert_eq!(d1.source, Source::Snapshot);
        assert_eq!(d1.membership.members.len(), 3);
        assert_eq!(d1.membership.cluster_id, d2.membership.cluster_id);
        assert_eq!(d1.membership.cluster_id, d3.membership.cluster_id);
        assert_eq!(
            d1.initial_cluster,
            format!("cp1={U1},unnamed-22={U2},unnamed-33={U3}")
        );
        assert_eq!(d3.initial_cluster, l3);

        // The command printed on cp1, run on cp2 and cp3: they adopt their placeholders.
        for (name, url, list) in [("cp2", U2, &l2), ("cp3", U3, &l3)] {
            let d = decide(&on_node(name, url, list, Some(&d1.initial_cluster), &snap)).unwrap();
            assert_eq!(d.source, Source::Flag);
            assert_eq!(d.membership.cluster_id, d1.membership.cluster_id);
            assert_eq!(d.membership.local_member().unwrap().name, name);
        }
        // Different local members, one cluster.
        assert_ne!(d1.membership.local, d2.membership.local);
    }

    #[test]
    fn contradictions_are_refused() {
        let snap = kubeadm_snapshot();
        let l1 = format!("cp1={U1}");
        let e = decide(&on_node(
            "cp9",
            "https://10.0.0.9:2380",
            "cp9=https://10.0.0.9:2380",
            None,
            &snap,
        ))
        .unwrap_err();
        assert!(matches!(e, MembershipError::NotAMember { .. }), "{e}");
        let e = decide(&on_node(
            "cp1",
            "https://10.0.0.1:2390",
            "cp1=https://10.0.0.1:2390",
            None,
            &snap,
        ))
        .unwrap_err();
        assert!(matches!(e, MembershipError::PeerUrlDiffers { .. }), "{e}");
        assert!(e.to_string().contains("https://10.0.0.1:2390"), "{e}");
        let e = decide(&on_node("cpx", U1, &format!("cpx={U1}"), None, &snap)).unwrap_err();
        assert!(matches!(e, MembershipError::NameDiffers { .. }), "{e}");
        let extra = format!("{l1},cp4=https://10.0.0.4:2380");
        let e = decide(&on_node("cp1", U1, &extra, None, &snap)).unwrap_err();
        assert!(matches!(e, MembershipError::NotInSnapshot { .. }), "{e}");
        // A placeholder is adopted only at this node's own URL, and a real name never is.
        let flag = format!("cp1={U1},unnamed-22={U2},unnamed-33={U3}");
        let e = decide(&on_node("cp2", U1, &l1, Some(&flag), &snap)).unwrap_err();
        assert!(e.to_string().contains("couldn't find local name"), "{e}");
        let e = decide(&on_node(
            "cp2",
            "https://10.0.0.9:2380",
            &l1,
            Some(&flag),
            &snap,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("couldn't find local name"), "{e}");
    }

    #[test]
    fn one_member_and_explicit_lists_keep_etcdutl_rules() {
        let one = &kubeadm_snapshot()[..1];
        // A one-member snapshot restored onto a one-member manifest: a cluster of this node,
        // wherever the snapshot came from.
        let d = decide(&on_node(
            "new",
            "https://10.0.0.7:2380",
            "new=https://10.0.0.7:2380",
            None,
            one,
        ))
        .unwrap();
        assert_eq!(d.source, Source::ThisNode);
        assert_eq!(d.membership.members.len(), 1);
        // ... but onto a node whose manifest names more members: refused.
        let l2 = format!("cp1={U1},cp2={U2}");
        assert!(decide(&on_node("cp2", U2, &l2, None, one)).is_err());
        // Without --from-manifest the snapshot's members play no part.
        let snap = kubeadm_snapshot();
        let i = Inputs {
            name: "default",
            advertise: "http://localhost:2380",
            token: "etcd-cluster",
            flag: None,
            manifest: None,
            from_manifest: false,
            snapshot: &snap,
        };
        let d = decide(&i).unwrap();
        assert_eq!(format!("{:x}", d.membership.cluster_id), "cdf818194e3a8c32");
    }
}
