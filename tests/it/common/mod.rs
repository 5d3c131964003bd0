//! Test harness, one module per concern:
//!
//! - [`pki`]: a kubeadm-shaped PKI generated at test time with rcgen;
//! - [`cluster`]: real etcd processes with client TLS on free loopback ports, static-pod
//!   manifests, a test client;
//! - [`run`]: the built `etcdops` binary run with a scrubbed environment;
//! - [`oracle`]: etcdctl and etcdutl 3.5.1, the independent tools results are compared with.
//!
//! The etcd binaries come from `scripts/test-deps.sh`; a test that cannot find them fails with
//! that command in its message. It never passes silently.

pub mod cluster;
pub mod faulty_s3;
pub mod oracle;
pub mod pki;
pub mod run;
pub mod s3;

use std::path::{Path, PathBuf};

pub const INSTALL_HINT: &str = "run `bash scripts/test-deps.sh` to install etcd 3.5.1 and 3.4.23";

/// A path as an argument.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Temporaries of ours in `dir` (`.NAME.etcdops-PID-RANDOM`).
pub fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.contains(".etcdops-"))
        .collect()
}

/// A new age identity file in `dir` (Debian's `age-keygen`), and its public key.
pub fn age_identity(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("age.key");
    let out = std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .expect("age-keygen (scripts/test-deps.sh installs age)");
    assert!(out.status.success());
    let text = std::fs::read_to_string(&key).unwrap();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    (key, public)
}

/// The generated name of the `i`-th (from 0, below 60) older save of the member that saved
/// `newest`: 2026-01-01 onwards, an hour and a minute apart.
pub fn older_name(newest: &str, i: usize) -> String {
    let node = newest
        .strip_prefix("etcd-")
        .and_then(|n| n.rsplit_once('-'))
        .unwrap()
        .0;
    format!(
        "etcd-{node}-2026010{}T{:02}{:02}00Z.db",
        1 + i / 24,
        i % 24,
        i
    )
}

/// `count` older saves of the member that saved `made` (whose sidecar is `sidecar`) into
/// `into`: hard links of `made` under [`older_name`]s (those missing), each with the sidecar's
/// metadata under its own name.
pub fn older_copies(made: &Path, sidecar: &Path, into: &Path, count: usize) {
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(sidecar).unwrap()).unwrap();
    let newest = meta["name"].as_str().unwrap();
    for i in 0..count {
        let n = older_name(newest, i);
        let p = into.join(&n);
        if !p.exists() {
            std::fs::hard_link(made, &p).unwrap();
        }
        let mut m = meta.clone();
        m["name"] = n.clone().into();
        std::fs::write(
            into.join(format!("{n}.json")),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
    }
}

/// The bundled example (written by etcd 3.5.1) as a newer etcd would have left it: with
/// `meta/storageVersion` set to `storage` (when given) and `cluster/clusterVersion` to
/// `cluster`. etcd 3.6/3.7 binaries cannot be installed here; their data can be made.
pub fn versioned_example(dest: &Path, storage: Option<&str>, cluster: &str) {
    let mut edits: Vec<(&[u8], &[u8], &[u8])> =
        vec![(b"cluster", b"clusterVersion", cluster.as_bytes())];
    if let Some(v) = storage {
        edits.push((b"meta", b"storageVersion", v.as_bytes()));
    }
    edited_example(dest, &edits);
}

/// The bundled example with `(bucket, key, value)` set in top-level buckets (created when
/// missing), written with etcdops' own bbolt writer, sha256 trailer appended.
pub fn edited_example(dest: &Path, edits: &[(&[u8], &[u8], &[u8])]) {
    use etcdops::bolt::reader::bucket_root;
    use etcdops::bolt::writer::Writer;
    use etcdops::bolt::Db;
    use etcdops::bolt::{bucket_entries, Entry};
    use sha2::Digest;
    let example = std::fs::read(repo().join("examples/k8s-small.db")).unwrap();
    std::fs::write(dest, &example[..example.len() - 32]).unwrap();
    let mut db = Db::open_file(dest).unwrap();
    let meta = *db.meta();
    let root = db.root();
    let mut top = bucket_entries(&mut db, &root).unwrap();
    let mut w = Writer::new(&meta);
    let buckets: std::collections::BTreeSet<&[u8]> = edits.iter().map(|e| e.0).collect();
    for name in buckets {
        let mut entries = match top.iter().find(|e| e.key == name) {
            Some(e) => bucket_entries(&mut db, &bucket_root(&e.value).unwrap()).unwrap(),
            None => Vec::new(),
        };
        for (_, key, value) in edits.iter().filter(|e| e.0 == name) {
            entries.retain(|e| e.key != *key);
            entries.push(Entry {
                key: key.to_vec(),
                value: value.to_vec(),
                bucket: false,
            });
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let value = w.bucket_value(&entries, 0);
        top.retain(|e| e.key != name);
        top.push(Entry {
            key: name.to_vec(),
            value,
            bucket: true,
        });
    }
    top.sort_by(|a, b| a.key.cmp(&b.key));
    let new_root = w.tree(&top);
    let file = std::fs::OpenOptions::new().write(true).open(dest).unwrap();
    w.commit(&file, &meta, new_root).unwrap();
    drop(file);
    let mut bytes = std::fs::read(dest).unwrap();
    let sum = sha2::Sha256::digest(&bytes);
    bytes.extend_from_slice(&sum);
    std::fs::write(dest, bytes).unwrap();
}
