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
pub mod oracle;
pub mod pki;
pub mod run;
pub mod s3;

use std::path::{Path, PathBuf};

pub const INSTALL_HINT: &str = "run `bash scripts/test-deps.sh` to install etcd 3.5.1 and 3.4.23";

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
