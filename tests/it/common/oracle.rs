//! The independent tools results are compared with: etcdctl and etcdutl 3.5.1 (and Debian's
//! etcdctl 3.4.23), and the key-by-key comparison of their JSON with ours.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::cluster::Cluster;
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
    run_etcdutl_of(&etcdutl(), args)
}

/// The same with the etcdutl at `binary` (another release's, `Version::binary("etcdutl")`).
pub fn run_etcdutl_of(binary: &Path, args: &[&str]) -> String {
    let out = Command::new(binary)
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

/// etcdctl (3.5.1, or Debian's 3.4.23) against `c` with client TLS, as JSON.
pub fn etcdctl_json(c: &Cluster, binary: &Path, endpoints: &str, argv: &[&str]) -> Value {
    let out = Command::new(binary)
        .env_clear()
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(c.tls_args())
        .args(argv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {argv:?}: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every key etcdctl has is ours too, with the same JSON type, and the same value where the
/// value cannot change between the two calls.
pub fn assert_superset(theirs: &Value, ours: &Value, at: &str, volatile: &[&str]) {
    match (theirs, ours) {
        (Value::Object(t), Value::Object(o)) => {
            for (k, tv) in t {
                let ov = o
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}.{k}: missing in ours: {ours}"));
                assert_superset(tv, ov, &format!("{at}.{k}"), volatile);
            }
        }
        (Value::Array(t), Value::Array(o)) => {
            assert_eq!(t.len(), o.len(), "{at}: {theirs} vs {ours}");
            for (i, (tv, ov)) in t.iter().zip(o).enumerate() {
                assert_superset(tv, ov, &format!("{at}[{i}]"), volatile);
            }
        }
        (t, o) => {
            assert_eq!(
                std::mem::discriminant(t),
                std::mem::discriminant(o),
                "{at}: {t} vs {o}"
            );
            if !volatile.iter().any(|v| at.ends_with(v)) {
                assert_eq!(t, o, "{at}");
            }
        }
    }
}
