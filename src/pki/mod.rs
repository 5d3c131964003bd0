//! Certificates of a control-plane node: find them (PEM files and bundles, DER files,
//! kubeconfigs with embedded data or file references), describe them, and check how they are
//! wired (key beside a certificate matches it, a leaf verifies against a CA of the same tree and
//! does not outlive it).
//!
//! Does not: decide what is "ok" relative to a date (the command does), or talk to servers
//! (the command fetches served certificates and hands them in as [`Source::Served`]).

mod cert;
mod kubeconfig;
pub mod renew;
mod scan;
pub mod wiring;

use std::path::PathBuf;

pub use cert::{subject_alt_names, Cert, CertError, Wiring};

/// Where kubeadm keeps a control-plane node's certificates and kubeconfigs.
pub const DEFAULT_PKI: &str = "/etc/kubernetes/pki";
/// Certificate, key and kubeconfig files are a few KB; a larger file is refused, never read
/// whole (a stray archive, a symlink to `/dev/zero`). Only regular files are opened.
pub const MAX_PKI_FILE: u64 = 1 << 20;

/// A certificate, key or kubeconfig file, whole: a regular file of at most [`MAX_PKI_FILE`]
/// bytes (a FIFO, a device or a directory is refused by its type before it is opened).
pub fn read_pki_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    crate::fsutil::read_capped(path, MAX_PKI_FILE)
}
pub const DEFAULT_KUBECONFIGS: [&str; 5] = [
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
    "/etc/kubernetes/kubelet.conf",
];

/// The default scan: kubeadm's pki tree and the kubeconfigs that exist.
pub fn default_paths() -> Vec<PathBuf> {
    std::iter::once(DEFAULT_PKI)
        .chain(DEFAULT_KUBECONFIGS)
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}

/// Where a certificate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file (PEM, possibly one of several in a bundle, or DER).
    File {
        path: PathBuf,
        index: usize,
        of: usize,
    },
    /// A kubeconfig entry: `#ca` or `#client`, with the cluster or user name when there are
    /// several.
    Kubeconfig { path: PathBuf, entry: String },
    /// What a live endpoint served during a TLS handshake.
    Served { endpoint: String },
}

impl Source {
    pub fn display(&self) -> String {
        match self {
            Source::File { path, index, of } if *of > 1 => format!("{}[{index}]", path.display()),
            Source::File { path, .. } => path.display().to_string(),
            Source::Kubeconfig { path, entry } => format!("{}#{entry}", path.display()),
            Source::Served { endpoint } => format!("{endpoint} (served)"),
        }
    }
}

/// A file that looked like it should hold certificates but could not be read.
#[derive(Debug, Clone)]
pub struct ScanError {
    pub path: String,
    pub error: String,
}

/// Everything found under the scanned paths.
#[derive(Debug, Default)]
pub struct Scan {
    pub certs: Vec<Cert>,
    pub errors: Vec<ScanError>,
}
