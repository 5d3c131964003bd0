//! The independent tools results are compared with: etcdctl and etcdutl 3.5.1.

use std::path::PathBuf;
use std::process::Command;

use super::{repo, INSTALL_HINT};

/// etcdctl 3.5.1, used as an independent client (readiness checks, writing test data).
pub fn etcdctl() -> PathBuf {
    let path = repo().join(".cache/etcd-3.5.1/etcdctl");
    assert!(
        path.is_file(),
        "etcdctl not found at {}: {INSTALL_HINT}",
        path.display()
    );
    path
}

/// etcdutl 3.5.1, the oracle for offline commands.
pub fn etcdutl() -> PathBuf {
    let path = repo().join(".cache/etcd-3.5.1/etcdutl");
    assert!(
        path.is_file(),
        "etcdutl not found at {}: {INSTALL_HINT}",
        path.display()
    );
    path
}

/// Run etcdutl with a scrubbed environment; panics when it fails.
pub fn run_etcdutl(args: &[&str]) -> String {
    let out = Command::new(etcdutl())
        .env_clear()
        .args(args)
        .output()
        .expect("running etcdutl");
    assert!(
        out.status.success(),
        "etcdutl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
