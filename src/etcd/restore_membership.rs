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
//!    second two, ...), and keeps members that were later replaced. When the snapshot holds
//!    more than one member, the membership is the snapshot's own member list (peer URLs). This
//!    node must be a member of it, at its peer URL, under its name (or an unknown one), or the
//!    restore is refused; the manifest's other entries only complete names, and entries that
//!    contradict the snapshot are ignored with a note. A learner in the snapshot is refused
//!    (a restore makes every member a voter), with one exception: etcd before 3.5.20 never
//!    wrote a promotion into the `members` bucket, so every control plane kubeadm joined as a
//!    learner and promoted is still stored as one. In a file without `meta/storageVersion`
//!    (written before 3.6, which repairs the flag), a learner that the manifest's
//!    `--initial-cluster` names at the same peer URL is taken as the voter it is, with a note.
//!    A one-member snapshot restored by a node whose manifest names one member is a new
//!    one-member cluster on that node, as before.
//!
//! Names: etcd 3.5 does not store the names of members that joined with `member add`. A
//! missing name is completed from the manifest or this node's `--name`, else it becomes the
//! placeholder `unnamed-<ID>` (the member's ID in the snapshot). This is safe: member and
//! cluster IDs depend only on peer URLs and the token, and every member publishes its own
//! `--name` when it starts, replacing whatever name the restore wrote (the HA drill in
//! tests/it/ha_restore.rs shows the three real names after boot). A node that finds its peer URL
//! under a placeholder takes the placeholder as its own member.

use super::stored_members::{
    derive_membership, parse_advertise, parse_initial_cluster, ClusterList, MemberError,
    Membership, StoredMember, MAX_MEMBERS,
};

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
    /// The snapshot has `meta/storageVersion` (etcd 3.6+): its `isLearner` flags are right.
    /// Without it (3.4, 3.5) a promotion may never have been stored.
    pub learners_trusted: bool,
}

/// The decided membership.
#[derive(Debug, Clone)]
pub struct Decision {
    pub membership: Membership,
    /// The membership as every other member restores it (placeholders included).
    pub shared: ClusterList,
    pub source: Source,
    /// What was ignored on the way, for the operator.
    pub notes: Vec<String>,
}

impl Decision {
    /// `--initial-cluster` that reproduces the membership on every other node.
    pub fn initial_cluster(&self) -> String {
        render(&self.shared)
    }

    /// The name under which the shared list knows the member with `urls`.
    pub fn shared_name(&self, urls: &[String]) -> Option<&str> {
        self.shared
            .iter()
            .find(|(_, u)| u.as_slice() == urls)
            .map(|(n, _)| n.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MembershipError {
    /// Bad `--initial-cluster`, name or URLs, as etcd would refuse them.
    #[error(transparent)]
    Invalid(#[from] MemberError),
    #[error("this node ({name}, {urls}) is not a member of the snapshot's cluster ({members}); the manifest and the snapshot disagree. To restore into a new membership, pass the same --initial-cluster on every node")]
    NotAMember {
        name: String,
        urls: String,
        members: String,
    },
    #[error("this node: the snapshot has {name} at {snapshot} but this node's --initial-advertise-peer-urls is {given}; pass --initial-cluster to choose")]
    PeerUrlDiffers {
        name: String,
        snapshot: String,
        given: String,
    },
    #[error("this node is {given:?} but the snapshot names the member at {urls} {stored:?}; pass --initial-cluster to choose")]
    NameDiffers {
        urls: String,
        given: String,
        stored: String,
    },
    #[error("the snapshot holds learner {0} (a restore makes every member a voter); pass --initial-cluster with the voting members on every node")]
    Learner(String),
    #[error("the snapshot stores {0} as a learner, and etcd before 3.5.20 never stored a promotion: if it is a voter, restore first on a node whose manifest's --initial-cluster names every member (the control plane kubeadm joined last), or pass the same --initial-cluster with the voting members on every node")]
    UnvouchedLearner(String),
    #[error(
        "the snapshot holds member {0:x} without a peer URL; pass --initial-cluster on every node"
    )]
    NoPeerUrl(u64),
    #[error("the snapshot names a member {0:?}, which cannot stand in --initial-cluster; pass --initial-cluster on every node")]
    BadName(String),
    #[error("the snapshot holds two members named {0:?}")]
    DuplicateName(String),
}

/// Decide the membership (see the module docs for the rules).
pub fn decide(i: &Inputs) -> Result<Decision, MembershipError> {
    if let Some(list) = i.flag {
        return from_list(i, list, Source::Flag);
    }
    if i.from_manifest {
        let manifest = parse_initial_cluster(i.manifest.unwrap_or_default())?;
        // One member in the snapshot and the manifest names one member (this node): a new
        // one-member cluster on this node, wherever the snapshot came from.
        if i.snapshot.len() > 1 || manifest.len() > 1 {
            return from_snapshot(i, &manifest);
        }
        if let Some(list) = i.manifest {
            return from_list(i, list, Source::ThisNode);
        }
    }
    from_list(i, &format!("{}={}", i.name, i.advertise), Source::ThisNode)
}

fn render(members: &ClusterList) -> String {
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
    let shared = parse_initial_cluster(list)?;
    let mine = parse_advertise(i.advertise)?;
    let mut members = shared.clone();
    if !members.contains_key(i.name) {
        let adopt = members
            .iter()
            .find(|(n, urls)| n.starts_with(PLACEHOLDER) && **urls == mine)
            .map(|(n, _)| n.clone());
        if let Some(urls) = adopt.and_then(|p| members.remove(&p)) {
            members.insert(i.name.to_string(), urls);
        }
    }
    let membership = derive_membership(i.name, &members, i.token, &mine)?;
    Ok(Decision {
        membership,
        shared,
        source,
        notes: Vec::new(),
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

/// The snapshot's members, with normalized URLs; refused when a restore cannot reproduce them.
/// Learners are refused but those [`promoted_learner`] finds promoted (with a note).
fn slots(
    i: &Inputs,
    manifest: &ClusterList,
    notes: &mut Vec<String>,
) -> Result<Vec<Slot>, MembershipError> {
    if i.snapshot.len() > MAX_MEMBERS {
        return Err(MemberError::TooMany.into());
    }
    let mut slots = Vec::new();
    for m in i.snapshot {
        if m.is_learner {
            let who = if m.name.is_empty() {
                format!("{:x}", m.id)
            } else {
                m.name.clone()
            };
            match promoted_learner(i, m, manifest) {
                Some(note) => notes.push(note),
                None if i.learners_trusted => return Err(MembershipError::Learner(who)),
                None => return Err(MembershipError::UnvouchedLearner(who)),
            }
        }
        let list = m.peer_urls.join(",");
        let urls = parse_advertise(&list).map_err(|e| match e {
            MemberError::Url { reason, .. } => MemberError::Url {
                flag: "the snapshot's member list",
                reason,
            },
            other => other,
        })?;
        if urls.is_empty() {
            return Err(MembershipError::NoPeerUrl(m.id));
        }
        let unusable = |c: char| c == ',' || c == '=' || c.is_whitespace() || c.is_control();
        if m.name.contains(unusable) {
            return Err(MembershipError::BadName(m.name.clone()));
        }
        slots.push(Slot {
            id: m.id,
            urls,
            name: m.name.clone(),
        });
    }
    Ok(slots)
}

/// A learner of a pre-3.6 file that the manifest's `--initial-cluster` names at its peer URLs:
/// the note that says it is restored as a voter, or `None` (a learner to refuse).
fn promoted_learner(i: &Inputs, m: &StoredMember, manifest: &ClusterList) -> Option<String> {
    if i.learners_trusted {
        return None;
    }
    let urls = parse_advertise(&m.peer_urls.join(",")).ok()?;
    let (name, _) = manifest.iter().find(|(_, u)| **u == urls)?;
    Some(format!(
        "note: the snapshot stores {name} ({}) as a learner; etcd before 3.5.20 never stored a promotion (kubeadm joins every control plane as a learner and promotes it), and this node's --initial-cluster names it at that peer URL: restored as a voter",
        urls.join(",")
    ))
}

/// This node in the snapshot's member list: at its peer URLs, under its name or an unknown one.
fn claim_this_node(slots: &mut [Slot], name: &str, urls: &[String]) -> Result<(), MembershipError> {
    if let Some(s) = slots.iter_mut().find(|s| s.urls == urls) {
        if s.name.is_empty() || s.name == name {
            s.name = name.to_string();
            return Ok(());
        }
        return Err(MembershipError::NameDiffers {
            urls: urls.join(","),
            given: name.to_string(),
            stored: s.name.clone(),
        });
    }
    if let Some(s) = slots.iter().find(|s| s.name == name) {
        return Err(MembershipError::PeerUrlDiffers {
            name: name.to_string(),
            snapshot: s.urls.join(","),
            given: urls.join(","),
        });
    }
    Err(MembershipError::NotAMember {
        name: name.to_string(),
        urls: urls.join(","),
        members: describe(slots),
    })
}

/// Names for the snapshot's unnamed members from the manifest's `--initial-cluster`; entries
/// that contradict the snapshot (members since replaced, say) are ignored with a note.
fn names_from_manifest(slots: &mut [Slot], manifest: &ClusterList) -> Vec<String> {
    let mut notes = Vec::new();
    for (name, urls) in manifest {
        let taken = slots.iter().any(|s| s.name == *name && s.urls != *urls);
        match slots.iter_mut().find(|s| s.urls == *urls) {
            Some(s) if s.name == *name => {}
            Some(s) if s.name.is_empty() && !taken => s.name = name.clone(),
            _ => notes.push(format!(
                "note: the manifest's --initial-cluster lists {name}={}, which the snapshot's member list does not have as such; ignored (the snapshot decides the membership)",
                urls.join(",")
            )),
        }
    }
    notes
}

/// The snapshot's members, checked against and named from this node and the manifest.
fn from_snapshot(i: &Inputs, manifest: &ClusterList) -> Result<Decision, MembershipError> {
    let mut notes = Vec::new();
    let mut slots = slots(i, manifest, &mut notes)?;
    let mine = parse_advertise(i.advertise)?;
    claim_this_node(&mut slots, i.name, &mine)?;
    notes.extend(names_from_manifest(&mut slots, manifest));
    let mut shared = ClusterList::new();
    for s in &slots {
        let name = if s.name.is_empty() {
            format!("{PLACEHOLDER}{:x}", s.id)
        } else {
            s.name.clone()
        };
        if shared.insert(name.clone(), s.urls.clone()).is_some() {
            return Err(MembershipError::DuplicateName(name));
        }
    }
    let membership = derive_membership(i.name, &shared, i.token, &mine)?;
    Ok(Decision {
        membership,
        shared,
        source: Source::Snapshot,
        notes,
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
            learners_trusted: false,
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
            d1.initial_cluster(),
            format!("cp1={U1},unnamed-22={U2},unnamed-33={U3}")
        );
        assert_eq!(d3.initial_cluster(), l3);

        // The command printed on cp1, run on cp2 and cp3: they adopt their placeholders.
        for (name, url, list) in [("cp2", U2, &l2), ("cp3", U3, &l3)] {
            let d = decide(&on_node(
                name,
                url,
                list,
                Some(&d1.initial_cluster()),
                &snap,
            ))
            .unwrap();
            assert_eq!(d.source, Source::Flag);
            assert_eq!(d.membership.cluster_id, d1.membership.cluster_id);
            assert_eq!(d.membership.local_member().unwrap().name, name);
        }
        // Different local members, one cluster.
        assert_ne!(d1.membership.local, d2.membership.local);
    }

    #[test]
    fn contradictions_about_this_node_are_refused() {
        let snap = kubeadm_snapshot();
        let u9 = "https://10.0.0.9:2380";
        let e = decide(&on_node("cp9", u9, &format!("cp9={u9}"), None, &snap)).unwrap_err();
        assert!(matches!(e, MembershipError::NotAMember { .. }), "{e}");
        let moved = "https://10.0.0.1:2390";
        let e = decide(&on_node("cp1", moved, &format!("cp1={moved}"), None, &snap)).unwrap_err();
        assert!(matches!(e, MembershipError::PeerUrlDiffers { .. }), "{e}");
        assert!(e.to_string().contains(moved), "{e}");
        let e = decide(&on_node("cpx", U1, &format!("cpx={U1}"), None, &snap)).unwrap_err();
        assert!(matches!(e, MembershipError::NameDiffers { .. }), "{e}");
        // A placeholder is adopted only at this node's own URL, and a real name never is.
        let l1 = format!("cp1={U1}");
        let flag = format!("cp1={U1},unnamed-22={U2},unnamed-33={U3}");
        let e = decide(&on_node("cp2", U1, &l1, Some(&flag), &snap)).unwrap_err();
        assert!(e.to_string().contains("couldn't find local name"), "{e}");
        let e = decide(&on_node("cp2", u9, &l1, Some(&flag), &snap)).unwrap_err();
        assert!(e.to_string().contains("couldn't find local name"), "{e}");
    }

    /// kubeadm keeps members that were replaced in the older nodes' manifests: such entries
    /// are ignored with a note, never a refusal, and never a name.
    #[test]
    fn stale_manifest_entries_are_ignored_with_a_note() {
        let snap = kubeadm_snapshot();
        let replaced = format!("cp1={U1},old2=https://10.0.0.5:2380,cp2={U3}");
        let d = decide(&on_node("cp1", U1, &replaced, None, &snap)).unwrap();
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        assert!(
            d.notes[0].contains("old2=https://10.0.0.5:2380"),
            "{:?}",
            d.notes
        );
        // cp2 at U3 named the member at U3 (nameless in the snapshot): taken.
        assert_eq!(d.shared_name(&[U3.to_string()]), Some("cp2"));
        let fresh = decide(&on_node("cp1", U1, &format!("cp1={U1}"), None, &snap)).unwrap();
        assert_eq!(d.membership.cluster_id, fresh.membership.cluster_id);
    }

    /// etcd before 3.5.20 leaves promoted members stored as learners: in a file without
    /// storageVersion, a learner the manifest names at its peer URL is a voter (with a note);
    /// one it does not name is refused; in a 3.6 file the flag is trusted.
    #[test]
    fn learners_the_manifest_names_are_promoted_members_of_pre_3_6_files() {
        let mut snap = kubeadm_snapshot();
        snap[1].is_learner = true;
        let l2 = format!("cp1={U1},cp2={U2}");
        let d = decide(&on_node("cp1", U1, &l2, None, &snap)).unwrap();
        assert_eq!(d.membership.members.len(), 3);
        assert!(
            d.notes
                .iter()
                .any(|n| n.contains("cp2 (https://10.0.0.2:2380) as a learner")),
            "{:?}",
            d.notes
        );
        let plain = decide(&on_node("cp1", U1, &l2, None, &kubeadm_snapshot())).unwrap();
        assert_eq!(d.membership.cluster_id, plain.membership.cluster_id);
        // Named at another URL, or not at all: still a learner.
        let elsewhere = format!("cp1={U1},cp2=https://10.0.0.8:2380");
        let e = decide(&on_node("cp1", U1, &elsewhere, None, &snap)).unwrap_err();
        assert!(matches!(e, MembershipError::UnvouchedLearner(_)), "{e}");
        let mut v3_6 = on_node("cp1", U1, &l2, None, &snap);
        v3_6.learners_trusted = true;
        assert!(matches!(decide(&v3_6), Err(MembershipError::Learner(_))));
    }

    #[test]
    fn snapshots_a_restore_cannot_reproduce_are_refused() {
        let mut snap = kubeadm_snapshot();
        snap[2].is_learner = true;
        let l1 = format!("cp1={U1}");
        let e = decide(&on_node("cp1", U1, &l1, None, &snap)).unwrap_err();
        assert!(matches!(e, MembershipError::UnvouchedLearner(_)), "{e}");
        let mut snap = kubeadm_snapshot();
        snap[1].name = "cp2,x=http://evil:1".into();
        let e = decide(&on_node("cp1", U1, &l1, None, &snap)).unwrap_err();
        assert!(matches!(e, MembershipError::BadName(_)), "{e}");
        let mut snap = kubeadm_snapshot();
        snap[1].peer_urls.clear();
        let e = decide(&on_node("cp1", U1, &l1, None, &snap)).unwrap_err();
        assert!(matches!(e, MembershipError::NoPeerUrl(0x22)), "{e}");
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
            learners_trusted: true,
        };
        let d = decide(&i).unwrap();
        assert_eq!(format!("{:x}", d.membership.cluster_id), "cdf818194e3a8c32");
    }
}
