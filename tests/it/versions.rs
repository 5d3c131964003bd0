//! The etcd people run today: data written by etcd 3.6 and 3.7 (made with etcdops' own bbolt
//! writer: their binaries cannot be installed here) against the 3.5 binaries we have, and the
//! choices that depend on the release (docs/compatibility.md).

use crate::common::s;

use crate::common::cluster::Version;
use crate::common::run::etcdops;
use crate::common::{edited_example, repo, versioned_example};

/// kubeadm 1.31's manifest with another image.
fn kubeadm_manifest_with_image(image: &str) -> String {
    let fixture =
        std::fs::read_to_string(repo().join("tests/fixtures/manifests/kubeadm-1.31.yaml")).unwrap();
    fixture.replace(
        "    image: registry.k8s.io/etcd:3.5.15-0",
        &format!("    image: {image}"),
    )
}

/// A 3.5 binary would boot 3.6 or 3.7 data by ignoring its versions: `verify --boot` refuses
/// it before starting it, naming what the data needs; on data it may run, it says which
/// etcd it booted.
#[test]
fn verify_boot_refuses_an_etcd_older_than_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "3.6.db",
            Some("3.6.0"),
            "3.6.0",
            "3.6",
            "meta/storageVersion 3.6.0",
        ),
        (
            "3.7.db",
            Some("3.6.0"),
            "3.7.0",
            "3.7",
            "cluster/clusterVersion 3.7.0",
        ),
        (
            "3.7s.db",
            Some("3.7.0"),
            "3.6.0",
            "3.7",
            "meta/storageVersion 3.7.0",
        ),
    ];
    for (name, storage, cluster, needs, why) in cases {
        let snap = dir.path().join(name);
        versioned_example(&snap, storage, cluster);
        let plain = etcdops(&["snapshot", "verify", &s(&snap)], &[]);
        assert_eq!(plain.code, 0, "{name}: the file itself is sound: {plain:?}");
        for version in Version::BOTH_3_5 {
            let etcd = version.etcd();
            let r = etcdops(
                &[
                    "snapshot",
                    "verify",
                    &s(&snap),
                    "--boot",
                    "--etcd",
                    &s(&etcd),
                ],
                &[("TMPDIR", &s(dir.path()))],
            );
            assert_eq!(r.code, 1, "{name} on {version:?}: {r:?}");
            let boot = r.stdout.lines().find(|l| l.contains("boot")).unwrap();
            assert!(
                boot.contains(&format!("needs etcd {needs} or later ({why})"))
                    && boot.contains(&format!("is etcd {}", version.expected_version())),
                "{name} on {version:?}: {}",
                r.stdout
            );
        }
    }
    let example = s(&repo().join("examples/k8s-small.db"));
    let etcd = Version::V3_5_30.etcd();
    let r = etcdops(
        &[
            "snapshot",
            "verify",
            &example,
            "--boot",
            "--etcd",
            &s(&etcd),
            "-w",
            "json",
        ],
        &[("TMPDIR", &s(dir.path()))],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let checks = r.json()["checks"].as_array().unwrap().clone();
    let boot = checks.iter().find(|c| c["check"] == "boot").unwrap();
    assert!(
        boot["detail"]
            .as_str()
            .unwrap()
            .starts_with("etcd 3.5.30 ("),
        "{boot}"
    );
}

/// A restore whose target release is known and older than the data is refused before anything
/// is written, naming both releases and `etcdutl migrate`; the report says what the data needs.
#[test]
fn restore_refuses_a_target_older_than_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("3.6.db");
    versioned_example(&snap, Some("3.6.0"), "3.6.0");
    let target = dir.path().join("restored");
    let restore = |extra: &[&str], env: &[(&str, &str)]| {
        let mut argv = vec!["snapshot", "restore"];
        let snap_s = s(&snap);
        let target_s = s(&target);
        argv.extend([snap_s.as_str(), "--data-dir", target_s.as_str()]);
        argv.extend(extra);
        etcdops(&argv, env)
    };
    let r = restore(&["--etcd-version", "3.5.21"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    for needle in [
        "needs etcd 3.6 or later",
        "etcd 3.5.21 will run it",
        "etcdutl migrate",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    assert!(!target.exists());
    let r = restore(&["--etcd-version", "latest"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    // 3.7 data (its cluster version) and a 3.6 target.
    let snap_3_7 = dir.path().join("3.7.db");
    versioned_example(&snap_3_7, Some("3.7.0"), "3.7.0");
    let r = etcdops(
        &[
            "snapshot",
            "restore",
            &s(&snap_3_7),
            "--data-dir",
            &s(&target),
            "--etcd-version",
            "3.6.10",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("needs etcd 3.7 or later"), "{}", r.stderr);
    assert!(!target.exists());

    // The target from the manifest's image tag (a digest after it, a registry port before).
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let manifest = manifests.join("etcd.yaml");
    for (image, refused) in [
        ("registry.k8s.io/etcd:3.5.15-0", true),
        ("my.registry:5000/etcd:3.6.5-0@sha256:4f1a", false),
    ] {
        std::fs::write(&manifest, kubeadm_manifest_with_image(image)).unwrap();
        let r = restore(
            &["--from-manifest", &s(&manifest), "--dry-run", "-w", "json"],
            &[],
        );
        if refused {
            assert_eq!(r.code, 2, "{image}: {r:?}");
            assert!(r.stderr.contains("the manifest's image"), "{}", r.stderr);
        } else {
            assert_eq!(r.code, 0, "{image}: {r:?}");
            assert_eq!(r.json()["needs_etcd"], "3.6");
        }
    }
    // 3.7 data and a manifest whose image runs 3.6: refused, nothing written, both named.
    std::fs::write(
        &manifest,
        kubeadm_manifest_with_image("registry.k8s.io/etcd:3.6.5-0"),
    )
    .unwrap();
    let r = etcdops(
        &[
            "snapshot",
            "restore",
            &s(&snap_3_7),
            "--data-dir",
            &s(&target),
            "--from-manifest",
            &s(&manifest),
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    for needle in [
        "needs etcd 3.7 or later",
        "3.6.5",
        "the manifest's image",
        "etcdutl migrate",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    assert!(!target.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "only the two snapshots and the manifests dir"
    );
    let r = restore(&["--etcd-version", "3.6"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("needs:             etcd ≥ 3.6 (meta/storageVersion 3.6.0)"),
        "{}",
        r.stdout
    );
}

/// `snapshot status` counts as the etcdutl the user has: 3.5 (every bucket entry) for files
/// 3.5 wrote, 3.6 (live user keys, VERSION) for 3.6 files, for any file with
/// `--rules etcdutl-3.6`, and on a node whose manifest image is 3.6+; JSON has both totals.
#[test]
fn status_counts_as_the_etcdutl_the_node_runs() {
    let example = s(&repo().join("examples/k8s-small.db"));
    let status = |extra: &[&str], env: &[(&str, &str)]| {
        let mut argv = vec!["snapshot", "status", example.as_str()];
        argv.extend(extra);
        etcdops(&argv, env)
    };
    let plain = status(&["-w", "simple"], &[]);
    assert!(plain.stdout.contains(", 30, 325, "), "{}", plain.stdout);
    let as_3_6 = status(&["-w", "simple", "--rules", "etcdutl-3.6"], &[]);
    // etcdutl 3.6 leaves the empty VERSION as a trailing separator.
    assert!(as_3_6.stdout.contains(", 30, 306, "), "{}", as_3_6.stdout);
    assert!(as_3_6.stdout.trim_end().ends_with(','), "{}", as_3_6.stdout);
    let json = status(&["-w", "json"], &[]).json();
    assert_eq!(json["totalKey"], 325);
    assert_eq!(json["totalKeyEtcdutl35"], 325);
    assert_eq!(json["totalKeyEtcdutl36"], 306);
    assert_eq!(json["rules"], "etcdutl-3.5");
    assert_eq!(json["version"], "");

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("etcd.yaml");
    std::fs::write(
        &manifest,
        kubeadm_manifest_with_image("registry.k8s.io/etcd:3.6.5-0"),
    )
    .unwrap();
    let m = s(&manifest);
    let on_3_6_node = status(&["-w", "json"], &[("ETCDOPS_MANIFEST", &m)]).json();
    assert_eq!(on_3_6_node["totalKey"], 306);
    assert_eq!(on_3_6_node["rules"], "etcdutl-3.6");
    let forced = status(
        &["-w", "json", "--rules", "etcdutl-3.5"],
        &[("ETCDOPS_MANIFEST", &m)],
    );
    assert_eq!(forced.json()["totalKey"], 325);

    // A file etcd 3.6 wrote counts as 3.6 unless told otherwise.
    let snap = dir.path().join("3.6.db");
    versioned_example(&snap, Some("3.6.0"), "3.6.0");
    let r = etcdops(&["snapshot", "status", &s(&snap), "-w", "simple"], &[]);
    assert!(r.stdout.trim_end().ends_with(", 3.6.0"), "{}", r.stdout);
    assert!(r.stdout.contains(", 306, "), "{}", r.stdout);
}

/// A member etcd removed but 3.5 before 3.5.26 left in the `members` bucket (its ID also in
/// `members_removed`) is left out of the restored membership, with a note; a downgrade left
/// enabled is noted.
#[test]
fn zombie_members_are_left_out_and_a_downgrade_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("zombie.db");
    let zombie = br#"{"id":11259375,"peerURLs":["https://10.9.9.9:2380"],"name":"gone"}"#;
    edited_example(
        &snap,
        &[
            (b"members", b"abcdef", zombie),
            (b"members_removed", b"abcdef", b"removed"),
            (
                b"cluster",
                b"downgrade",
                br#"{"target-version":"3.4.0","enabled":true}"#,
            ),
        ],
    );
    let status = etcdops(&["snapshot", "status", &s(&snap), "-w", "json"], &[]);
    assert_eq!(
        status.json()["members"].as_array().unwrap().len(),
        2,
        "{status:?}"
    );
    let manifest = dir.path().join("manifests/etcd.yaml");
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    std::fs::copy(
        repo().join("tests/fixtures/manifests/kubeadm-1.31.yaml"),
        &manifest,
    )
    .unwrap();
    let r = etcdops(
        &[
            "snapshot",
            "restore",
            &s(&snap),
            "--from-manifest",
            &s(&manifest),
            "--data-dir",
            &s(&dir.path().join("restored")),
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.json()["members"].as_array().unwrap().len(),
        1,
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("member abcdef both as a member and as removed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("downgrade to 3.4.0 enabled"),
        "{}",
        r.stderr
    );
}

/// Among etcd binaries that may all run the data (3.4 data: 3.5.30 first in PATH, then
/// 3.4.23), the one of the minor the node's manifest image names is booted; without a
/// manifest, the first.
#[test]
fn verify_boot_prefers_the_minor_of_the_manifest_image() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("3.4.db");
    versioned_example(&snap, None, "3.4.0");
    let mut path = Vec::new();
    for version in [Version::V3_5_30, Version::V3_4_23] {
        let bin = dir.path().join(version.expected_version());
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(version.etcd(), bin.join("etcd")).unwrap();
        path.push(s(&bin));
    }
    let path = path.join(":");
    let manifest = dir.path().join("etcd.yaml");
    std::fs::write(
        &manifest,
        kubeadm_manifest_with_image("registry.k8s.io/etcd:3.4.13-0"),
    )
    .unwrap();
    let none = dir.path().join("no-manifest.yaml");
    for (m, booted) in [(&manifest, "etcd 3.4.23 ("), (&none, "etcd 3.5.30 (")] {
        let r = etcdops(
            &["snapshot", "verify", &s(&snap), "--boot", "-w", "json"],
            &[
                ("PATH", &path),
                ("TMPDIR", &s(dir.path())),
                ("ETCDOPS_MANIFEST", &s(m)),
            ],
        );
        assert_eq!(r.code, 0, "{m:?}: {r:?}");
        let checks = r.json()["checks"].as_array().unwrap().clone();
        let boot = checks.iter().find(|c| c["check"] == "boot").unwrap();
        assert!(
            boot["detail"].as_str().unwrap().starts_with(booted),
            "{m:?}: {boot}"
        );
    }
}

/// Without `--etcd`, every `etcd` in PATH is asked its version: one older than the data is
/// passed over for one that may run it, and the one booted is named.
#[test]
fn verify_boot_picks_an_etcd_that_may_run_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut path = Vec::new();
    for version in [Version::V3_4_23, Version::V3_5_30] {
        let bin = dir.path().join(version.expected_version());
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(version.etcd(), bin.join("etcd")).unwrap();
        path.push(s(&bin));
    }
    let path = path.join(":");
    let example = s(&repo().join("examples/k8s-small.db"));
    let r = etcdops(
        &["snapshot", "verify", &example, "--boot", "-w", "json"],
        &[("PATH", &path), ("TMPDIR", &s(dir.path()))],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let checks = r.json()["checks"].as_array().unwrap().clone();
    let boot = checks.iter().find(|c| c["check"] == "boot").unwrap();
    assert!(
        boot["detail"]
            .as_str()
            .unwrap()
            .starts_with("etcd 3.5.30 ("),
        "3.4.23 comes first in PATH but is older than the data: {boot}"
    );
}
