//! `snapshot status` against real etcdutl 3.5.1 on snapshots that real etcd 3.5.1 (3 members)
//! and 3.4.23 write during the test, at several stages of content; and its refusals.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::cluster::{Cluster, ClusterOptions, Version};
use crate::common::oracle::run_etcdutl;
use crate::common::run::etcdops;
use etcd_client::{GetOptions, PutOptions};
use serde_json::Value;

/// Compare our status with etcdutl's on one file, in every format etcdutl shares with us.
fn assert_parity(file: &Path) {
    let f = file.display().to_string();
    let theirs: Value =
        serde_json::from_str(&run_etcdutl(&["snapshot", "status", "-w", "json", &f])).unwrap();
    let r = etcdops(&["snapshot", "status", "-w", "json", &f], &[]);
    assert_eq!(r.code, 0, "{f}: {r:?}");
    let ours = r.json();
    for field in ["hash", "revision", "totalKey", "totalSize"] {
        assert_eq!(
            ours[field], theirs[field],
            "{f}: {field} differs: ours {ours} theirs {theirs}"
        );
    }
    assert_eq!(ours["trailer"], "verified", "{f}");
    assert_eq!(ours["version"], "", "3.4/3.5 files have no storage version");

    let table = run_etcdutl(&["snapshot", "status", "-w", "table", &f]);
    let r = etcdops(&["snapshot", "status", &f], &[]);
    let head: Vec<&str> = r.stdout.lines().take(table.lines().count()).collect();
    assert_eq!(head.join("\n"), table.trim_end(), "{f}: table differs");

    let simple = run_etcdutl(&["snapshot", "status", "-w", "simple", &f]);
    let r = etcdops(&["snapshot", "status", "-w", "simple", &f], &[]);
    assert_eq!(r.stdout, simple, "{f}: simple differs");
}

/// Take a snapshot with etcdctl, check parity, and check that status left it untouched.
fn snapshot_and_compare(c: &Cluster, dir: &Path, name: &str, user: Option<&str>) -> PathBuf {
    let file = dir.join(format!("{name}.db"));
    c.etcdctl_save(0, &file, user);
    let before = std::fs::read(&file).unwrap();
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    assert_parity(&file);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "{name}: status changed the file"
    );
    assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), mtime);
    file
}

fn k8s_value(i: usize, size: usize) -> Vec<u8> {
    let mut v = format!("k8s\0{{\"kind\":\"Pod\",\"i\":{i},\"spec\":\"").into_bytes();
    v.resize(size, b'x');
    v
}

fn stages(version: Version, members: usize) {
    let c = Cluster::start(ClusterOptions::new(version, members));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // An empty cluster.
    snapshot_and_compare(&c, d, "empty", None);

    // Kubernetes-shaped keys, updates, deletes, leases, a compaction.
    let mut tc = c.client(None);
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..600)
        .map(|i| {
            let res = ["pods", "configmaps", "secrets", "services/specs"][i % 4];
            let ns = ["default", "kube-system", "monitoring"][i % 3];
            (
                format!("/registry/{res}/{ns}/obj-{i}").into_bytes(),
                k8s_value(i, 200 + (i * 37) % 5000),
            )
        })
        .collect();
    tc.put_all(&kvs, 50);
    tc.put_all(&kvs[..100], 25);
    let lease = tc
        .rt
        .block_on(tc.client.lease_grant(3600, None))
        .unwrap()
        .id();
    for i in 0..20 {
        let opts = PutOptions::new().with_lease(lease);
        tc.rt
            .block_on(tc.client.put(
                format!("/registry/events/default/e{i}"),
                "event",
                Some(opts),
            ))
            .unwrap();
    }
    for i in 0..50 {
        tc.rt
            .block_on(
                tc.client
                    .delete(format!("/registry/pods/default/obj-{}", i * 12), None),
            )
            .unwrap();
    }
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
    tc.rt.block_on(tc.client.compact(rev - 10, None)).unwrap();
    let k8s = snapshot_and_compare(&c, d, "k8s", None);
    let r = etcdops(
        &[
            "snapshot",
            "status",
            "-w",
            "json",
            &k8s.display().to_string(),
        ],
        &[],
    );
    let doc = r.json();
    assert_eq!(doc["compactRevision"], rev - 10);
    assert_eq!(doc["members"].as_array().unwrap().len(), members);

    // Binary keys and values of 100 KB to 1.2 MB (overflow pages).
    let mut binary: Vec<(Vec<u8>, Vec<u8>)> = (0..=255u8)
        .map(|b| (vec![b, 0, 255 - b, b'\n'], vec![b; 3]))
        .collect();
    binary.retain(|(k, _)| !k.is_empty());
    tc.put_all(&binary, 64);
    for (i, size) in [100_000usize, 400_000, 1_200_000].iter().enumerate() {
        tc.rt
            .block_on(tc.client.put(format!("/big/{i}"), vec![b'v'; *size], None))
            .unwrap();
    }
    snapshot_and_compare(&c, d, "binary-overflow", None);

    // 100k small keys: multi-level branch pages.
    let many: Vec<(Vec<u8>, Vec<u8>)> = (0..100_000)
        .map(|i| {
            (
                format!("/registry/leases/n{i:06}").into_bytes(),
                format!("{i}").into_bytes(),
            )
        })
        .collect();
    tc.put_all(&many, 100);
    let big = snapshot_and_compare(&c, d, "100k", None);

    // After a defrag.
    tc.rt.block_on(tc.client.defragment()).unwrap();
    snapshot_and_compare(&c, d, "defrag", None);

    // Auth enabled with users and roles.
    use etcd_client::Permission;
    let cl = &mut tc.client;
    tc.rt.block_on(async {
        cl.user_add("root", "rootpw", None).await.unwrap();
        cl.role_add("root").await.unwrap();
        cl.user_grant_role("root", "root").await.unwrap();
        cl.role_add("reader").await.unwrap();
        cl.role_grant_permission("reader", Permission::read("/registry/").with_prefix())
            .await
            .unwrap();
        cl.user_add("alice", "alicepw", None).await.unwrap();
        cl.user_grant_role("alice", "reader").await.unwrap();
        cl.auth_enable().await.unwrap();
    });
    snapshot_and_compare(&c, d, "auth", Some("root:rootpw"));

    // The raw db of a running member: no trailer, and no hang on etcd's lock.
    let live = c.members[0].data_dir.join("member/snap/db");
    let r = etcdops(
        &[
            "snapshot",
            "status",
            "--skip-check",
            "-w",
            "json",
            &live.display().to_string(),
        ],
        &[],
    );
    assert!(r.elapsed < Duration::from_secs(20), "took {:?}", r.elapsed);
    if r.code == 0 {
        assert_eq!(r.json()["trailer"], "absent");
    } else {
        assert_eq!(r.code, 2, "{r:?}");
    }
    drop(big);
}

#[test]
fn parity_with_etcdutl_on_etcd_3_5_1_three_members() {
    stages(Version::V3_5_1, 3);
}

#[test]
fn parity_with_etcdutl_on_etcd_3_4_23() {
    stages(Version::V3_4_23, 1);
}

/// Page ids of the first page of each type in a database (scanning headers page by page).
fn find_page(bytes: &[u8], page_size: usize, flags: u16) -> usize {
    (2..bytes.len() / page_size)
        .find(|i| {
            let off = i * page_size;
            let id = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
            let f = u16::from_le_bytes(bytes[off + 8..off + 10].try_into().unwrap());
            id == *i as u64 && f == flags
        })
        .unwrap_or_else(|| panic!("no page with flags {flags:#x}"))
}

/// Corrupt and wrong input is exit 2 with one line (a flipped value: exit 1). The damaged
/// files are made from one good snapshot of 20 000 keys, taken once and shared.
mod corrupt_and_wrong_input {
    use super::*;

    const PS: usize = 4096;

    /// The good snapshot's bytes: etcd 3.5.1 started, filled, saved with etcdctl and stopped
    /// by the first case that needs it.
    fn good() -> &'static [u8] {
        static GOOD: OnceLock<Vec<u8>> = OnceLock::new();
        GOOD.get_or_init(|| {
            let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
            let mut tc = c.client(None);
            let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..20_000)
                .map(|i| {
                    (
                        format!("/registry/pods/ns/p{i:05}").into_bytes(),
                        vec![b'x'; 100],
                    )
                })
                .collect();
            tc.put_all(&kvs, 100);
            let dir = tempfile::tempdir().unwrap();
            let good = dir.path().join("good.db");
            c.etcdctl_save(0, &good, None);
            std::fs::read(&good).unwrap()
        })
    }

    fn write(dir: &Path, name: &str, data: &[u8]) -> String {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p.display().to_string()
    }

    fn expect_2(path: &str, needle: &str) {
        let r = etcdops(&["snapshot", "status", path], &[]);
        assert_eq!(r.code, 2, "{path}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{path}: {}", r.stderr);
        assert!(
            r.stderr.starts_with("error: ") && r.stderr.contains(path),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains(needle),
            "{path}: wanted {needle:?} in {}",
            r.stderr
        );
        assert!(r.stdout.is_empty());
    }

    #[test]
    fn empty_file() {
        let dir = tempfile::tempdir().unwrap();
        expect_2(&write(dir.path(), "empty.db", &[]), "too small");
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        expect_2(
            &dir.path().join("missing.db").display().to_string(),
            "No such file",
        );
    }

    #[test]
    fn directory() {
        let dir = tempfile::tempdir().unwrap();
        expect_2(&dir.path().display().to_string(), "directory");
    }

    #[test]
    fn random_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut x: u64 = 7;
        let random: Vec<u8> = (0..100_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        expect_2(&write(dir.path(), "random.db", &random), "meta page 0");
    }

    #[test]
    fn truncated() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = good();
        expect_2(
            &write(dir.path(), "half.db", &bytes[..bytes.len() / 2]),
            "truncated",
        );
    }

    /// A flipped byte in each meta page.
    #[test]
    fn flipped_meta_pages() {
        let dir = tempfile::tempdir().unwrap();
        for meta in 0..2 {
            let mut b = good().to_vec();
            b[meta * PS + 16 + 40] ^= 0x01; // pgid field
            expect_2(
                &write(dir.path(), &format!("meta{meta}.db"), &b),
                &format!("meta page {meta}"),
            );
        }
    }

    /// A byte-swapped (big-endian) magic.
    #[test]
    fn big_endian_magic() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = good().to_vec();
        b[16..20].reverse();
        b[PS + 16..PS + 20].reverse();
        expect_2(
            &write(dir.path(), "bigendian.db", &b),
            "big-endian bbolt files are not supported",
        );
    }

    /// A branch page whose first child id is flipped.
    #[test]
    fn flipped_branch_page() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = good();
        let branch = find_page(bytes, PS, 0x01);
        let mut b = bytes.to_vec();
        b[branch * PS + 16 + 8 + 6] ^= 0x40;
        expect_2(
            &write(dir.path(), "branch.db", &b),
            "integrity check failed",
        );
    }

    /// A leaf whose element table is flipped.
    #[test]
    fn flipped_leaf_page() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = good();
        let leaf = find_page(bytes, PS, 0x02);
        let mut b = bytes.to_vec();
        b[leaf * PS + 16 + 4 + 2] ^= 0x10;
        expect_2(&write(dir.path(), "leaf.db", &b), &format!("page {leaf}"));
    }

    /// A flipped byte in a value: the structure is sound, the trailer is not. Exit 1, status
    /// shown.
    #[test]
    fn flipped_value_fails_the_trailer_with_exit_1() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = good();
        let leaf = find_page(bytes, PS, 0x02);
        let mut b = bytes.to_vec();
        let last_leaf_data = leaf * PS + PS - 10;
        b[last_leaf_data] ^= 0x01;
        let p = write(dir.path(), "value.db", &b);
        let r = etcdops(&["snapshot", "status", "-w", "json", &p], &[]);
        assert_eq!(r.code, 1, "{r:?}");
        assert_eq!(r.json()["trailer"], "mismatch");
        assert!(r.stderr.contains("fails verification"), "{}", r.stderr);
    }

    /// The same file without its trailer is a raw db: status works and says so.
    #[test]
    fn raw_db_without_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = good();
        let raw = write(dir.path(), "raw.db", &bytes[..bytes.len() - 32]);
        let r = etcdops(&["snapshot", "status", "-w", "json", &raw], &[]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.json()["trailer"], "absent");
    }
}

/// Whole transcripts of `snapshot status`: the bundled example, a missing file, a truncated
/// one, and one whose value fails the trailer.
mod transcripts {
    use super::*;
    use crate::common::repo;
    use crate::common::run::{assert_transcript, Transcript};

    fn status(path: &Path) -> Transcript {
        Transcript::run(&["snapshot", "status", &path.display().to_string()], &[])
    }

    #[test]
    fn ok() {
        assert_transcript!("ok", status(&repo().join("examples/k8s-small.db")));
    }

    #[test]
    fn json() {
        let example = repo().join("examples/k8s-small.db");
        let t = Transcript::run(
            &[
                "snapshot",
                "status",
                "-w",
                "json",
                &example.display().to_string(),
            ],
            &[],
        );
        assert_transcript!("json", t);
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_transcript!("missing_file", status(&dir.path().join("missing.db")));
    }

    #[test]
    fn truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(repo().join("examples/k8s-small.db")).unwrap();
        let half = dir.path().join("half.db");
        std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
        assert_transcript!("truncated_file", status(&half));
    }

    #[test]
    fn flipped_value_fails_the_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = std::fs::read(repo().join("examples/k8s-small.db")).unwrap();
        let leaf = find_page(&bytes, 4096, 0x02);
        bytes[leaf * 4096 + 4096 - 10] ^= 0x01;
        let flipped = dir.path().join("flipped.db");
        std::fs::write(&flipped, &bytes).unwrap();
        assert_transcript!("flipped_value_fails_the_trailer", status(&flipped));
    }
}
