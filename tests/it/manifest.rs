//! `manifest-read` on manifests in the shapes kubeadm writes and people edit, an etcd config
//! file and a systemd unit; bad manifests; `--update-manifest`; and the end-to-end drill: save
//! with zero flags from a manifest-described etcd, restore with `--from-manifest
//! --update-manifest`, start etcd again from the updated manifest.

use std::path::{Path, PathBuf};

use crate::common::cluster::{write_kubeadm_manifest, Cluster, ClusterOptions, Version};
use crate::common::repo;
use crate::common::run::etcdops;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/manifests").join(name)
}

fn read(path: &Path) -> Value {
    let r = etcdops(
        &[
            "manifest-read",
            "-w",
            "json",
            "--manifest",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}: {r:?}", path.display());
    r.json()
}

#[test]
fn every_field_of_every_shape() {
    let m = read(&fixture("kubeadm-1.24.yaml"));
    assert_eq!(m["kind"], "static-pod");
    assert_eq!(m["name"], "cp1");
    assert_eq!(m["data_dir"], "/var/lib/etcd");
    assert_eq!(m["host_data_dir"], "/var/lib/etcd");
    assert_eq!(m["data_volume"], "etcd-data");
    assert_eq!(
        m["endpoints"],
        serde_json::json!(["https://127.0.0.1:2379", "https://192.168.56.10:2379"])
    );
    assert_eq!(m["cacert"], "/etc/kubernetes/pki/etcd/ca.crt");
    assert_eq!(m["cert"], "/etc/kubernetes/pki/etcd/server.crt");
    assert_eq!(m["key"], "/etc/kubernetes/pki/etcd/server.key");
    assert_eq!(m["peer_cert"], "/etc/kubernetes/pki/etcd/peer.crt");
    assert_eq!(m["peer_key"], "/etc/kubernetes/pki/etcd/peer.key");
    assert_eq!(m["peer_cacert"], "/etc/kubernetes/pki/etcd/ca.crt");
    assert_eq!(m["initial_cluster"], "cp1=https://192.168.56.10:2380");
    assert_eq!(
        m["initial_advertise_peer_urls"],
        "https://192.168.56.10:2380"
    );
    assert_eq!(
        m["initial_cluster_token"], "etcd-cluster",
        "etcd's default when absent"
    );
    assert_eq!(m["image"], "k8s.gcr.io/etcd:3.5.3-0");
    assert_eq!(m["version"], "3.5.3");

    let m = read(&fixture("kubeadm-1.31.yaml"));
    assert_eq!(m["version"], "3.5.15");
    assert_eq!(m["quota_backend_bytes"], "8589934592");

    let m = read(&fixture("ha-hand-edited.yaml"));
    assert_eq!(m["name"], "cp2");
    assert_eq!(m["host_data_dir"], "/var/lib/etcd-from-backup");
    assert_eq!(
        m["endpoints"][0], "https://127.0.0.1:2379",
        "loopback first"
    );
    assert_eq!(m["endpoints"][1], "https://10.0.0.12:2379");
    assert_eq!(m["initial_cluster_token"], "tok-prod");
    assert_eq!(m["initial_cluster_state"], "existing");
    assert_eq!(
        m["initial_cluster"],
        "cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp3=https://10.0.0.13:2380"
    );
    assert_eq!(m["version"], "3.5.9");

    let m = read(&fixture("etcd.conf.yml"));
    assert_eq!(m["kind"], "config-file");
    assert_eq!(m["name"], "ext1");
    assert_eq!(m["host_data_dir"], "/var/lib/etcd-ext");
    assert_eq!(m["endpoints"][0], "https://127.0.0.1:2379");
    assert_eq!(m["cacert"], "/etc/etcd/pki/ca.crt");
    assert_eq!(m["cert"], "/etc/etcd/pki/server.crt");
    assert_eq!(m["peer_cert"], "/etc/etcd/pki/peer.crt");
    assert_eq!(m["initial_cluster_token"], "ext-token");
    assert_eq!(m["quota_backend_bytes"], "4294967296");

    let m = read(&fixture("etcd.service"));
    assert_eq!(m["kind"], "systemd-unit");
    assert_eq!(m["name"], "unit1");
    assert_eq!(m["host_data_dir"], "/var/lib/etcd-unit");
    assert_eq!(m["endpoints"][0], "https://127.0.0.1:2379");
    assert_eq!(m["cert"], "/etc/etcd/server.pem");
    assert_eq!(m["key"], "/etc/etcd/server-key.pem");
    assert_eq!(m["cacert"], "/etc/etcd/ca.pem");
    assert_eq!(m["initial_cluster_token"], "unit-token");

    // --env and --commands.
    let f = fixture("kubeadm-1.24.yaml");
    let r = etcdops(
        &["manifest-read", "--env", "--manifest", f.to_str().unwrap()],
        &[],
    );
    assert_eq!(
        r.stdout,
        "export ETCDCTL_API=3\nexport ETCDCTL_ENDPOINTS=https://127.0.0.1:2379\nexport ETCDCTL_CACERT=/etc/kubernetes/pki/etcd/ca.crt\nexport ETCDCTL_CERT=/etc/kubernetes/pki/etcd/server.crt\nexport ETCDCTL_KEY=/etc/kubernetes/pki/etcd/server.key\n"
    );
    let r = etcdops(
        &[
            "manifest-read",
            "--commands",
            "--manifest",
            f.to_str().unwrap(),
        ],
        &[],
    );
    assert!(r.stdout.contains("ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key snapshot save"), "{}", r.stdout);
    assert!(r.stdout.contains("etcdutl snapshot restore /var/lib/etcd-backup.db --data-dir=/var/lib/etcd-restore --name=cp1 --initial-cluster=cp1=https://192.168.56.10:2380 --initial-advertise-peer-urls=https://192.168.56.10:2380 --initial-cluster-token=etcd-cluster"), "{}", r.stdout);
    let r = etcdops(&["manifest-read", "--manifest", f.to_str().unwrap()], &[]);
    assert!(
        r.stdout.contains("HOST DATA DIR") || r.stdout.contains("host data dir"),
        "{}",
        r.stdout
    );
}

#[test]
fn bad_manifests_are_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let no_volume = std::fs::read_to_string(fixture("kubeadm-1.24.yaml"))
        .unwrap()
        .replace(
            "    - mountPath: /var/lib/etcd\n      name: etcd-data\n",
            "",
        );
    for (path, needle) in [
        (dir.path().join("missing.yaml"), "missing.yaml"),
        (w("notyaml.yaml", "spec: [\n  - {\n"), "not valid YAML"),
        (w("nopod.yaml", "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: nginx\n    image: nginx\n"), "no etcd container"),
        (w("novolume.yaml", &no_volume), "no hostPath volume is mounted at the data dir /var/lib/etcd"),
    ] {
        let r = etcdops(&["manifest-read", "--manifest", path.to_str().unwrap()], &[]);
        assert_eq!(r.code, 2, "{}: {r:?}", path.display());
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(needle), "{}: {}", path.display(), r.stderr);
    }
}

/// Start etcd as kubelet would from a static-pod manifest: its command line as written, the
/// data dir's hostPath mounted at `--data-dir` (here: substituted), TLS from the harness.
fn run_static_pod(manifest: &Path, version: Version) -> Cluster {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    let args: Vec<String> = doc["spec"]["containers"][0]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let flag = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap()
            .to_string()
    };
    let host_data = doc["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "etcd-data")
        .unwrap()["hostPath"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    Cluster::boot(
        version,
        &[(
            flag("name"),
            PathBuf::from(host_data),
            flag("initial-advertise-peer-urls"),
        )],
    )
}

#[test]
fn save_restore_and_update_the_static_pod_3_5_1() {
    save_restore_and_update_the_static_pod(Version::V3_5_1);
}

#[test]
fn save_restore_and_update_the_static_pod_3_5_30() {
    save_restore_and_update_the_static_pod(Version::V3_5_30);
}

fn save_restore_and_update_the_static_pod(version: Version) {
    let c = Cluster::start(ClusterOptions::new(version, 1));
    let top = c.dir.path().join("etc-kubernetes");
    let manifests = top.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let manifest = manifests.join("etcd.yaml");
    write_kubeadm_manifest(&c, 0, &manifest);
    let m = manifest.to_str().unwrap();

    let mut tc = c.client(None);
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..500)
        .map(|i| {
            (
                format!("/registry/pods/p{i}").into_bytes(),
                b"before".to_vec(),
            )
        })
        .collect();
    tc.put_all(&kvs, 100);
    let dump = tc.dump();

    // Save with zero flags: everything from the manifest.
    let snap = c.dir.path().join("backup.db");
    let r = etcdops(
        &["snapshot", "save", snap.to_str().unwrap(), "--manifest", m],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    tc.rt
        .block_on(tc.client.put("/registry/pods/after-backup", "lost", None))
        .unwrap();
    drop(tc);

    // Dry run: the diff, and nothing changes.
    let before = std::fs::read(&manifest).unwrap();
    let new_dir = c.dir.path().join("restored-data");
    let r = etcdops(
        &[
            "snapshot",
            "restore",
            snap.to_str().unwrap(),
            "--from-manifest",
            m,
            "--update-manifest",
            "--dry-run",
            "--data-dir",
            new_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("+      path: {}", new_dir.display())),
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read(&manifest).unwrap(), before);
    assert!(!new_dir.exists());
    // The snapshot right after --from-manifest (which takes an optional PATH) is the snapshot,
    // the manifest this node's (--manifest): the same plan (#28 item 17).
    let swapped = etcdops(
        &[
            "--manifest",
            m,
            "snapshot",
            "restore",
            "--from-manifest",
            snap.to_str().unwrap(),
            "--update-manifest",
            "--dry-run",
            "--data-dir",
            new_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(swapped.code, 0, "{swapped:?}");
    assert_eq!(swapped.stdout, r.stdout);
    assert!(!new_dir.exists());
    let none = etcdops(&["snapshot", "restore", "--from-manifest", m], &[]);
    assert_eq!(none.code, 2, "{none:?}");
    assert!(none.stderr.contains("no SOURCE"), "{}", none.stderr);
    // What its hint says: `snapshot restore --from-manifest MANIFEST SOURCE`.
    assert!(
        none.stderr
            .contains("hint: give the snapshot after the flags: etcdops snapshot restore --from-manifest [MANIFEST] SOURCE"),
        "{}",
        none.stderr
    );
    let hinted = etcdops(
        &[
            "snapshot",
            "restore",
            "--from-manifest",
            m,
            snap.to_str().unwrap(),
            "--update-manifest",
            "--dry-run",
            "--data-dir",
            new_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(hinted.code, 0, "{hinted:?}");
    assert_eq!(hinted.stdout, r.stdout);

    // The real thing.
    let r = etcdops(
        &[
            "snapshot",
            "restore",
            snap.to_str().unwrap(),
            "--from-manifest",
            m,
            "--update-manifest",
            "--data-dir",
            new_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("kubelet restarts etcd"), "{}", r.stderr);
    let after = std::fs::read(&manifest).unwrap();
    let old_path = c.members[0].data_dir.display().to_string();
    let (b, a) = (
        String::from_utf8(before.clone()).unwrap(),
        String::from_utf8(after).unwrap(),
    );
    let changed: Vec<(&str, &str)> = b.lines().zip(a.lines()).filter(|(x, y)| x != y).collect();
    assert_eq!(
        changed,
        [(
            format!("      path: {old_path}").as_str(),
            format!("      path: {}", new_dir.display()).as_str()
        )]
    );
    assert_eq!(
        b.len() - old_path.len(),
        a.len() - new_dir.display().to_string().len(),
        "only that value changed"
    );
    // Nothing else in the manifests directory; the backup is outside it.
    let in_dir: Vec<_> = std::fs::read_dir(&manifests)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(in_dir, ["etcd.yaml"]);
    let backups: Vec<_> = std::fs::read_dir(&top)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("etcd.yaml.etcdops-backup-")
        })
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(std::fs::read(backups[0].path()).unwrap(), before);

    // kubelet's part: stop the old pod, start etcd from the updated manifest.
    let mut c = c;
    c.kill(0);
    let restarted = run_static_pod(&manifest, version);
    let mut tc = restarted.client(None);
    assert_eq!(
        tc.dump(),
        dump,
        "the restored etcd serves the snapshot's keys, not later writes"
    );
}

/// Whole transcripts of `manifest-read`: a kubeadm 1.31 manifest as a table and as `--env`, a
/// file that is not YAML, a missing file.
mod transcripts {
    use super::*;
    use crate::common::run::{assert_transcript, Transcript};

    fn read(path: &Path, extra: &[&str]) -> Transcript {
        let mut argv = vec!["manifest-read"];
        argv.extend(extra);
        let p = path.display().to_string();
        argv.extend(["--manifest", &p]);
        Transcript::run(&argv, &[])
    }

    #[test]
    fn ok() {
        assert_transcript!("ok", read(&fixture("kubeadm-1.31.yaml"), &[]));
    }

    #[test]
    fn env() {
        assert_transcript!("env", read(&fixture("kubeadm-1.31.yaml"), &["--env"]));
    }

    #[test]
    fn not_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notyaml.yaml");
        std::fs::write(&p, "spec: [\n  - {\n").unwrap();
        assert_transcript!("not_yaml", read(&p, &[]));
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_transcript!("missing_file", read(&dir.path().join("etcd.yaml"), &[]));
    }
}

/// Values from a manifest never reach the terminal raw: `--env` and `--commands` quote control
/// characters as `$'\x1b...'`, tables show the kind as JSON does.
#[test]
fn hostile_values_are_quoted_not_printed_raw() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etcd.yaml");
    let text = std::fs::read_to_string(fixture("kubeadm-1.31.yaml")).unwrap();
    // YAML's double-quoted escapes put a real ESC and BEL into the value.
    let hostile = text.replace("- --name=cp1", "- \"--name=cp1\\e]0;pwned\\a\"");
    assert_ne!(hostile, text);
    std::fs::write(&path, hostile).unwrap();
    let m = path.display().to_string();
    for extra in [&["--env"][..], &["--commands"], &["-w", "simple"], &[]] {
        let mut argv = vec!["manifest-read", "--manifest", &m];
        argv.extend(extra);
        let r = etcdops(&argv, &[]);
        assert_eq!(r.code, 0, "{extra:?}: {r:?}");
        assert!(!r.stdout.contains('\u{1b}'), "{extra:?}: {:?}", r.stdout);
        assert!(!r.stdout.contains('\u{7}'), "{extra:?}: {:?}", r.stdout);
    }
    let r = etcdops(&["manifest-read", "--manifest", &m, "--commands"], &[]);
    assert!(
        r.stdout.contains("--name=$'cp1\\x1b]0;pwned\\x07'"),
        "{}",
        r.stdout
    );
    let table = etcdops(&["manifest-read", "--manifest", &m], &[]);
    assert!(table.stdout.contains("static-pod"), "{}", table.stdout);
}

/// Every kubeadm release's manifest, 1.24 to 1.36 (etcd 3.5.3 to 3.6.10 with a digest,
/// feature gates, the renamed watch flag, probes): read, exported, turned into commands, and
/// restored into with `--from-manifest --dry-run`, which takes the target release from the
/// image tag.
#[test]
fn every_kubeadm_release_reads_and_restores() {
    let example = repo().join("examples/k8s-small.db");
    for (file, version, gates, bump) in [
        ("kubeadm-1.24.yaml", "3.5.3", serde_json::json!(null), false),
        ("kubeadm-1.31.yaml", "3.5.15", serde_json::json!(null), true),
        (
            "kubeadm-1.34.yaml",
            "3.6.5",
            serde_json::json!({"InitialCorruptCheck": true}),
            true,
        ),
        (
            "kubeadm-1.36.yaml",
            "3.6.10",
            serde_json::json!({"InitialCorruptCheck": true}),
            true,
        ),
    ] {
        let f = fixture(file);
        let fs = f.to_str().unwrap();
        let m = read(&f);
        assert_eq!(m["version"], version, "{file}");
        assert_eq!(m["feature_gates"], gates, "{file}");
        assert_eq!(m["warnings"], serde_json::json!(null), "{file}: {m}");
        assert_eq!(m["cert"], "/etc/kubernetes/pki/etcd/server.crt", "{file}");
        let env = etcdops(&["manifest-read", "--env", "--manifest", fs], &[]);
        assert!(
            env.stdout
                .contains("ETCDCTL_ENDPOINTS=https://127.0.0.1:2379"),
            "{file}"
        );
        let cmds = etcdops(&["manifest-read", "--commands", "--manifest", fs], &[]);
        assert_eq!(
            cmds.stdout
                .contains("--bump-revision=1000000000 --mark-compacted"),
            bump,
            "{file}: {}",
            cmds.stdout
        );
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let copy = manifests.join("etcd.yaml");
        std::fs::copy(&f, &copy).unwrap();
        let r = etcdops(
            &[
                "snapshot",
                "restore",
                example.to_str().unwrap(),
                "--from-manifest",
                copy.to_str().unwrap(),
                "--data-dir",
                dir.path().join("restored").to_str().unwrap(),
                "--dry-run",
                "-w",
                "json",
            ],
            &[],
        );
        assert_eq!(r.code, 0, "{file}: {r:?}");
        assert_eq!(r.json()["name"], "cp1", "{file}");
        assert_eq!(r.json()["needs_etcd"], "3.5", "{file}");
    }
}

/// What an image's release makes of experimental flags: 3.7 exits on any of them, 3.6 refuses
/// one given with its feature gate or its new name; 3.5 takes them as they are.
#[test]
fn experimental_flags_are_checked_against_the_image() {
    let base = std::fs::read_to_string(fixture("kubeadm-1.31.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let with = |image: &str, extra: &str| {
        let text = base
            .replace("registry.k8s.io/etcd:3.5.15-0", image)
            .replace(
                "    - --snapshot-count=10000\n",
                &format!("    - --snapshot-count=10000\n{extra}"),
            );
        let p = dir
            .path()
            .join(format!("m{}.yaml", image.len() + extra.len()));
        std::fs::write(&p, text).unwrap();
        let r = etcdops(&["manifest-read", "--manifest", p.to_str().unwrap()], &[]);
        assert_eq!(r.code, 0, "{r:?}");
        r.stderr
    };
    let none = with("registry.k8s.io/etcd:3.5.15-0", "");
    assert!(!none.contains("warning"), "{none}");
    let v3_7 = with("registry.k8s.io/etcd:3.7.1-0", "");
    assert!(
        v3_7.contains("warning: --experimental-initial-corrupt-check: etcd 3.7.1 has no --experimental-* flags and exits 2 at start on it; use --feature-gates=InitialCorruptCheck=true"),
        "{v3_7}"
    );
    assert!(
        v3_7.contains("use --watch-progress-notify-interval=5s"),
        "{v3_7}"
    );
    let both = with(
        "registry.k8s.io/etcd:3.6.5-0",
        "    - --feature-gates=InitialCorruptCheck=true\n    - --watch-progress-notify-interval=5s\n",
    );
    assert!(
        both.contains("refuses both at once (\"cannot specify both flags\")"),
        "{both}"
    );
    assert!(
        both.contains("keep only --watch-progress-notify-interval"),
        "{both}"
    );
    let deprecated = with("registry.k8s.io/etcd:3.6.5-0", "");
    assert!(
        deprecated.contains("is deprecated in etcd 3.6.5 and removed in 3.7; use --feature-gates=InitialCorruptCheck=true"),
        "{deprecated}"
    );
}
