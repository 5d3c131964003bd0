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

use std::path::PathBuf;

pub const INSTALL_HINT: &str = "run `bash scripts/test-deps.sh` to install etcd 3.5.1 and 3.4.23";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
