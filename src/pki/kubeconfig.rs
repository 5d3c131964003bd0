//! Certificates in kubeconfigs: the CA of each cluster and the client certificate of each
//! user, embedded (`*-data`, base64) or referenced by file (relative to the kubeconfig), with
//! the client key to check that it matches.

use std::path::Path;

use base64::Engine;
use serde_yaml_ng::Value;

use super::{Cert, Scan, Source};

/// One certificate entry of a kubeconfig: `ca`/`client` (with the cluster or user name when
/// there are several), its PEM, and the client key when there is one.
struct Entry {
    name: String,
    pem: Vec<u8>,
    key: Option<Vec<u8>>,
}

/// Where a kind of entry keeps its certificate and key.
struct Fields {
    kind: &'static str,
    list: &'static str,
    inner: &'static str,
    data: &'static str,
    file: &'static str,
    key_data: Option<&'static str>,
    key_file: Option<&'static str>,
}

const CA: Fields = Fields {
    kind: "ca",
    list: "clusters",
    inner: "cluster",
    data: "certificate-authority-data",
    file: "certificate-authority",
    key_data: None,
    key_file: None,
};
const CLIENT: Fields = Fields {
    kind: "client",
    list: "users",
    inner: "user",
    data: "client-certificate-data",
    file: "client-certificate",
    key_data: Some("client-key-data"),
    key_file: Some("client-key"),
};

fn base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(text.trim())
}

impl Scan {
    pub(super) fn kubeconfig(&mut self, path: &Path, bytes: &[u8]) {
        let doc: Value = match serde_yaml_ng::from_slice(bytes) {
            Ok(d) => d,
            Err(e) => return self.error(path, format!("kubeconfig is not valid YAML: {e}")),
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut entries = Vec::new();
        for fields in [CA, CLIENT] {
            self.entries(path, dir, &doc, &fields, &mut entries);
        }
        if entries.is_empty() {
            return self.error(path, "kubeconfig holds no certificate".to_string());
        }
        for e in entries {
            self.add_entry(path, e);
        }
    }

    /// The entries of one kind; unreadable ones become error rows.
    fn entries(&mut self, path: &Path, dir: &Path, doc: &Value, f: &Fields, out: &mut Vec<Entry>) {
        let items = doc
            .get(f.list)
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        for item in &items {
            let Some(body) = item.get(f.inner) else {
                continue;
            };
            let name = match item.get("name").and_then(Value::as_str) {
                Some(n) if items.len() > 1 => format!("{}:{n}", f.kind),
                _ if items.len() > 1 => format!("{}:", f.kind),
                _ => f.kind.to_string(),
            };
            let field = |k: &str| body.get(k).and_then(Value::as_str);
            let pem = if let Some(data) = field(f.data) {
                match base64(data) {
                    Ok(b) => b,
                    Err(e) => {
                        self.error(path, format!("{name}: {} is not base64: {e}", f.data));
                        continue;
                    }
                }
            } else if let Some(file) = field(f.file) {
                let p = dir.join(file);
                match super::read_pki_file(&p) {
                    Ok(b) => b,
                    Err(e) => {
                        self.error(path, format!("{name}: {} {}: {e}", f.file, p.display()));
                        continue;
                    }
                }
            } else {
                continue;
            };
            let key = f
                .key_data
                .and_then(field)
                .and_then(|d| base64(d).ok())
                .or_else(|| {
                    f.key_file
                        .and_then(field)
                        .and_then(|k| super::read_pki_file(&dir.join(k)).ok())
                });
            out.push(Entry { name, pem, key });
        }
    }

    /// The first certificate of an entry's PEM (the one its key belongs to).
    fn add_entry(&mut self, path: &Path, e: Entry) {
        let Some(der) = rustls_pemfile::certs(&mut &e.pem[..])
            .filter_map(|c| c.ok().map(|c| c.to_vec()))
            .next()
        else {
            return self.error(path, format!("{}: no PEM certificate", e.name));
        };
        let source = Source::Kubeconfig {
            path: path.to_path_buf(),
            entry: e.name.clone(),
        };
        match Cert::parse(source, der) {
            Ok(mut c) => {
                c.embedded_key = e.key;
                self.certs.push(c)
            }
            Err(err) => self.error(path, format!("{}: {err}", e.name)),
        }
    }
}
