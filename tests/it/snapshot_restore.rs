//! `snapshot restore` against real etcd: restored data dirs that real etcd 3.5.1 and 3.4.23
//! boot with the same keyspace, a 3-member restore that forms one cluster, WAL and `.snap`
//! bytes equal to etcdutl 3.5.1's, the revision bump, and refusals that leave nothing behind.

use crate::common::s;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::cluster::{
    free_port, Cluster, ClusterOptions, Kv, TestClient, ThreeMembers, Version,
};
use crate::common::oracle::{run_etcdutl, run_etcdutl_of};
use crate::common::repo;
use crate::common::run::restore_member as restore;
use crate::common::run::{etcdops, etcdops_spawn, run_printed, send_signal, wait_run};
use etcd_client::{GetOptions, Permission, PutOptions};
use serde_json::Value;

fn etcdutl_json(args: &[&str]) -> Value {
    serde_json::from_str(&run_etcdutl(args)).unwrap()
}

fn status_numbers(db: &Path) -> (Value, Value, Value) {
    let v = etcdutl_json(&["snapshot", "status", "-w", "json", &s(db)]);
    (
        v["hash"].clone(),
        v["revision"].clone(),
        v["totalKey"].clone(),
    )
}

/// Restore with etcdops and with the etcdutl of `version` (same flags), compare the db numbers,
/// boot ours on that etcd and compare the keyspace with `dump`.
fn restore_and_boot(version: Version, snap: &Path, dump: &[Kv], user: Option<(&str, &str)>) {
    let dir = tempfile::tempdir().unwrap();
    let peer = format!("https://127.0.0.1:{}", free_port());
    let initial = format!("r1={peer}");
    let ours = dir.path().join("ours.etcd");
    let r = restore(snap, &ours, "r1", &peer, &initial, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();

    let theirs = dir.path().join("theirs.etcd");
    run_etcdutl_of(
        &version.etcdutl(),
        &[
            "snapshot",
            "restore",
            &s(snap),
            "--data-dir",
            &s(&theirs),
            "--name",
            "r1",
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &initial,
            "--initial-cluster-token",
            "restored",
        ],
    );
    assert_eq!(
        status_numbers(&ours.join("member/snap/db")),
        status_numbers(&theirs.join("member/snap/db"))
    );
    let check = etcdops(
        &["snapshot", "status", &s(&ours.join("member/snap/db"))],
        &[],
    );
    assert_eq!(check.code, 0, "our integrity check on our db: {check:?}");

    let booted = Cluster::boot(version, &[("r1".into(), ours, peer)]);
    let mut tc = booted.client(user);
    let restored = tc.dump();
    assert_eq!(restored.len(), dump.len());
    assert!(restored == dump, "keyspace differs after restore");
    let members = tc.rt.block_on(tc.client.member_list()).unwrap();
    assert_eq!(members.members().len(), 1);
    assert_eq!(
        format!("{:x}", members.members()[0].id()),
        report["member_id"].as_str().unwrap()
    );
    tc.rt
        .block_on(tc.client.put("/after-restore", "ok", None))
        .expect("a write after restore");
}

fn fill(tc: &mut TestClient) {
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..3000)
        .map(|i| {
            let res = ["pods", "configmaps", "secrets", "events"][i % 4];
            (
                format!("/registry/{res}/ns{}/o{i}", i % 7).into_bytes(),
                vec![b'a' + (i % 26) as u8; 100 + i % 3000],
            )
        })
        .collect();
    tc.put_all(&kvs, 50);
    tc.put_all(&kvs[..500], 50);
    for i in 0..100 {
        tc.rt
            .block_on(
                tc.client
                    .delete(format!("/registry/pods/ns{}/o{}", (i * 4) % 7, i * 4), None),
            )
            .unwrap();
    }
    let lease = tc
        .rt
        .block_on(tc.client.lease_grant(7200, None))
        .unwrap()
        .id();
    for i in 0..10 {
        let o = PutOptions::new().with_lease(lease);
        tc.rt
            .block_on(
                tc.client
                    .put(format!("/registry/leases/l{i}"), "x", Some(o)),
            )
            .unwrap();
    }
    let binary: Vec<(Vec<u8>, Vec<u8>)> = (1..=255u8).map(|b| (vec![b, 0, b], vec![b])).collect();
    tc.put_all(&binary, 85);
    for (i, n) in [100_000usize, 1_200_000].iter().enumerate() {
        tc.rt
            .block_on(tc.client.put(format!("/big/{i}"), vec![b'z'; *n], None))
            .unwrap();
    }
    let many: Vec<(Vec<u8>, Vec<u8>)> = (0..100_000)
        .map(|i| (format!("/n/{i:06}").into_bytes(), b"v".to_vec()))
        .collect();
    tc.put_all(&many, 100);
    let rev = tc
        .rt
        .block_on(
            tc.client
                .get("/", Some(GetOptions::new().with_count_only())),
        )
        .unwrap()
        .header()
        .unwrap()
        .revision();
    tc.rt.block_on(tc.client.compact(rev - 50, None)).unwrap();
}

#[test]
fn restored_3_5_1_snapshots_boot_with_the_same_keyspace() {
    restored_snapshots_boot_with_the_same_keyspace(Version::V3_5_1);
}

#[test]
fn restored_3_5_30_snapshots_boot_with_the_same_keyspace() {
    restored_snapshots_boot_with_the_same_keyspace(Version::V3_5_30);
}

fn restored_snapshots_boot_with_the_same_keyspace(version: Version) {
    let c = Cluster::start(ClusterOptions::new(version, 1));
    let dir = tempfile::tempdir().unwrap();
    let mut tc = c.client(None);

    let empty = dir.path().join("empty.db");
    c.etcdctl_save(0, &empty, None);
    let empty_dump = tc.dump();

    fill(&mut tc);
    let full = dir.path().join("full.db");
    c.etcdctl_save(0, &full, None);
    let full_dump = tc.dump();

    let cl = &mut tc.client;
    tc.rt.block_on(async {
        cl.user_add("root", "rootpw", None).await.unwrap();
        cl.role_add("root").await.unwrap();
        cl.user_grant_role("root", "root").await.unwrap();
        cl.role_add("reader").await.unwrap();
        cl.role_grant_permission("reader", Permission::read("/registry/").with_prefix())
            .await
            .unwrap();
        cl.auth_enable().await.unwrap();
    });
    let auth = dir.path().join("auth.db");
    c.etcdctl_save(0, &auth, Some("root:rootpw"));

    restore_and_boot(version, &empty, &empty_dump, None);
    restore_and_boot(version, &full, &full_dump, None);
    restore_and_boot(version, &auth, &full_dump, Some(("root", "rootpw")));

    // Killed at random points: the data dir is either absent or complete, and a rerun works.
    for delay_ms in [5u64, 30, 80, 150, 300] {
        let target = dir.path().join(format!("killed-{delay_ms}.etcd"));
        let peer = "https://127.0.0.1:2380";
        let start = Instant::now();
        let child = etcdops_spawn(&[
            "snapshot",
            "restore",
            &s(&full),
            "--data-dir",
            &s(&target),
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            &format!("default={peer}"),
        ]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        send_signal(child.id(), "KILL");
        let _ = wait_run(child, start, Duration::from_secs(30));
        if target.exists() {
            let wal = target.join("member/wal/0000000000000000-0000000000000000.wal");
            assert_eq!(
                std::fs::metadata(&wal).unwrap().len(),
                64_000_000,
                "incomplete dir after kill at {delay_ms} ms"
            );
            status_numbers(&target.join("member/snap/db"));
        } else {
            let r = etcdops(
                &[
                    "snapshot",
                    "restore",
                    &s(&full),
                    "--data-dir",
                    &s(&target),
                    "--initial-advertise-peer-urls",
                    peer,
                    "--initial-cluster",
                    &format!("default={peer}"),
                ],
                &[],
            );
            assert_eq!(r.code, 0, "rerun after kill at {delay_ms} ms: {r:?}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .contains(&format!("killed-{delay_ms}.etcd.etcdops-restore"))
            })
            .collect();
        // A completed restore renamed its temporary dir; a killed one's is removed by the rerun.
        assert!(
            leftovers.is_empty(),
            "temporary dirs left after kill at {delay_ms} ms: {leftovers:?}"
        );
    }
}

#[test]
fn restored_3_4_23_snapshot_boots_on_3_4_23() {
    let c = Cluster::start(ClusterOptions::new(Version::V3_4_23, 1));
    let mut tc = c.client(None);
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..2000)
        .map(|i| (format!("/registry/pods/p{i}").into_bytes(), vec![b'q'; 500]))
        .collect();
    tc.put_all(&kvs, 100);
    tc.rt
        .block_on(tc.client.delete("/registry/pods/p7", None))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s34.db");
    c.etcdctl_save(0, &snap, None);
    let dump = tc.dump();
    restore_and_boot(Version::V3_4_23, &snap, &dump, None);
}

#[test]
fn three_member_restore_forms_one_cluster_3_5_1() {
    three_member_restore_forms_one_cluster(Version::V3_5_1);
}

#[test]
fn three_member_restore_forms_one_cluster_3_5_30() {
    three_member_restore_forms_one_cluster(Version::V3_5_30);
}

fn three_member_restore_forms_one_cluster(version: Version) {
    let c = Cluster::start(ClusterOptions::new(version, 1));
    let mut tc = c.client(None);
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..1000)
        .map(|i| (format!("/registry/x/{i}").into_bytes(), vec![b'm'; 200]))
        .collect();
    tc.put_all(&kvs, 100);
    let dump = tc.dump();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.db");
    c.etcdctl_save(0, &snap, None);

    let ThreeMembers { peers, initial } = ThreeMembers::new();
    // n1 restores with the full list; n2 and n3 run exactly the commands it printed (here in
    // `dir`, where etcd's default data dir NAME.etcd lands).
    let data = dir.path().join("n1.etcd");
    let r = restore(&snap, &data, "n1", &peers[0], &initial, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    let cluster_ids = [report["cluster_id"].clone()];
    let mut restored = vec![("n1".to_string(), data, peers[0].clone())];
    let others = report["other_members"].as_array().unwrap();
    assert_eq!(others.len(), 2);
    for o in others {
        let command = o["command"].as_str().unwrap();
        assert!(!command.contains("--data-dir"), "{command}");
        let r = run_printed(command, &[], dir.path());
        assert_eq!(r.code, 0, "{command}: {r:?}");
        assert!(
            r.stdout.contains(&format!(
                "cluster id:        {}",
                cluster_ids[0].as_str().unwrap()
            )),
            "{}",
            r.stdout
        );
        let name = o["name"].as_str().unwrap().to_string();
        let peer = o["peer_urls"][0].as_str().unwrap().to_string();
        restored.push((name.clone(), dir.path().join(format!("{name}.etcd")), peer));
    }

    let booted = Cluster::boot(version, &restored);
    let status = etcdops(
        &[
            "status",
            "-w",
            "json",
            "--endpoints",
            &booted.endpoints_arg(),
            &booted.tls_args()[0],
            &booted.tls_args()[1],
            &booted.tls_args()[2],
        ],
        &[],
    );
    assert_eq!(status.code, 0, "{status:?}");
    let rows = status.json();
    assert_eq!(
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["isLeader"] == true)
            .count(),
        1
    );
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["clusterIDHex"] == cluster_ids[0]));
    let mut tc = booted.client(None);
    assert_eq!(tc.dump(), dump);
    assert_eq!(
        tc.rt
            .block_on(tc.client.member_list())
            .unwrap()
            .members()
            .len(),
        3
    );
}

#[test]
fn wal_and_snap_bytes_equal_etcdutl_3_5_1s() {
    wal_and_snap_bytes_equal_etcdutls(Version::V3_5_1);
}

#[test]
fn wal_and_snap_bytes_equal_etcdutl_3_5_30s() {
    wal_and_snap_bytes_equal_etcdutls(Version::V3_5_30);
}

fn wal_and_snap_bytes_equal_etcdutls(version: Version) {
    let example = repo().join("examples/k8s-small.db");
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<&str>); 3] = [
        ("defaults", vec![]),
        (
            "three",
            vec![
                "--name",
                "m1",
                "--initial-cluster",
                "m1=http://127.0.0.1:12380,m2=http://127.0.0.2:12380,m3=http://127.0.0.3:12380",
                "--initial-cluster-token",
                "tok-restore",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:12380",
            ],
        ),
        (
            "two-urls",
            vec![
                "--name",
                "a",
                "--initial-cluster",
                "a=http://127.0.0.9:2380,a=http://127.0.0.8:2380,b=https://127.0.0.7:2380",
                "--initial-advertise-peer-urls",
                "http://127.0.0.9:2380,http://127.0.0.8:2380",
            ],
        ),
    ];
    for (label, flags) in cases {
        let ours = dir.path().join(format!("{label}-ours"));
        let theirs = dir.path().join(format!("{label}-theirs"));
        let mut a = vec![
            "snapshot",
            "restore",
            example.to_str().unwrap(),
            "--data-dir",
            ours.to_str().unwrap(),
        ];
        a.extend(flags.iter().copied());
        let r = etcdops(&a, &[]);
        assert_eq!(r.code, 0, "{label}: {r:?}");
        let mut b = vec![
            "snapshot",
            "restore",
            example.to_str().unwrap(),
            "--data-dir",
            theirs.to_str().unwrap(),
        ];
        b.extend(flags.iter().copied());
        run_etcdutl_of(&version.etcdutl(), &b);
        let files = |d: &Path| -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = ["member/wal", "member/snap"]
                .iter()
                .flat_map(|sub| {
                    std::fs::read_dir(d.join(sub))
                        .unwrap()
                        .flatten()
                        .map(|e| e.path())
                })
                .filter(|p| p.file_name().unwrap() != "db")
                .map(|p| p.strip_prefix(d).unwrap().to_path_buf())
                .collect();
            v.sort();
            v
        };
        assert_eq!(files(&ours), files(&theirs), "{label}: file names");
        for f in files(&ours) {
            assert!(
                std::fs::read(ours.join(&f)).unwrap() == std::fs::read(theirs.join(&f)).unwrap(),
                "{label}: {} differs",
                f.display()
            );
        }
        assert_eq!(
            status_numbers(&ours.join("member/snap/db")),
            status_numbers(&theirs.join("member/snap/db")),
            "{label}"
        );
    }
}

#[test]
fn bump_revision_marks_compacted_3_5_1() {
    bump_revision_marks_compacted(Version::V3_5_1);
}

#[test]
fn bump_revision_marks_compacted_3_5_30() {
    bump_revision_marks_compacted(Version::V3_5_30);
}

fn bump_revision_marks_compacted(version: Version) {
    let c = Cluster::start(ClusterOptions::new(version, 1));
    let mut tc = c.client(None);
    for i in 0..20 {
        tc.rt
            .block_on(tc.client.put("/registry/k", format!("v{i}"), None))
            .unwrap();
    }
    let before = tc
        .rt
        .block_on(tc.client.get("/registry/k", None))
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.db");
    c.etcdctl_save(0, &snap, None);

    // Kubernetes data and no bump: the recommendation.
    let peer = format!("https://127.0.0.1:{}", free_port());
    let plain = restore(
        &snap,
        &dir.path().join("plain"),
        "b1",
        &peer,
        &format!("b1={peer}"),
        &[],
    );
    assert_eq!(plain.code, 0);
    assert!(
        plain
            .stderr
            .contains("--bump-revision 1000000000 --mark-compacted"),
        "{}",
        plain.stderr
    );

    let r = restore(
        &snap,
        &dir.path().join("half"),
        "b1",
        &peer,
        &format!("b1={peer}"),
        &["--bump-revision", "1000"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(!dir.path().join("half").exists());

    let data = dir.path().join("bumped");
    let r = restore(
        &snap,
        &data,
        "b1",
        &peer,
        &format!("b1={peer}"),
        &["--bump-revision", "1000", "--mark-compacted"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["bumped_revision"], before + 1000);
    assert!(!r.stderr.contains("consider --bump-revision"));

    if version.reported() >= (5, 10) {
        // etcdutl 3.5.10+ bumps too: the same db numbers, WAL and snap.
        let theirs = dir.path().join("theirs-bumped");
        run_etcdutl_of(
            &version.etcdutl(),
            &[
                "snapshot",
                "restore",
                &s(&snap),
                "--data-dir",
                &s(&theirs),
                "--name",
                "b1",
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &format!("b1={peer}"),
                "--initial-cluster-token",
                "restored",
                "--bump-revision",
                "1000",
                "--mark-compacted",
            ],
        );
        assert_eq!(
            status_numbers(&data.join("member/snap/db")),
            status_numbers(&theirs.join("member/snap/db"))
        );
        // `snapshot status` as this release's own etcdutl counts the bumped db.
        let db = s(&data.join("member/snap/db"));
        let theirs: Value = serde_json::from_str(&run_etcdutl_of(
            &version.etcdutl(),
            &["snapshot", "status", "-w", "json", &db],
        ))
        .unwrap();
        let ours = etcdops(&["snapshot", "status", "-w", "json", &db], &[]).json();
        for field in ["hash", "revision", "totalKey", "totalSize"] {
            assert_eq!(ours[field], theirs[field], "{field}: {ours} vs {theirs}");
        }
    }
    let booted = Cluster::boot(version, &[("b1".into(), data, peer)]);
    let mut tc = booted.client(None);
    let now = tc.rt.block_on(tc.client.get("/registry/k", None)).unwrap();
    assert!(
        now.header().unwrap().revision() >= before + 1000,
        "revision {}",
        now.header().unwrap().revision()
    );
    assert_eq!(now.kvs()[0].value(), b"v19");
    let old = tc.rt.block_on(tc.client.get(
        "/registry/k",
        Some(GetOptions::new().with_revision(before - 5)),
    ));
    let err = old
        .expect_err("reading an old revision must fail")
        .to_string();
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );

    // The bumped cluster lives on: one more key, a new snapshot. The bump's marker (an empty
    // value at the bumped revision, kept for good) is no key: ls, diff and verify --boot agree
    // with the server; status counts it, as etcdutl does.
    tc.rt
        .block_on(tc.client.put("/registry/after", "x", None))
        .unwrap();
    let later = dir.path().join("later.db");
    booted.etcdctl_save(0, &later, None);
    let later_s = s(&later);
    let ls = etcdops(&["snapshot", "ls", &later_s, "-w", "json"], &[]);
    assert_eq!(ls.code, 0, "{ls:?}");
    assert_eq!(ls.json()["count"], 2, "{}", ls.stdout);
    assert!(!ls.stdout.contains(r#""key":"""#), "{}", ls.stdout);
    let diff = etcdops(&["snapshot", "diff", &s(&snap), &later_s], &[]);
    assert_eq!(diff.code, 0, "{diff:?}");
    assert!(!diff.stdout.contains("''"), "{}", diff.stdout);
    assert!(diff.stdout.contains("/registry/after"), "{}", diff.stdout);
    let etcd = version.etcd();
    let v = etcdops(
        &[
            "snapshot",
            "verify",
            &later_s,
            "--boot",
            "--etcd",
            &s(&etcd),
        ],
        &[],
    );
    assert_eq!(v.code, 0, "{v:?}");
    let theirs: Value = serde_json::from_str(&run_etcdutl(&[
        "snapshot", "status", &later_s, "-w", "json",
    ]))
    .unwrap();
    let ours = etcdops(&["snapshot", "status", &later_s, "-w", "json"], &[]);
    assert_eq!(
        ours.json()["totalKey"],
        theirs["totalKey"],
        "{}",
        ours.stdout
    );
}

/// Refusals leave nothing behind, and what is allowed works; each case restores the bundled
/// example into its own temp dir and checks at the end that the input was not modified.
mod refusals {
    use super::*;

    /// The bundled example snapshot and its bytes before the case ran.
    struct Example {
        path: PathBuf,
        bytes: Vec<u8>,
    }

    impl Example {
        fn new() -> Example {
            let path = repo().join("examples/k8s-small.db");
            let bytes = std::fs::read(&path).unwrap();
            Example { path, bytes }
        }

        /// The input is never modified.
        fn assert_unchanged(&self) {
            assert_eq!(std::fs::read(&self.path).unwrap(), self.bytes);
        }
    }

    fn listing(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A non-empty data dir is refused and untouched.
    #[test]
    fn non_empty_data_dir_is_refused_and_untouched() {
        let example = Example::new();
        let dir = tempfile::tempdir().unwrap();
        let busy = dir.path().join("busy.etcd");
        std::fs::create_dir(&busy).unwrap();
        std::fs::write(busy.join("keep"), "mine").unwrap();
        let r = etcdops(
            &[
                "snapshot",
                "restore",
                &s(&example.path),
                "--data-dir",
                &s(&busy),
            ],
            &[],
        );
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("not empty"), "{}", r.stderr);
        assert_eq!(std::fs::read_to_string(busy.join("keep")).unwrap(), "mine");
        assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
        example.assert_unchanged();
    }

    /// An empty data dir is fine.
    #[test]
    fn empty_data_dir_is_fine() {
        let example = Example::new();
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.etcd");
        std::fs::create_dir(&empty).unwrap();
        let r = etcdops(
            &[
                "snapshot",
                "restore",
                &s(&example.path),
                "--data-dir",
                &s(&empty),
            ],
            &[],
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert!(empty.join("member/snap/db").exists());
        example.assert_unchanged();
    }

    /// A flipped byte: exit 2, nothing created.
    #[test]
    fn flipped_byte_creates_nothing() {
        let example = Example::new();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let before = listing(d);
        let mut bytes = example.bytes.clone();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        let flipped = d.join("flipped.db");
        std::fs::write(&flipped, &bytes).unwrap();
        let target = d.join("flipped.etcd");
        let r = etcdops(
            &[
                "snapshot",
                "restore",
                &s(&flipped),
                "--data-dir",
                &s(&target),
            ],
            &[],
        );
        assert_eq!(r.code, 2, "{r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(!target.exists());
        let mut after = listing(d);
        after.retain(|n| n != "flipped.db");
        assert_eq!(after, before, "something was left behind");
        example.assert_unchanged();
    }

    /// A raw db needs --skip-hash-check, and the message says so.
    #[test]
    fn raw_db_needs_skip_hash_check() {
        let example = Example::new();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let raw = d.join("raw.db");
        std::fs::write(&raw, &example.bytes[..example.bytes.len() - 32]).unwrap();
        let r = etcdops(
            &[
                "snapshot",
                "restore",
                &s(&raw),
                "--data-dir",
                &s(&d.join("raw.etcd")),
            ],
            &[],
        );
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("--skip-hash-check"), "{}", r.stderr);
        assert!(!d.join("raw.etcd").exists());
        let r = etcdops(
            &[
                "snapshot",
                "restore",
                &s(&raw),
                "--skip-hash-check",
                "--data-dir",
                &s(&d.join("raw.etcd")),
            ],
            &[],
        );
        assert_eq!(r.code, 0, "{r:?}");
        example.assert_unchanged();
    }

    /// Bad --initial-cluster, each named.
    #[test]
    fn bad_initial_cluster_is_named() {
        let example = Example::new();
        let dir = tempfile::tempdir().unwrap();
        for (flags, needle) in [
            (
                vec!["--name", "x", "--initial-cluster", "a=http://h:1"],
                "couldn't find local name",
            ),
            (
                vec![
                    "--initial-cluster",
                    "default=http://localhost:2380,b=http://localhost:2380",
                ],
                "duplicate url",
            ),
            (
                vec!["--initial-cluster", "default=http://other:2380"],
                "--initial-advertise-peer-urls",
            ),
            (
                vec![
                    "--initial-cluster",
                    "default=localhost:2380",
                    "--initial-advertise-peer-urls",
                    "localhost:2380",
                ],
                "URL scheme",
            ),
        ] {
            let target = dir.path().join("bad.etcd");
            let mut a = vec![
                "snapshot",
                "restore",
                example.path.to_str().unwrap(),
                "--data-dir",
                target.to_str().unwrap(),
            ];
            a.extend(flags.iter().copied());
            let r = etcdops(&a, &[]);
            assert_eq!(r.code, 2, "{flags:?}: {r:?}");
            assert!(r.stderr.contains(needle), "{flags:?}: {}", r.stderr);
            assert!(!target.exists());
        }
        example.assert_unchanged();
    }

    /// A separate --wal-dir gets the WAL; the data dir keeps the db and .snap.
    #[test]
    fn separate_wal_dir() {
        let example = Example::new();
        let dir = tempfile::tempdir().unwrap();
        let (data, wal) = (dir.path().join("split.etcd"), dir.path().join("split.wal"));
        let r = etcdops(
            &[
                "snapshot",
                "restore",
                &s(&example.path),
                "--data-dir",
                &s(&data),
                "--wal-dir",
                &s(&wal),
            ],
            &[],
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(
            std::fs::metadata(wal.join("0000000000000000-0000000000000000.wal"))
                .unwrap()
                .len(),
            64_000_000
        );
        assert!(!data.join("member/wal").exists());
        assert!(data
            .join("member/snap/0000000000000001-0000000000000001.snap")
            .exists());
        status_numbers(&data.join("member/snap/db"));
        example.assert_unchanged();
    }

    /// An explicit --wal-dir at the default place is the default.
    #[test]
    fn wal_dir_at_the_default_place() {
        let example = Example::new();
        let dir = tempfile::tempdir().unwrap();
        let same = dir.path().join("same.etcd");
        let default_wal = same.join("member/wal");
        let r = etcdops(
            &[
                "snapshot",
                "restore",
                &s(&example.path),
                "--data-dir",
                &s(&same),
                "--wal-dir",
                &s(&default_wal),
            ],
            &[],
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert!(default_wal
            .join("0000000000000000-0000000000000000.wal")
            .exists());
        example.assert_unchanged();
    }
}

/// The bundled example's manifest shape with its data volume under `dir`.
fn manifest_in(dir: &Path) -> (PathBuf, PathBuf) {
    let text =
        std::fs::read_to_string(repo().join("tests/fixtures/manifests/kubeadm-1.31.yaml")).unwrap();
    let data = dir.join("var-lib-etcd");
    let manifests = dir.join("etc-kubernetes/manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let path = manifests.join("etcd.yaml");
    std::fs::write(
        &path,
        text.replace("path: /var/lib/etcd", &format!("path: {}", data.display())),
    )
    .unwrap();
    (path, data)
}

fn mode_and_owner(p: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

/// `nobody`/`nogroup`: files owned by another user.
const OTHER: u32 = 65534;

#[test]
fn manifest_and_data_dir_keep_their_owner_and_mode() {
    let example = repo().join("examples/k8s-small.db");
    let dir = tempfile::tempdir().unwrap();
    let (manifest, data) = manifest_in(dir.path());
    std::os::unix::fs::chown(&manifest, Some(OTHER), Some(OTHER)).unwrap();
    std::fs::set_permissions(
        &manifest,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();

    // A pre-created empty data dir owned by another user (etcd:etcd on a real node).
    let target = dir.path().join("prepared.etcd");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::chown(&target, Some(OTHER), Some(OTHER)).unwrap();
    std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    let r = etcdops(
        &[
            "snapshot",
            "restore",
            &s(&example),
            "--from-manifest",
            &s(&manifest),
            "--update-manifest",
            "--data-dir",
            &s(&target),
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["manifest"], s(&manifest));
    let backup = PathBuf::from(report["manifest_backup"].as_str().unwrap());
    assert!(backup.is_file());
    assert_eq!(mode_and_owner(&manifest), (0o644, OTHER, OTHER));
    assert_eq!(mode_and_owner(&backup), (0o644, OTHER, OTHER));
    assert_eq!(mode_and_owner(&target), (0o750, OTHER, OTHER));
    // What is inside stays ours, as etcdutl leaves it: never handed to whoever made the dir.
    for inner in ["member", "member/snap/db", "member/wal"] {
        let (_, uid, gid) = mode_and_owner(&target.join(inner));
        assert_eq!((uid, gid), (0, 0), "{inner}");
    }
    // No HA section for a one-member cluster.
    assert_eq!(report["other_members"].as_array().unwrap().len(), 0);
    let table = etcdops(
        &[
            "snapshot",
            "restore",
            &s(&example),
            "--data-dir",
            &s(&dir.path().join("fresh.etcd")),
        ],
        &[],
    );
    assert_eq!(table.code, 0, "{table:?}");
    assert!(
        !table.stdout.contains("HA") && !table.stderr.contains("HA"),
        "{table:?}"
    );
    // A new data dir is 0700, as etcd wants.
    let (mode, _, _) = mode_and_owner(&dir.path().join("fresh.etcd"));
    assert_eq!(mode, 0o700);

    // Repeated --from-manifest restores (the manifest now points at prepared.etcd): named
    // from that base, not from the last restore's name.
    let mut dirs = Vec::new();
    for _ in 0..2 {
        let r = etcdops(
            &[
                "snapshot",
                "restore",
                &s(&example),
                "--from-manifest",
                &s(&manifest),
                "--update-manifest",
                "-w",
                "json",
            ],
            &[],
        );
        assert_eq!(r.code, 0, "{r:?}");
        dirs.push(r.json()["data_dir"].as_str().unwrap().to_string());
        // A second restore in the same second would find the first one's dir.
        std::thread::sleep(Duration::from_millis(1100));
    }
    for d in &dirs {
        let name = Path::new(d)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with("prepared.etcd-restore-") && name.matches("-restore-").count() == 1,
            "{d}"
        );
    }
    assert!(data
        .parent()
        .unwrap()
        .join(&dirs[1])
        .join("member/snap/db")
        .exists());
}

#[test]
fn hostile_inputs_and_limits_leave_nothing_behind() {
    let example = repo().join("examples/k8s-small.db");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    // A FIFO as the snapshot: refused at once, for status and restore, without blocking.
    let fifo = d.join("snap.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for argv in [
        vec!["snapshot", "status", fifo.to_str().unwrap()],
        vec![
            "snapshot",
            "restore",
            fifo.to_str().unwrap(),
            "--data-dir",
            d.join("from-fifo").to_str().unwrap(),
        ],
    ] {
        let r = etcdops(&argv, &[]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("FIFO"), "{}", r.stderr);
        assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    }
    assert!(!d.join("from-fifo").exists());

    // A data dir that is a symlink (to an empty dir): refused up front, both left alone.
    let real = d.join("real-empty");
    std::fs::create_dir(&real).unwrap();
    let link = d.join("link.etcd");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let r = etcdops(
        &["snapshot", "restore", &s(&example), "--data-dir", &s(&link)],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("is a symbolic link"), "{}", r.stderr);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);

    // Missing parents are created, 0700, as etcdutl does.
    let nested = d.join("new/parents/x.etcd");
    let r = etcdops(
        &[
            "snapshot",
            "restore",
            &s(&example),
            "--data-dir",
            &s(&nested),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(nested.join("member/snap/db").is_file());
    assert_eq!(mode_and_owner(&d.join("new/parents")).0, 0o700);

    // Under `ulimit -f`: exit 2 with one line, no temporary and no data dir.
    let before = listing();
    let target = d.join("limited.etcd");
    let out = std::process::Command::new("/bin/sh")
        .env_clear()
        .arg("-c")
        .arg(format!(
            "ulimit -f 64 && exec {} snapshot restore {} --data-dir {}",
            env!("CARGO_BIN_EXE_etcdops"),
            s(&example),
            s(&target)
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(listing(), before);

    // Temporaries of killed runs beside any restore target are cleaned; nothing else is.
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let stale_dir = d.join(format!(".other.etcd.etcdops-{dead}-0123456789abcdef"));
    let stale_file = d.join(format!(".x.db.etcdops-{dead}-fedcba9876543210"));
    let legacy = d.join(format!(".old.etcd.etcdops-restore-{dead}"));
    let theirs = d.join(format!(".their.etcd.etcdops-{dead}-0000000000000000"));
    let unrelated = d.join(".not-ours");
    for p in [&stale_dir, &legacy, &theirs] {
        std::fs::create_dir(p).unwrap();
        std::fs::write(p.join("db"), b"partial").unwrap();
    }
    std::fs::write(&stale_file, b"partial").unwrap();
    std::fs::write(&unrelated, b"keep").unwrap();
    // Not brand new (a temporary's creator may not have taken its lock yet).
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    for p in [&stale_dir, &stale_file, &legacy, &theirs] {
        std::fs::File::open(p).unwrap().set_modified(old).unwrap();
    }
    std::os::unix::fs::chown(&theirs, Some(OTHER), Some(OTHER)).unwrap();
    let r = etcdops(
        &[
            "snapshot",
            "restore",
            &s(&example),
            "--data-dir",
            &s(&d.join("new.etcd")),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!stale_dir.exists() && !stale_file.exists() && !legacy.exists());
    assert!(theirs.exists(), "another user's entry is never removed");
    assert_eq!(std::fs::read(&unrelated).unwrap(), b"keep");
}

/// Whole transcripts of `snapshot restore`: the bundled example into a new data dir (table and
/// a three-member plan), a non-empty data dir, a corrupt snapshot.
mod transcripts {
    use super::*;
    use crate::common::run::{assert_transcript, Transcript};

    fn example() -> String {
        repo().join("examples/k8s-small.db").display().to_string()
    }

    #[test]
    fn ok() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("restored.etcd");
        let t = Transcript::run(
            &["snapshot", "restore", &example(), "--data-dir", &s(&data)],
            &[],
        )
        .redact(dir.path(), "[DIR]");
        assert_transcript!("ok", t);
    }

    #[test]
    fn three_members_dry_run() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("m1.etcd");
        let t = Transcript::run(
            &[
                "snapshot",
                "restore",
                &example(),
                "--data-dir",
                &s(&data),
                "--name",
                "m1",
                "--initial-cluster",
                "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380",
                "--initial-advertise-peer-urls",
                "https://10.0.0.1:2380",
                "--initial-cluster-token",
                "tok",
                "--dry-run",
            ],
            &[],
        )
        .redact(dir.path(), "[DIR]");
        assert!(!data.exists());
        assert_transcript!("three_members_dry_run", t);
    }

    /// The CKA flow: the data dir chosen from the manifest, the manifest updated (its backup
    /// and the new data dir are named after the time).
    #[test]
    fn from_manifest_update_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, _) = manifest_in(dir.path());
        let t = Transcript::run(
            &[
                "snapshot",
                "restore",
                &example(),
                "--from-manifest",
                &s(&manifest),
                "--update-manifest",
            ],
            &[],
        )
        .redact(dir.path(), "[DIR]")
        .dates();
        assert_transcript!("from_manifest_update_manifest", t);
    }

    #[test]
    fn non_empty_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let busy = dir.path().join("busy.etcd");
        std::fs::create_dir(&busy).unwrap();
        std::fs::write(busy.join("keep"), "mine").unwrap();
        let t = Transcript::run(
            &["snapshot", "restore", &example(), "--data-dir", &s(&busy)],
            &[],
        )
        .redact(dir.path(), "[DIR]");
        assert_transcript!("non_empty_data_dir", t);
    }

    #[test]
    fn corrupt_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = std::fs::read(example()).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        let flipped = dir.path().join("flipped.db");
        std::fs::write(&flipped, &bytes).unwrap();
        let t = Transcript::run(
            &[
                "snapshot",
                "restore",
                &s(&flipped),
                "--data-dir",
                &s(&dir.path().join("flipped.etcd")),
            ],
            &[],
        )
        .redact(dir.path(), "[DIR]");
        assert_transcript!("corrupt_snapshot", t);
    }
}

/// #28 item 18: on a terminal a restore shows its progress as a save does (bytes, percentage,
/// rate, ended with a newline); in a pipe or a journal, nothing.
#[test]
fn progress_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let example = repo().join("examples/k8s-small.db");
    let (on_tty, piped) = (dir.path().join("tty"), dir.path().join("piped"));
    // util-linux `script` gives the command a pseudo-terminal, as an operator's shell has.
    let command = format!(
        "{} snapshot restore {} --data-dir {}",
        env!("CARGO_BIN_EXE_etcdops"),
        s(&example),
        s(&on_tty)
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("TERM", "dumb")
        .output()
        .expect("script (util-linux)");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(100%)") && text.contains("/s"), "{text}");
    assert!(on_tty.join("member/snap/db").exists());
    let r = etcdops(
        &[
            "snapshot",
            "restore",
            &s(&example),
            "--data-dir",
            &s(&piped),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !r.stderr.contains('%') && !r.stderr.contains('\r'),
        "{}",
        r.stderr
    );
}
