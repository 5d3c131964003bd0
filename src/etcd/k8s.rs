//! What a Kubernetes apiserver stored in an etcd value, for `snapshot get --decode`.
//!
//! ```text
//! protobuf   "k8s\0" ‖ runtime.Unknown { 1 typeMeta { 1 apiVersion, 2 kind }, 2 raw,
//!                                        3 contentEncoding, 4 contentType }
//!            raw = the object; its field 1 is ObjectMeta { 1 name, 3 namespace }
//! JSON       the object itself (CRDs; --storage-media-type=application/json)
//! encrypted  "k8s:enc:" ‖ provider ‖ ":" ‖ version ‖ ":" ‖ key name ‖ ":" ‖ ciphertext
//!            (aescbc, aesgcm, secretbox: v1; kms: v1 or v2)
//! ```
//!
//! Mirrors k8s.io/apimachinery pkg/runtime/serializer/protobuf/protobuf.go and
//! k8s.io/apiserver pkg/storage/value/encrypt. Nothing here panics on any input.

use super::schema::varint;
use crate::output::escape;

const PROTOBUF_MAGIC: &[u8] = b"k8s\0";
const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
const PREVIEW: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Protobuf {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: Option<String>,
        raw_len: usize,
        content_type: Option<String>,
    },
    Json {
        api_version: Option<String>,
        kind: Option<String>,
        namespace: Option<String>,
        name: Option<String>,
        pretty: String,
    },
    Encrypted {
        provider: String,
        version: String,
        key_name: String,
        len: usize,
    },
    Other {
        hex_preview: String,
        len: usize,
    },
}

pub fn decode(value: &[u8]) -> Decoded {
    if let Some(rest) = value.strip_prefix(ENCRYPTED_PREFIX) {
        let mut parts = rest.splitn(4, |b| *b == b':');
        let mut next = || {
            parts
                .next()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default()
        };
        let (provider, version, key_name) = (next(), next(), next());
        return Decoded::Encrypted {
            provider,
            version,
            key_name,
            len: value.len(),
        };
    }
    if let Some(envelope) = value.strip_prefix(PROTOBUF_MAGIC) {
        if let Some(d) = protobuf(envelope) {
            return d;
        }
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(value) {
        if v.is_object() {
            let text = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_string);
            return Decoded::Json {
                api_version: text("/apiVersion"),
                kind: text("/kind"),
                namespace: text("/metadata/namespace"),
                name: text("/metadata/name"),
                pretty: serde_json::to_string_pretty(&v).unwrap_or_default(),
            };
        }
    }
    Decoded::Other {
        hex_preview: value
            .iter()
            .take(PREVIEW)
            .map(|b| format!("{b:02x}"))
            .collect(),
        len: value.len(),
    }
}

/// The length-delimited fields of a message, as (field number, bytes); `None` when it is not
/// a well-formed message.
fn fields(mut b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (tag, n) = varint(b)?;
        b = b.get(n..)?;
        match tag & 7 {
            0 => b = b.get(varint(b)?.1..)?,
            1 => b = b.get(8..)?,
            2 => {
                let (len, n) = varint(b)?;
                let end = n.checked_add(usize::try_from(len).ok()?)?;
                out.push((tag >> 3, b.get(n..end)?));
                b = b.get(end..)?;
            }
            5 => b = b.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

fn field<'a>(fs: &[(u64, &'a [u8])], n: u64) -> Option<&'a [u8]> {
    fs.iter().rev().find(|(f, _)| *f == n).map(|(_, b)| *b)
}

fn text(b: Option<&[u8]>) -> Option<String> {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
        .filter(|s| !s.is_empty())
}

fn protobuf(envelope: &[u8]) -> Option<Decoded> {
    let unknown = fields(envelope)?;
    let type_meta = fields(field(&unknown, 1)?)?;
    let raw = field(&unknown, 2).unwrap_or_default();
    // The object's metadata, when raw is a protobuf object (it is for every built-in type).
    let meta = fields(raw)
        .and_then(|o| field(&o, 1).and_then(fields))
        .unwrap_or_default();
    Some(Decoded::Protobuf {
        api_version: text(field(&type_meta, 1)).unwrap_or_default(),
        kind: text(field(&type_meta, 2)).unwrap_or_default(),
        namespace: text(field(&meta, 3)),
        name: text(field(&meta, 1)),
        raw_len: raw.len(),
        content_type: text(field(&unknown, 4)),
    })
}

impl Decoded {
    /// One line, escaped for a terminal.
    pub fn summary(&self) -> String {
        let place = |ns: &Option<String>, name: &Option<String>| match (ns, name) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            (None, Some(n)) => n.clone(),
            _ => "(no name)".to_string(),
        };
        match self {
            Decoded::Protobuf {
                api_version,
                kind,
                namespace,
                name,
                raw_len,
                ..
            } => escape(&format!(
                "{api_version} {kind} {} (protobuf, {raw_len} bytes)",
                place(namespace, name)
            )),
            Decoded::Json {
                api_version,
                kind,
                namespace,
                name,
                ..
            } => escape(&format!(
                "JSON {} {} {}",
                api_version.as_deref().unwrap_or("-"),
                kind.as_deref().unwrap_or("-"),
                place(namespace, name)
            )),
            Decoded::Encrypted {
                provider,
                version,
                key_name,
                len,
            } => escape(&format!(
                "encrypted at rest by the apiserver: {provider} {version} (key {key_name}), {len} bytes"
            )),
            Decoded::Other { hex_preview, len } => format!("binary, {len} bytes: {hex_preview}…"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Message;

    fn envelope(api: &str, kind: &str, ns: Option<&str>, name: &str) -> Vec<u8> {
        let mut meta = Message::new().bytes(1, name.as_bytes());
        if let Some(ns) = ns {
            meta = meta.bytes(3, ns.as_bytes());
        }
        let raw = Message::new().message(1, &meta).bytes(2, b"spec").finish();
        let tm = Message::new()
            .bytes(1, api.as_bytes())
            .bytes(2, kind.as_bytes());
        let u = Message::new()
            .message(1, &tm)
            .bytes(2, &raw)
            .bytes(4, b"application/vnd.kubernetes.protobuf")
            .finish();
        [PROTOBUF_MAGIC, &u].concat()
    }

    #[test]
    fn each_kind_of_value() {
        let pod = decode(&envelope("v1", "Pod", Some("default"), "nginx"));
        assert_eq!(pod.summary(), "v1 Pod default/nginx (protobuf, 24 bytes)");
        let ns = decode(&envelope("v1", "Namespace", None, "kube-system"));
        assert!(
            ns.summary().starts_with("v1 Namespace kube-system"),
            "{}",
            ns.summary()
        );
        let j = decode(br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"n"}}"#);
        assert_eq!(j.summary(), "JSON apps/v1 Deployment n/d");
        let e = decode(b"k8s:enc:aescbc:v1:key1:\x00\x01");
        assert_eq!(
            e,
            Decoded::Encrypted {
                provider: "aescbc".into(),
                version: "v1".into(),
                key_name: "key1".into(),
                len: 25
            }
        );
        let kms = decode(b"k8s:enc:kms:v2:vault:xyz");
        assert!(kms.summary().contains("kms v2 (key vault)"));
        assert!(matches!(decode(b"[1,2]"), Decoded::Other { .. }));
        assert!(matches!(decode(b"\x1b]0;title\x07"), Decoded::Other { .. }));
    }

    #[test]
    fn truncations_and_garbage_never_panic() {
        let v = envelope("v1", "Pod", Some("default"), "nginx");
        for cut in 0..v.len() {
            let _ = decode(&v[..cut]).summary();
        }
        let mut x = 9u64;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 56) as u8
                })
                .collect();
            let _ = decode(&[PROTOBUF_MAGIC, &bytes].concat()).summary();
        }
        // A name with escapes is escaped in the summary.
        let evil = decode(&envelope("v1", "Pod", Some("ns"), "a\x1b[2Jb"));
        assert!(!evil.summary().contains('\x1b'));
    }
}
