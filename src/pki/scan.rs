//! Finding certificates: walk files and directories (bounded depth, no directory symlinks),
//! classify each file by content (PEM, kubeconfig, DER, else an error row) and find the key
//! beside a certificate.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use x509_parser::prelude::*;

use super::{Cert, Scan, ScanError, Source};

/// How deep to follow directories (kubeadm's tree is two levels deep).
const MAX_DEPTH: usize = 16;

impl Scan {
    /// Scan files, directories (recursively) and kubeconfigs. A missing path given explicitly
    /// is the caller's to report; here it becomes an error row.
    pub fn paths(paths: &[PathBuf]) -> Scan {
        let mut scan = Scan::default();
        let mut seen = BTreeSet::new();
        for p in paths {
            scan.walk(p, 0, &mut seen);
        }
        scan
    }

    fn walk(&mut self, path: &Path, depth: usize, seen: &mut BTreeSet<PathBuf>) {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if !seen.insert(canonical) {
            return;
        }
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return self.error(path, e.to_string()),
        };
        if meta.is_dir() {
            if depth >= MAX_DEPTH {
                return;
            }
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => return self.error(path, e.to_string()),
            };
            entries.sort();
            for e in entries {
                // Do not follow directory symlinks (loops); files behind links are fine.
                let is_link_dir = std::fs::symlink_metadata(&e)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false)
                    && e.is_dir();
                if !is_link_dir {
                    self.walk(&e, depth + 1, seen);
                }
            }
            return;
        }
        match super::read_pki_file(path) {
            // In a directory, a file that neither is nor is named like a certificate (`ca.srl`,
            // a README) is not a broken certificate: it is left out.
            Ok(bytes) if depth > 0 && !named_like_pki(path) && !recognised(&bytes) => {}
            Ok(bytes) => self.file(path, &bytes),
            Err(e) => self.error(path, e.to_string()),
        }
    }

    pub(super) fn error(&mut self, path: &Path, error: String) {
        self.errors.push(ScanError {
            path: path.display().to_string(),
            error,
        });
    }

    /// Classify one file by content: PEM, kubeconfig, DER, or something else.
    pub fn file(&mut self, path: &Path, bytes: &[u8]) {
        if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            return self.pem_file(path, bytes);
        }
        if looks_like_kubeconfig(bytes) {
            return self.kubeconfig(path, bytes);
        }
        match parse_x509_certificate(bytes) {
            Ok(([], _)) => {
                let source = Source::File {
                    path: path.to_path_buf(),
                    index: 0,
                    of: 1,
                };
                match Cert::parse(source, bytes.to_vec()) {
                    Ok(c) => self.certs.push(c),
                    Err(e) => self.error(path, e.to_string()),
                }
            }
            _ => self.error(path, "not a certificate, key or kubeconfig".to_string()),
        }
    }

    fn pem_file(&mut self, path: &Path, bytes: &[u8]) {
        let mut ders = Vec::new();
        for item in rustls_pemfile::read_all(&mut &bytes[..]) {
            match item {
                Ok(rustls_pemfile::Item::X509Certificate(der)) => ders.push(der.to_vec()),
                // Keys, CSRs, CRLs: recognised and skipped.
                Ok(_) => {}
                // Display, not Debug: one readable line for the operator.
                Err(e) => return self.error(path, format!("invalid PEM: {e}")),
            }
        }
        let of = ders.len();
        let key_file = sibling_key(path);
        for (index, der) in ders.into_iter().enumerate() {
            let source = Source::File {
                path: path.to_path_buf(),
                index,
                of,
            };
            match Cert::parse(source, der) {
                Ok(mut c) => {
                    // Only the first certificate of a file is the one its key belongs to.
                    if index == 0 {
                        c.key_file = key_file.clone();
                    }
                    self.certs.push(c)
                }
                Err(e) => self.error(path, e.to_string()),
            }
        }
    }

    /// Add what a live endpoint served.
    pub fn served(&mut self, endpoint: &str, der: Vec<u8>) {
        let source = Source::Served {
            endpoint: endpoint.to_string(),
        };
        match Cert::parse(source, der) {
            Ok(c) => self.certs.push(c),
            Err(e) => self.errors.push(ScanError {
                path: endpoint.to_string(),
                error: format!("served certificate: {e}"),
            }),
        }
    }
}

/// The key beside a certificate, when it exists: `foo.crt` → `foo.key`, `foo.pem` →
/// `foo-key.pem`.
fn sibling_key(path: &Path) -> Option<PathBuf> {
    let key = path.with_extension("key");
    if key != path && key.is_file() {
        return Some(key);
    }
    // cfssl and kubernetes-the-hard-way: `etcd.pem` with `etcd-key.pem`.
    let stem = path.file_stem()?.to_str()?;
    let cfssl = path.with_file_name(format!("{stem}-key.pem"));
    (path.extension().is_some_and(|e| e == "pem") && cfssl.is_file()).then_some(cfssl)
}

/// Certificate, key and kubeconfig file names: what a scan must report when it cannot read.
fn named_like_pki(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    matches!(
        ext.as_deref(),
        Some("crt" | "pem" | "cer" | "der" | "cert" | "key" | "conf" | "kubeconfig")
    )
}

/// PEM, a kubeconfig, or one DER certificate.
fn recognised(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
        || looks_like_kubeconfig(bytes)
        || matches!(parse_x509_certificate(bytes), Ok(([], _)))
}

fn looks_like_kubeconfig(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    text.contains("kind: Config") || (text.contains("clusters:") && text.contains("users:"))
}
