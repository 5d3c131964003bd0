//! The kubeadm HA restore drill, done as an operator does it: a 3-member cluster built the
//! kubeadm way (growing `--initial-cluster` in each node's manifest), saved, stopped, restored
//! on the first node with the user's command and on the others with exactly the commands
//! etcdops printed, then started from the updated manifests as kubelet would. One cluster must
//! come back, never three. Also: manifests that contradict the snapshot are refused.

use crate::common::s;
use std::path::PathBuf;

use crate::common::cluster::{free_port, write_kubeadm_manifest_with, Cluster, Kv, Version};
use crate::common::run::{args, etcdops, run_printed, Run};
use serde_json::Value;

/// A kubeadm-joined 3-member cluster with 300 keys and one static-pod manifest per node (each
/// in its own `etc/kubernetes/manifests`), saved with zero flags on node 1.
struct Drill {
    cluster: Cluster,
    manifests: Vec<PathBuf>,
    snapshot: PathBuf,
    dump: Vec<Kv>,
    revision: i64,
}

impl Drill {
    fn new(version: Version) -> Drill {
        let (cluster, lists) = Cluster::start_kubeadm_way(version, 3);
        let mut manifests = Vec::new();
        for (i, list) in lists.iter().enumerate() {
            let dir = cluster
                .dir
                .path()
                .join(format!("node{}/etc/kubernetes/manifests", i + 1));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("etcd.yaml");
            write_kubeadm_manifest_with(&cluster, i, &path, list, i > 0);
            manifests.push(path);
        }
        let mut tc = cluster.client(None);
        let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..300)
            .map(|i| {
                (
                    format!("/registry/configmaps/default/cm{i}").into_bytes(),
                    format!("value {i}").into_bytes(),
                )
            })
            .collect();
        tc.put_all(&kvs, 50);
        let dump = tc.dump();
        let snapshot = cluster.dir.path().join("snap.db");
        let r = etcdops(
            &["snapshot", "save", &s(&snapshot)],
            &[("ETCDOPS_MANIFEST", &s(&manifests[0]))],
        );
        assert_eq!(r.code, 0, "{r:?}");
        let revision = tc
            .rt
            .block_on(tc.client.get("/", None))
            .unwrap()
            .header()
            .unwrap()
            .revision();
        // Written after the save: the restore must not have it.
        tc.rt
            .block_on(tc.client.put("/registry/lost", "after the backup", None))
            .unwrap();
        Drill {
            cluster,
            manifests,
            snapshot,
            dump,
            revision,
        }
    }

    /// Run etcdops on node `i` (its manifest is the one `--from-manifest` finds).
    fn on_node(&self, i: usize, args: &[&str]) -> Run {
        etcdops(args, &[("ETCDOPS_MANIFEST", &s(&self.manifests[i]))])
    }

    /// Entries of the cluster's temp dir (where every node's data dirs live).
    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.cluster.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// `(member header, command)` pairs of the "next (HA)" section.
fn printed_commands(stdout: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter_map(|w| {
            w[0].strip_prefix("# on ")
                .map(|h| (h.to_string(), w[1].to_string()))
        })
        .collect()
}

fn etcdctl_json(c: &Cluster, args: &[&str]) -> Value {
    let out = c.etcdctl(&c.endpoints_arg(), args);
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What the snapshot of a kubeadm-grown cluster stores about its members, by release: etcd
/// before 3.5.20 keeps no name for members that joined with `member add`, even once they
/// started, and never stores a promotion (every joined control plane is still a learner).
fn stored_members(d: &Drill, version: Version) {
    let status = etcdops(&["snapshot", "status", &s(&d.snapshot), "-w", "json"], &[]).json();
    let mut names: Vec<(&str, bool)> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["isLearner"] == true))
        .collect();
    names.sort();
    if version.stores_promotions() {
        assert_eq!(names, [("cp1", false), ("cp2", false), ("cp3", false)]);
        return;
    }
    assert_eq!(names, [("", true), ("", true), ("cp1", false)]);
    // The table shows them by peer URL, not as "(unstarted)".
    let table = etcdops(&["snapshot", "status", &s(&d.snapshot)], &[]);
    assert!(!table.stdout.contains("(unstarted)"), "{}", table.stdout);
    for m in &d.cluster.members[1..] {
        assert!(
            table
                .stdout
                .contains(&format!("(no name stored; peer {})", m.peer_url)),
            "{}",
            table.stdout
        );
    }
}

fn drill(version: Version, bump: bool) {
    let mut d = Drill::new(version);
    stored_members(&d, version);

    for i in 0..3 {
        d.cluster.kill(i);
    }
    let snap = s(&d.snapshot);
    let mut user = vec![
        "snapshot",
        "restore",
        snap.as_str(),
        "--from-manifest",
        "--update-manifest",
    ];
    if bump {
        user.extend(["--bump-revision", "1000", "--mark-compacted"]);
    }

    // Where the operator starts. On a snapshot whose promotions were stored, any node; on one
    // of etcd before 3.5.20, the first node's manifest names only itself, so the joined
    // members are learners nothing vouches for: refused with the way out, which is a node
    // whose manifest names every member (the last one kubeadm joined).
    let first = if version.stores_promotions() {
        0
    } else {
        let r = d.on_node(0, &user);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("learner"), "{}", r.stderr);
        assert!(r.stderr.contains("names every member"), "{}", r.stderr);
        2
    };
    let others: Vec<usize> = (0..3).filter(|&i| i != first).collect();

    // The dry run shows the whole plan and writes nothing.
    let before = d.listing();
    let manifest_before = std::fs::read(&d.manifests[first]).unwrap();
    let dry = d.on_node(first, &[&user[..], &["--dry-run", "-w", "json"]].concat());
    assert_eq!(dry.code, 0, "{dry:?}");
    let plan = dry.json();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["membership_source"], "snapshot");
    assert_eq!(plan["members"].as_array().unwrap().len(), 3);
    assert_eq!(plan["name"], format!("cp{}", first + 1));
    assert_eq!(plan["manifest"], s(&d.manifests[first]));
    assert!(plan["manifest_diff"]
        .as_str()
        .unwrap()
        .contains("+      path: "));
    assert_eq!(plan["other_members"].as_array().unwrap().len(), 2);
    let dry_table = d.on_node(first, &[&user[..], &["--dry-run"]].concat());
    assert_eq!(dry_table.code, 0, "{dry_table:?}");
    // The default data dir ends in the time of the run (YYYYMMDDTHHMMSSZ): the two dry runs may
    // straddle a second.
    let data_dir = plan["data_dir"].as_str().unwrap();
    let data_dir = data_dir.trim_end_matches(|c: char| c.is_ascii_digit() || c == 'T' || c == 'Z');
    for needle in [
        "plan (dry run, nothing written)",
        plan["cluster_id"].as_str().unwrap(),
        data_dir,
        "3 member(s), from the snapshot's member list",
        "+      path: ",
    ] {
        assert!(
            dry_table.stdout.contains(needle),
            "{needle}: {}",
            dry_table.stdout
        );
    }
    assert_eq!(d.listing(), before);
    assert_eq!(std::fs::read(&d.manifests[first]).unwrap(), manifest_before);

    // The first node: the user's command. Then each other node: exactly what it printed.
    let r = d.on_node(first, &user);
    assert_eq!(r.code, 0, "{r:?}");
    if !version.stores_promotions() {
        for name in ["cp2", "cp3"] {
            assert!(
                r.stderr
                    .contains(&format!("note: the snapshot stores {name} (")),
                "{}",
                r.stderr
            );
        }
    }
    let commands = printed_commands(&r.stdout);
    assert_eq!(commands.len(), 2, "{}", r.stdout);
    for (header, command) in &commands {
        assert!(!command.contains("--data-dir"), "{command}");
        assert!(
            !command.contains(&s(d
                .cluster
                .dir
                .path()
                .join(format!("cp{}.etcd", first + 1))
                .as_path())),
            "no path of this node: {command}"
        );
        assert!(
            command.contains("--from-manifest --update-manifest"),
            "{header}: {command}"
        );
        assert_eq!(
            command.contains("--bump-revision=1000 --mark-compacted"),
            bump,
            "{command}"
        );
    }
    for &i in &others {
        let url = &d.cluster.members[i].peer_url;
        let (_, command) = commands
            .iter()
            .find(|(h, _)| h.contains(url.as_str()))
            .unwrap_or_else(|| panic!("no command for {url}: {}", r.stdout));
        let r = run_printed(
            command,
            &[("ETCDOPS_MANIFEST", &s(&d.manifests[i]))],
            d.cluster.dir.path(),
        );
        assert_eq!(r.code, 0, "node {}: {command}\n{r:?}", i + 1);
        // A three-member restore prints the commands for the others on every node.
        assert_eq!(printed_commands(&r.stdout).len(), 2, "{}", r.stdout);
    }

    // kubelet's part: every etcd from its updated manifest.
    d.cluster.restart_from_manifests(&d.manifests);
    let status = etcdctl_json(&d.cluster, &["endpoint", "status", "-w", "json"]);
    let rows = status.as_array().unwrap();
    let cluster_ids: Vec<u64> = rows
        .iter()
        .map(|r| r["Status"]["header"]["cluster_id"].as_u64().unwrap())
        .collect();
    assert!(
        cluster_ids.iter().all(|c| *c == cluster_ids[0]),
        "one cluster, not three: {cluster_ids:x?}"
    );
    assert_eq!(
        format!("{:x}", cluster_ids[0]),
        plan["cluster_id"].as_str().unwrap(),
        "the dry run predicted the cluster ID"
    );
    let leaders: Vec<u64> = rows
        .iter()
        .map(|r| r["Status"]["leader"].as_u64().unwrap())
        .collect();
    assert!(
        leaders.iter().all(|l| *l == leaders[0] && *l != 0),
        "{leaders:?}"
    );
    let members = etcdctl_json(&d.cluster, &["member", "list", "-w", "json"]);
    let mut started: Vec<(String, usize)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["clientURLs"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    started.sort();
    // Every member published its own --name over the placeholder the restore wrote.
    assert_eq!(
        started,
        [("cp1".into(), 1), ("cp2".into(), 1), ("cp3".into(), 1)]
    );

    // The members agree on the data (HashKV at one revision).
    let tls = d.cluster.tls_args();
    let eps = d.cluster.endpoints_arg();
    let check = etcdops(
        &args(&["check", "consistency", "--endpoints", &eps], &tls),
        &[],
    );
    assert_eq!(check.code, 0, "{check:?}");

    let mut tc = d.cluster.client(None);
    assert_eq!(
        tc.dump(),
        d.dump,
        "the snapshot's keys, and nothing written after it"
    );
    let put = tc
        .rt
        .block_on(tc.client.put("/registry/after-restore", "ok", None))
        .unwrap();
    let rev = put.header().unwrap().revision();
    if bump {
        assert!(rev > d.revision + 1000, "{rev} vs {}", d.revision);
    } else {
        assert_eq!(rev, d.revision + 1);
    }
    let got = tc
        .rt
        .block_on(tc.client.get("/registry/after-restore", None))
        .unwrap();
    assert_eq!(got.kvs()[0].value(), b"ok");
}

#[test]
fn kubeadm_ha_drill_forms_one_cluster_3_5_1() {
    drill(Version::V3_5_1, false);
}

#[test]
fn kubeadm_ha_drill_forms_one_cluster_3_5_30() {
    drill(Version::V3_5_30, false);
}

#[test]
fn kubeadm_ha_drill_with_bump_revision_3_5_1() {
    drill(Version::V3_5_1, true);
}

#[test]
fn kubeadm_ha_drill_with_bump_revision_3_5_30() {
    drill(Version::V3_5_30, true);
}

/// Manifests that contradict the snapshot are refused, and stale entries noted, on a cluster
/// of each release (one drill cluster serves both checks).
#[test]
fn contradicting_and_stale_manifests_3_5_1() {
    let d = Drill::new(Version::V3_5_1);
    manifests_that_contradict_the_snapshot_are_refused(&d, Version::V3_5_1);
    stale_manifest_entries_are_noted_not_fatal(&d, Version::V3_5_1);
}

#[test]
fn contradicting_and_stale_manifests_3_5_30() {
    let d = Drill::new(Version::V3_5_30);
    manifests_that_contradict_the_snapshot_are_refused(&d, Version::V3_5_30);
    stale_manifest_entries_are_noted_not_fatal(&d, Version::V3_5_30);
}

/// How a restore refuses a learner that the manifest does not name (etcd before 3.5.20).
const UNNAMED_LEARNER: &str = "as a learner, and etcd before 3.5.20 never stored a promotion";

/// The node whose manifest the checks edit: etcd before 3.5.20 stored the joined control
/// planes as learners, which only the last node's `--initial-cluster` names as voters (the
/// first node's manifest is refused for that alone: see [`learners_refused_unless_named`]).
fn base_node(version: Version) -> usize {
    if version.stores_promotions() {
        0
    } else {
        2
    }
}

/// etcd 3.5.1 stores every joined control plane as a learner: the first node's manifest names
/// none of them, so its restore is refused with one line saying why and what to do.
fn learners_refused_unless_named(d: &Drill) {
    let before = d.listing();
    let r = d.on_node(
        0,
        &[
            "snapshot",
            "restore",
            &s(&d.snapshot),
            "--from-manifest",
            "--update-manifest",
        ],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("as a learner, and etcd before 3.5.20 never stored a promotion")
            && r.stderr.contains("names every member"),
        "{}",
        r.stderr
    );
    assert_eq!(d.listing(), before, "nothing left behind");
}

fn manifests_that_contradict_the_snapshot_are_refused(d: &Drill, version: Version) {
    if !version.stores_promotions() {
        learners_refused_unless_named(d);
    }
    let node = base_node(version);
    let text = std::fs::read_to_string(&d.manifests[node]).unwrap();
    let own = &d.cluster.members[node].peer_url;
    let other = format!("https://127.0.0.1:{}", free_port());
    let cases = [
        // This node is not in the snapshot's cluster.
        (
            text.replace(&format!("--name=cp{}", node + 1), "--name=cp9")
                .replace(own.as_str(), &other),
            // Before 3.5.20 the learner this node was (cp3, at its own URL) is then named by
            // no one, and that is refused first.
            if version.stores_promotions() {
                "is not a member of the snapshot's cluster"
            } else {
                UNNAMED_LEARNER
            },
        ),
        // This node's peer URL differs from the snapshot's (the same: before 3.5.20 it is a
        // learner no one names at its URL).
        (
            text.replace(own.as_str(), &other),
            if version.stores_promotions() {
                "the snapshot has cp1 at"
            } else {
                UNNAMED_LEARNER
            },
        ),
    ];
    for (i, (manifest, needle)) in cases.iter().enumerate() {
        let path = d
            .cluster
            .dir
            .path()
            .join(format!("bad{i}/manifests/etcd.yaml"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, manifest).unwrap();
        let before = d.listing();
        let r = etcdops(
            &[
                "snapshot",
                "restore",
                &s(&d.snapshot),
                "--from-manifest",
                &s(&path),
                "--update-manifest",
            ],
            &[],
        );
        assert_eq!(r.code, 2, "case {i}: {r:?}");
        assert!(r.stderr.contains(needle), "case {i}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "case {i}: {}", r.stderr);
        assert_eq!(d.listing(), before, "case {i}: nothing left behind");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), *manifest);
    }
}

/// kubeadm keeps replaced members in the older nodes' manifests: such an entry is ignored
/// with a note, and the snapshot decides.
fn stale_manifest_entries_are_noted_not_fatal(d: &Drill, version: Version) {
    let text = std::fs::read_to_string(&d.manifests[base_node(version)]).unwrap();
    let cp1 = &d.cluster.members[0].peer_url;
    let gone = format!("https://127.0.0.1:{}", free_port());
    let path = d.cluster.dir.path().join("stale/manifests/etcd.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        text.replace(
            &format!("--initial-cluster=cp1={cp1}"),
            &format!("--initial-cluster=cp1={cp1},cp4={gone}"),
        ),
    )
    .unwrap();
    let r = etcdops(
        &[
            "snapshot",
            "restore",
            &s(&d.snapshot),
            "--from-manifest",
            &s(&path),
            "--update-manifest",
            "--dry-run",
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains(&format!("cp4={gone}")), "{}", r.stderr);
    assert!(r.stderr.contains("ignored"), "{}", r.stderr);
    assert_eq!(r.json()["members"].as_array().unwrap().len(), 3);
    // Before 3.5.20, cp2 and cp3 are stored as learners; this manifest names both.
    let voters = if version.stores_promotions() { 0 } else { 2 };
    assert_eq!(
        r.stderr.matches("restored as a voter").count(),
        voters,
        "{}",
        r.stderr
    );
}
