//! What a Kubernetes apiserver stored in an etcd value, for `snapshot get --decode`: the type
//! and name of a protobuf object, a JSON object, the provider and key of a value encrypted at
//! rest, or a hex preview of anything else.
//!
//! ```text
//! protobuf   "k8s\0" ‖ runtime.Unknown (proto2)
//!              1 typeMeta         TypeMeta { 1 apiVersion string, 2 kind string }
//!              2 raw              bytes: the object, itself protobuf; field 1 of every
//!                                 object is ObjectMeta { 1 name, 3 namespace, … }
//!              3 contentEncoding  string (the apiserver leaves it empty)
//!              4 contentType      string (empty means application/vnd.kubernetes.protobuf)
//! JSON       the object itself, `{"apiVersion":…,"kind":…,"metadata":{"name":…}}`
//!            (custom resources; --storage-media-type=application/json)
//! encrypted  "k8s:enc:" ‖ provider ‖ ":" ‖ version ‖ ":" ‖ key name ‖ ":" ‖ ciphertext
//!            aescbc, aesgcm, secretbox: v1; kms: v1 or v2 (the name is the plugin's)
//! ```
//!
//! Mirrors k8s.io/apimachinery pkg/runtime/serializer/protobuf/protobuf.go
//! (`protoEncodingPrefix`, `Serializer.Decode`), pkg/runtime/generated.proto (`Unknown`,
//! `TypeMeta`), pkg/apis/meta/v1/generated.proto (`ObjectMeta`), and k8s.io/apiserver
//! pkg/server/options/encryptionconfig/config.go (the `k8s:enc:` prefixes, each followed by
//! `name + ":"`).
//!
//! This module classifies; it does not decrypt, does not decode objects beyond their type and
//! name, and does not follow a non-empty `contentEncoding`. It reads only along the fixed path
//! Unknown → TypeMeta and Unknown → raw → ObjectMeta, iteratively: nothing recurses, so nesting
//! in the input costs time linear in its size and no stack. Nothing here panics on any input.

use super::schema::varint;
use crate::text::escape;

/// The first four bytes of a protobuf value; the fourth is the encoding style (0: Unknown).
const PROTOBUF_MAGIC: &[u8] = b"k8s\0";
/// Every provider but identity writes this before its own `provider:version:name:` header.
const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
/// The content type that leaves `raw` a protobuf object.
const CONTENT_TYPE_PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// Bytes of an unrecognised value shown in hex.
const HEX_PREVIEW: usize = 64;
/// Longest segment of an encryption header read as a name: in a header cut short, ciphertext
/// must not pass for a key name.
const MAX_SEGMENT: usize = 256;

const UNKNOWN_TYPE_META: u32 = 1;
const UNKNOWN_RAW: u32 = 2;
const UNKNOWN_CONTENT_ENCODING: u32 = 3;
const UNKNOWN_CONTENT_TYPE: u32 = 4;
const TYPE_META_API_VERSION: u32 = 1;
const TYPE_META_KIND: u32 = 2;
const OBJECT_METADATA: u32 = 1;
const META_NAME: u32 = 1;
const META_NAMESPACE: u32 = 3;

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_START_GROUP: u64 = 3;
const WIRE_END_GROUP: u64 = 4;
const WIRE_FIXED32: u64 = 5;
/// Protobuf field numbers are 1 ..= 2^29 - 1.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// What an etcd value holds, as far as the apiserver's storage formats tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// `k8s\0` + a runtime.Unknown envelope naming the type.
    Protobuf {
        api_version: String,
        /// Never empty: the apiserver cannot read an envelope without one.
        kind: String,
        namespace: Option<String>,
        name: Option<String>,
        /// Length of the object inside the envelope.
        raw_len: usize,
        content_type: Option<String>,
    },
    /// A JSON object.
    Json {
        api_version: Option<String>,
        kind: Option<String>,
        namespace: Option<String>,
        name: Option<String>,
        pretty: String,
    },
    /// Encrypted at rest by the apiserver. Fields the header does not hold (it was cut short)
    /// are empty.
    Encrypted {
        provider: String,
        version: String,
        key_name: String,
        /// Length of the whole value.
        len: usize,
    },
    /// Anything else.
    Other {
        /// The first 64 bytes in lower-case hex.
        hex_preview: String,
        len: usize,
    },
}

/// Why a protobuf message could not be read; `at` is the offset of the field within its
/// message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum WireError {
    #[error("byte {at}: truncated or over-long varint")]
    Varint { at: usize },
    #[error("byte {at}: field number {field} is out of range")]
    FieldNumber { at: usize, field: u64 },
    #[error(
        "byte {at}: field {field} is a group (wire type {wire}), which Kubernetes never writes"
    )]
    Group { at: usize, field: u64, wire: u64 },
    #[error("byte {at}: field {field} has unknown wire type {wire}")]
    WireType { at: usize, field: u64, wire: u64 },
    #[error("byte {at}: field {field} runs past the end of its message")]
    Truncated { at: usize, field: u64 },
}

/// Why bytes after the `k8s\0` magic are not an envelope the apiserver could read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum EnvelopeError {
    #[error("nothing after the k8s\\0 magic")]
    Empty,
    #[error("runtime.Unknown: {0}")]
    Unknown(WireError),
    #[error("runtime.Unknown has no typeMeta")]
    NoTypeMeta,
    #[error("runtime.Unknown.typeMeta: {0}")]
    TypeMeta(WireError),
    #[error("runtime.Unknown.typeMeta has no kind")]
    NoKind,
}

/// Classify one etcd value. Total: every input gives a [`Decoded`].
pub fn decode(value: &[u8]) -> Decoded {
    if let Some(header) = value.strip_prefix(ENCRYPTED_PREFIX) {
        return encrypted(header, value.len());
    }
    if let Some(envelope) = value.strip_prefix(PROTOBUF_MAGIC) {
        if let Ok(d) = protobuf(envelope) {
            return d;
        }
    }
    if let Some(d) = json(value) {
        return d;
    }
    Decoded::Other {
        hex_preview: value
            .iter()
            .take(HEX_PREVIEW)
            .map(|b| format!("{b:02x}"))
            .collect(),
        len: value.len(),
    }
}

/// `provider:version:name:` after `k8s:enc:`. A segment ends at its colon; at the first one
/// without a colon in reach, it and those after it stay empty.
fn encrypted(mut header: &[u8], len: usize) -> Decoded {
    let mut segments = [String::new(), String::new(), String::new()];
    for slot in &mut segments {
        let Some((segment, rest)) = segment(header) else {
            break;
        };
        *slot = String::from_utf8_lossy(segment).into_owned();
        header = rest;
    }
    let [provider, version, key_name] = segments;
    Decoded::Encrypted {
        provider,
        version,
        key_name,
        len,
    }
}

/// The bytes before the first `:` within [`MAX_SEGMENT`] bytes, and those after it.
fn segment(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = b
        .iter()
        .take(MAX_SEGMENT.saturating_add(1))
        .position(|c| *c == b':')?;
    Some((b.get(..colon)?, b.get(colon.checked_add(1)?..)?))
}

/// A runtime.Unknown as `Serializer.Decode` accepts it: well-formed, with a kind.
fn protobuf(envelope: &[u8]) -> Result<Decoded, EnvelopeError> {
    if envelope.is_empty() {
        return Err(EnvelopeError::Empty);
    }
    let [type_meta, raw, content_encoding, content_type] = fields(
        envelope,
        [
            UNKNOWN_TYPE_META,
            UNKNOWN_RAW,
            UNKNOWN_CONTENT_ENCODING,
            UNKNOWN_CONTENT_TYPE,
        ],
    )
    .map_err(EnvelopeError::Unknown)?;
    let type_meta = type_meta.ok_or(EnvelopeError::NoTypeMeta)?;
    let [api_version, kind] = fields(type_meta, [TYPE_META_API_VERSION, TYPE_META_KIND])
        .map_err(EnvelopeError::TypeMeta)?;
    let kind = text(kind).ok_or(EnvelopeError::NoKind)?;
    let raw = raw.unwrap_or_default();
    let content_type = text(content_type);
    // Any other content type or an encoding makes raw something else than a protobuf object.
    let plain_protobuf = text(content_encoding).is_none()
        && content_type
            .as_deref()
            .is_none_or(|c| c == CONTENT_TYPE_PROTOBUF);
    let (namespace, name) = if plain_protobuf {
        object_meta(raw)
    } else {
        (None, None)
    };
    Ok(Decoded::Protobuf {
        api_version: text(api_version).unwrap_or_default(),
        kind,
        namespace,
        name,
        raw_len: raw.len(),
        content_type,
    })
}

/// Namespace and name from the ObjectMeta in field 1 of a protobuf object; none when the object
/// or its metadata is not a well-formed message.
fn object_meta(raw: &[u8]) -> (Option<String>, Option<String>) {
    let Ok([Some(meta)]) = fields(raw, [OBJECT_METADATA]) else {
        return (None, None);
    };
    match fields(meta, [META_NAMESPACE, META_NAME]) {
        Ok([namespace, name]) => (text(namespace), text(name)),
        Err(_) => (None, None),
    }
}

/// One pass over a whole message: for each wanted field number, the bytes of its last
/// length-delimited occurrence (protobuf's last-one-wins; the apiserver writes each once).
/// Fields of every other wire type are skipped; groups and anything cut short are errors.
fn fields<const N: usize>(msg: &[u8], wanted: [u32; N]) -> Result<[Option<&[u8]>; N], WireError> {
    let mut found = [None; N];
    let mut at = 0;
    while at < msg.len() {
        let (tag, body) = read_varint(msg, at)?;
        let field = tag >> 3;
        if field == 0 || field > MAX_FIELD_NUMBER {
            return Err(WireError::FieldNumber { at, field });
        }
        let wire = tag & 7;
        let (start, end) = match wire {
            WIRE_VARINT => (body, Some(read_varint(msg, body)?.1)),
            WIRE_FIXED64 => (body, body.checked_add(8)),
            WIRE_LEN => {
                let (len, start) = read_varint(msg, body)?;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|len| start.checked_add(len));
                (start, end)
            }
            WIRE_FIXED32 => (body, body.checked_add(4)),
            WIRE_START_GROUP | WIRE_END_GROUP => return Err(WireError::Group { at, field, wire }),
            _ => return Err(WireError::WireType { at, field, wire }),
        };
        let (end, bytes) = end
            .and_then(|end| Some((end, msg.get(start..end)?)))
            .ok_or(WireError::Truncated { at, field })?;
        if wire == WIRE_LEN {
            if let Some(slot) = wanted
                .iter()
                .position(|w| u64::from(*w) == field)
                .and_then(|i| found.get_mut(i))
            {
                *slot = Some(bytes);
            }
        }
        at = end;
    }
    Ok(found)
}

/// The varint at `at` in `msg`, and the offset just after it.
fn read_varint(msg: &[u8], at: usize) -> Result<(u64, usize), WireError> {
    msg.get(at..)
        .and_then(varint)
        .and_then(|(v, n)| Some((v, at.checked_add(n)?)))
        .ok_or(WireError::Varint { at })
}

/// A string field, when present and not empty. Go does not check proto2 strings for UTF-8;
/// neither do we.
fn text(b: Option<&[u8]>) -> Option<String> {
    b.filter(|b| !b.is_empty())
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// A JSON object, read for the fields every Kubernetes object has.
fn json(value: &[u8]) -> Option<Decoded> {
    // Only an object can be one; do not parse a large array or string to find out.
    if value.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    // serde_json stops at 128 levels of nesting with an error, not a stack overflow.
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    let text = |pointer: &str| {
        v.pointer(pointer)
            .and_then(|x| x.as_str())
            .map(str::to_string)
    };
    Some(Decoded::Json {
        api_version: text("/apiVersion"),
        kind: text("/kind"),
        namespace: text("/metadata/namespace"),
        name: text("/metadata/name"),
        pretty: serde_json::to_string_pretty(&v)
            .unwrap_or_else(|_| String::from_utf8_lossy(value).into_owned()),
    })
}

impl Decoded {
    /// One line for a terminal: everything taken from the value is escaped.
    pub fn summary(&self) -> String {
        let line = match self {
            Decoded::Protobuf {
                api_version,
                kind,
                namespace,
                name,
                raw_len,
                content_type,
            } => {
                let content_type = content_type
                    .as_deref()
                    .map(|c| format!(", content type {c}"))
                    .unwrap_or_default();
                format!(
                    "{} {} (protobuf{content_type}, {raw_len} bytes)",
                    words(&[api_version.as_str(), kind.as_str()]),
                    place(namespace, name).unwrap_or_else(|| "(no name)".to_string())
                )
            }
            Decoded::Json {
                api_version,
                kind,
                namespace,
                name,
                ..
            } => {
                let api_version = api_version.as_deref().unwrap_or_default();
                let kind = kind.as_deref().unwrap_or_default();
                let place = place(namespace, name).unwrap_or_default();
                match words(&[api_version, kind, place.as_str()]) {
                    w if w.is_empty() => "JSON object".to_string(),
                    w => format!("JSON {w}"),
                }
            }
            Decoded::Encrypted {
                provider,
                version,
                key_name,
                len,
            } => {
                let mut line = String::from("encrypted at rest: ");
                line.push_str(if provider.is_empty() {
                    "unknown provider"
                } else {
                    provider
                });
                // aescbc, aesgcm and secretbox have only ever been v1; kms has two.
                if !version.is_empty() && (provider == "kms" || version != "v1") {
                    line.push(' ');
                    line.push_str(version);
                }
                if !key_name.is_empty() {
                    line.push_str(&format!(" (key {key_name})"));
                }
                line.push_str(&format!(", {len} bytes"));
                line
            }
            Decoded::Other { len: 0, .. } => "empty value".to_string(),
            Decoded::Other { hex_preview, len } => {
                let more = if *len > hex_preview.len() / 2 {
                    "…"
                } else {
                    ""
                };
                format!("binary, {len} bytes: {hex_preview}{more}")
            }
        };
        escape(&line)
    }
}

/// The non-empty words, space-separated.
fn words(words: &[&str]) -> String {
    words
        .iter()
        .filter(|w| !w.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `namespace/name`, or the name alone for a cluster-scoped object.
fn place(namespace: &Option<String>, name: &Option<String>) -> Option<String> {
    match (namespace, name) {
        (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
        (None, Some(n)) => Some(n.clone()),
        (Some(ns), None) => Some(format!("{ns}/(no name)")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Message;

    /// ObjectMeta as the apiserver writes it, with fields around name and namespace.
    fn object_meta_message(namespace: Option<&str>, name: &str) -> Message {
        let mut meta = Message::new().bytes(META_NAME, name.as_bytes());
        if let Some(ns) = namespace {
            meta = meta.bytes(META_NAMESPACE, ns.as_bytes());
        }
        meta.bytes(5, b"3f0c1b4e-8d8e-4b1a-9a55-0e5a1c9f7b21") // uid
            .bytes(6, b"12345") // resourceVersion
            .uint(7, 2) // generation
            .message(8, &Message::new().uint(1, 1_700_000_000)) // creationTimestamp
            .message(11, &Message::new().bytes(1, b"app").bytes(2, b"web")) // labels
    }

    /// `k8s\0` + runtime.Unknown{typeMeta, raw = object{metadata, spec}} (+ contentType).
    fn envelope(
        api: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        content_type: Option<&str>,
    ) -> Vec<u8> {
        let raw = Message::new()
            .message(OBJECT_METADATA, &object_meta_message(namespace, name))
            .message(2, &Message::new().bytes(1, b"spec"))
            .finish();
        let type_meta = Message::new()
            .bytes(TYPE_META_API_VERSION, api.as_bytes())
            .bytes(TYPE_META_KIND, kind.as_bytes());
        let mut unknown = Message::new()
            .message(UNKNOWN_TYPE_META, &type_meta)
            .bytes(UNKNOWN_RAW, &raw);
        if let Some(ct) = content_type {
            unknown = unknown.bytes(UNKNOWN_CONTENT_TYPE, ct.as_bytes());
        }
        [PROTOBUF_MAGIC, &unknown.finish()].concat()
    }

    fn raw_len(d: &Decoded) -> usize {
        match d {
            Decoded::Protobuf { raw_len, .. } => *raw_len,
            other => panic!("not protobuf: {other:?}"),
        }
    }

    /// A seeded byte stream (PCG-style LCG), so failures reproduce.
    struct Bytes(u64);
    impl Bytes {
        fn next(&mut self) -> u8 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 56) as u8
        }
        fn take(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next()).collect()
        }
    }

    fn assert_terminal_safe(d: &Decoded) {
        let s = d.summary();
        assert!(!s.chars().any(char::is_control), "{s:?}");
    }

    #[test]
    fn pod_in_protobuf_envelope() {
        let v = envelope("v1", "Pod", Some("default"), "nginx", None);
        let d = decode(&v);
        let raw = raw_len(&d);
        assert_eq!(
            d,
            Decoded::Protobuf {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: Some("default".into()),
                name: Some("nginx".into()),
                raw_len: raw,
                content_type: None,
            }
        );
        assert!(raw > 0 && raw < v.len());
        assert_eq!(
            d.summary(),
            format!("v1 Pod default/nginx (protobuf, {raw} bytes)")
        );

        let with_ct = decode(&envelope(
            "apps/v1",
            "Deployment",
            Some("kube-system"),
            "coredns",
            Some(CONTENT_TYPE_PROTOBUF),
        ));
        assert!(matches!(
            &with_ct,
            Decoded::Protobuf { name: Some(n), content_type: Some(ct), .. }
                if n == "coredns" && ct == CONTENT_TYPE_PROTOBUF
        ));
        assert!(with_ct
            .summary()
            .starts_with("apps/v1 Deployment kube-system/coredns (protobuf, content type"));
    }

    #[test]
    fn cluster_scoped_object_has_no_namespace() {
        let d = decode(&envelope("v1", "Node", None, "worker-1", None));
        let raw = raw_len(&d);
        assert!(matches!(
            &d,
            Decoded::Protobuf { namespace: None, name: Some(n), .. } if n == "worker-1"
        ));
        assert_eq!(
            d.summary(),
            format!("v1 Node worker-1 (protobuf, {raw} bytes)")
        );
    }

    #[test]
    fn every_wire_type_is_skipped_and_last_occurrence_wins() {
        // Unknown fields of wire types 0, 1, 5 and 2 around typeMeta, and a second typeMeta.
        let mut unknown = Message::new().uint(9, u64::MAX).finish();
        unknown.extend_from_slice(&[(10 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8]);
        unknown.extend_from_slice(&[(11 << 3) | 5, 1, 2, 3, 4]);
        let first = Message::new().bytes(1, b"v0").bytes(2, b"Old");
        let last = Message::new().bytes(1, b"v1").bytes(2, b"ConfigMap");
        unknown.extend(
            Message::new()
                .message(UNKNOWN_TYPE_META, &first)
                .bytes(12, b"ignored")
                .message(UNKNOWN_TYPE_META, &last)
                .finish(),
        );
        let d = decode(&[PROTOBUF_MAGIC, &unknown].concat());
        assert_eq!(d.summary(), "v1 ConfigMap (no name) (protobuf, 0 bytes)");
    }

    #[test]
    fn json_raw_is_not_read_as_protobuf_metadata() {
        let type_meta = Message::new().bytes(1, b"v1").bytes(2, b"Pod");
        let raw = Message::new()
            .message(OBJECT_METADATA, &object_meta_message(None, "x"))
            .finish();
        let unknown = Message::new()
            .message(UNKNOWN_TYPE_META, &type_meta)
            .bytes(UNKNOWN_RAW, &raw)
            .bytes(UNKNOWN_CONTENT_TYPE, b"application/json")
            .finish();
        assert!(matches!(
            decode(&[PROTOBUF_MAGIC, &unknown].concat()),
            Decoded::Protobuf { name: None, .. }
        ));
    }

    #[test]
    fn json_object() {
        let v = br#"  {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},"spec":{"replicas":3}}"#;
        let d = decode(v);
        let Decoded::Json {
            api_version,
            kind,
            namespace,
            name,
            pretty,
        } = &d
        else {
            panic!("{d:?}");
        };
        assert_eq!(api_version.as_deref(), Some("apps/v1"));
        assert_eq!(kind.as_deref(), Some("Deployment"));
        assert_eq!(namespace.as_deref(), Some("shop"));
        assert_eq!(name.as_deref(), Some("web"));
        // preserve_order keeps the apiserver's key order.
        assert!(
            pretty.starts_with("{\n  \"apiVersion\": \"apps/v1\",\n  \"kind\""),
            "{pretty}"
        );
        assert!(pretty.contains("\"replicas\": 3"), "{pretty}");
        assert_eq!(d.summary(), "JSON apps/v1 Deployment shop/web");

        let cluster =
            decode(br#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"}}"#);
        assert_eq!(cluster.summary(), "JSON example.com/v1 Widget w");
        assert_eq!(decode(br#"{"a":1}"#).summary(), "JSON object");
        assert_eq!(decode(b"{}").summary(), "JSON object");
        // Non-string fields are not names.
        assert!(matches!(
            decode(br#"{"kind":7,"metadata":{"name":["x"]}}"#),
            Decoded::Json {
                kind: None,
                name: None,
                ..
            }
        ));
    }

    #[test]
    fn json_that_is_not_an_object_is_other() {
        for v in [
            &b"[1,2]"[..],
            b"\"a string\"",
            b"42",
            b"null",
            b"true",
            b"{\"unterminated\": ",
            b"{} trailing",
        ] {
            let d = decode(v);
            assert!(matches!(d, Decoded::Other { .. }), "{v:?}: {d:?}");
        }
        assert_eq!(decode(b"42").summary(), "binary, 2 bytes: 3432");
    }

    #[test]
    fn aescbc_encrypted() {
        let mut v = b"k8s:enc:aescbc:v1:key1:".to_vec();
        v.extend(Bytes(7).take(64));
        let d = decode(&v);
        assert_eq!(
            d,
            Decoded::Encrypted {
                provider: "aescbc".into(),
                version: "v1".into(),
                key_name: "key1".into(),
                len: v.len(),
            }
        );
        assert_eq!(
            d.summary(),
            format!("encrypted at rest: aescbc (key key1), {} bytes", v.len())
        );
    }

    #[test]
    fn kms_encrypted() {
        // KMS v2 writes an EncryptedObject protobuf after its header.
        let body = Message::new()
            .bytes(1, &Bytes(3).take(32))
            .bytes(2, b"key-id-1")
            .finish();
        let v2 = [&b"k8s:enc:kms:v2:vault-kms:"[..], &body].concat();
        let d = decode(&v2);
        assert!(matches!(
            &d,
            Decoded::Encrypted { provider, version, key_name, len }
                if provider == "kms" && version == "v2" && key_name == "vault-kms" && *len == v2.len()
        ));
        assert_eq!(
            d.summary(),
            format!(
                "encrypted at rest: kms v2 (key vault-kms), {} bytes",
                v2.len()
            )
        );
        assert_eq!(
            decode(b"k8s:enc:kms:v1:aws:\x00\x01").summary(),
            "encrypted at rest: kms v1 (key aws), 21 bytes"
        );
    }

    #[test]
    fn encryption_header_cut_short() {
        assert_eq!(
            decode(b"k8s:enc:").summary(),
            "encrypted at rest: unknown provider, 8 bytes"
        );
        assert_eq!(
            decode(b"k8s:enc:aesgcm").summary(),
            "encrypted at rest: unknown provider, 14 bytes"
        );
        assert_eq!(
            decode(b"k8s:enc:aesgcm:v1:k").summary(),
            "encrypted at rest: aesgcm, 19 bytes"
        );
        assert_eq!(
            decode(b"k8s:enc:secretbox:v9:k:").summary(),
            "encrypted at rest: secretbox v9 (key k), 23 bytes"
        );
        // Ciphertext past the bound is not taken for a key name.
        let mut v = b"k8s:enc:aescbc:v1:".to_vec();
        v.extend(vec![b'x'; MAX_SEGMENT + 1]);
        v.push(b':');
        assert!(matches!(decode(&v), Decoded::Encrypted { key_name, .. } if key_name.is_empty()));
        // A key name with control characters reaches the summary escaped.
        let evil = decode(b"k8s:enc:aescbc:v1:\x1b]0;pwned\x07:ct");
        assert_terminal_safe(&evil);
        assert!(
            evil.summary().contains("\\u{1b}]0;pwned\\u{7}"),
            "{}",
            evil.summary()
        );
    }

    #[test]
    fn truncated_envelope_at_every_length() {
        let v = envelope("v1", "Pod", Some("default"), "nginx", None);
        // Where the typeMeta field ends: the one cut that is still a well-formed Unknown.
        let type_meta_end = PROTOBUF_MAGIC.len() + 2 + usize::from(v[5]);
        let mut protobuf_cuts = Vec::new();
        for cut in 0..=v.len() {
            let d = decode(&v[..cut]);
            assert_terminal_safe(&d);
            match d {
                Decoded::Other { len, .. } => assert_eq!(len, cut),
                Decoded::Protobuf { kind, name, .. } => {
                    assert_eq!(kind, "Pod");
                    assert_eq!(name.is_some(), cut == v.len());
                    protobuf_cuts.push(cut);
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert_eq!(protobuf_cuts, [type_meta_end, v.len()]);
        for value in [
            &br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}}"#[..],
            b"k8s:enc:kms:v2:name:\x0a\x02ab",
        ] {
            for cut in 0..=value.len() {
                assert_terminal_safe(&decode(&value[..cut]));
            }
        }
    }

    #[test]
    fn malformed_envelopes_name_the_place() {
        let tm = Message::new().bytes(2, b"Pod").finish();
        let ok = Message::new().bytes(UNKNOWN_TYPE_META, &tm).finish();
        let with = |tail: &[u8]| [&ok[..], tail].concat();
        let at = ok.len();
        assert_eq!(protobuf(&[]), Err(EnvelopeError::Empty));
        assert_eq!(
            protobuf(&with(&[(5 << 3) | 3])),
            Err(EnvelopeError::Unknown(WireError::Group {
                at,
                field: 5,
                wire: 3
            }))
        );
        assert_eq!(
            protobuf(&with(&[(5 << 3) | 4])),
            Err(EnvelopeError::Unknown(WireError::Group {
                at,
                field: 5,
                wire: 4
            }))
        );
        assert_eq!(
            protobuf(&with(&[(5 << 3) | 7])),
            Err(EnvelopeError::Unknown(WireError::WireType {
                at,
                field: 5,
                wire: 7
            }))
        );
        assert_eq!(
            protobuf(&with(&[0x02, 0x00])),
            Err(EnvelopeError::Unknown(WireError::FieldNumber {
                at,
                field: 0
            }))
        );
        assert_eq!(
            protobuf(&with(&[0xff; 11])),
            Err(EnvelopeError::Unknown(WireError::Varint { at }))
        );
        // A length of 2^64 - 1.
        let huge = [&[(6u8 << 3) | 2][..], &[0xff; 9], &[0x01]].concat();
        assert_eq!(
            protobuf(&with(&huge)),
            Err(EnvelopeError::Unknown(WireError::Truncated {
                at,
                field: 6
            }))
        );
        assert_eq!(
            protobuf(&with(&[(6 << 3) | 1, 1, 2, 3])),
            Err(EnvelopeError::Unknown(WireError::Truncated {
                at,
                field: 6
            }))
        );
        assert_eq!(
            protobuf(&Message::new().bytes(UNKNOWN_RAW, b"x").finish()),
            Err(EnvelopeError::NoTypeMeta)
        );
        let no_kind = Message::new()
            .message(UNKNOWN_TYPE_META, &Message::new().bytes(1, b"v1"))
            .finish();
        assert_eq!(protobuf(&no_kind), Err(EnvelopeError::NoKind));
        let bad_type_meta = Message::new().bytes(UNKNOWN_TYPE_META, &[0x13]).finish();
        assert!(matches!(
            protobuf(&bad_type_meta),
            Err(EnvelopeError::TypeMeta(WireError::Group {
                at: 0,
                field: 2,
                wire: 3
            }))
        ));
        for bad in [&with(&[(5 << 3) | 3])[..], &no_kind] {
            assert!(matches!(
                decode(&[PROTOBUF_MAGIC, bad].concat()),
                Decoded::Other { .. }
            ));
        }
        // The messages read well.
        let e = WireError::Truncated { at: 9, field: 2 };
        assert_eq!(
            e.to_string(),
            "byte 9: field 2 runs past the end of its message"
        );
        assert_eq!(
            EnvelopeError::Unknown(e).to_string(),
            "runtime.Unknown: byte 9: field 2 runs past the end of its message"
        );
    }

    #[test]
    fn random_bytes() {
        let mut rng = Bytes(9);
        for round in 0..3000 {
            let len = usize::from(rng.next()) % 160;
            let body = rng.take(len);
            for prefix in [&b""[..], PROTOBUF_MAGIC, ENCRYPTED_PREFIX, b"{"] {
                let v = [prefix, &body].concat();
                let d = decode(&v);
                assert_terminal_safe(&d);
                if round == 0 && prefix.is_empty() {
                    assert!(matches!(d, Decoded::Other { .. }), "{d:?}");
                }
            }
        }
        let preview = decode(&[0xab; 100]).summary();
        assert_eq!(
            preview,
            format!("binary, 100 bytes: {}…", "ab".repeat(HEX_PREVIEW))
        );
        assert_eq!(decode(&[0x0a, 0x0b]).summary(), "binary, 2 bytes: 0a0b");
        assert_eq!(decode(b"").summary(), "empty value");
    }

    #[test]
    fn every_byte_of_an_envelope_flipped() {
        let v = envelope(
            "v1",
            "Secret",
            Some("kube-system"),
            "token",
            Some(CONTENT_TYPE_PROTOBUF),
        );
        for i in 0..v.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut bad = v.clone();
                bad[i] ^= x;
                assert_terminal_safe(&decode(&bad));
            }
        }
    }

    #[test]
    fn deep_nesting_and_garbage() {
        // 3000 levels of field 1 as the object's metadata: only two levels are opened, the rest
        // is a name of garbage bytes, shown escaped.
        let mut nested = Message::new().bytes(1, b"core");
        for _ in 0..3000 {
            nested = Message::new().message(1, &nested);
        }
        let type_meta = Message::new().bytes(1, b"v1").bytes(2, b"Pod");
        let unknown = Message::new()
            .message(UNKNOWN_TYPE_META, &type_meta)
            .message(UNKNOWN_RAW, &nested)
            .message(99, &nested)
            .finish();
        let d = decode(&[PROTOBUF_MAGIC, &unknown].concat());
        assert!(matches!(&d, Decoded::Protobuf { kind, name: Some(_), .. } if kind == "Pod"));
        assert_terminal_safe(&d);

        // Metadata that is not a message: the type still shows, the name does not.
        let raw = Message::new()
            .bytes(OBJECT_METADATA, &[0x0b, 0xff])
            .finish();
        let unknown = Message::new()
            .message(UNKNOWN_TYPE_META, &type_meta)
            .bytes(UNKNOWN_RAW, &raw)
            .finish();
        assert!(matches!(
            decode(&[PROTOBUF_MAGIC, &unknown].concat()),
            Decoded::Protobuf {
                name: None,
                namespace: None,
                ..
            }
        ));

        // JSON deeper than serde_json's limit is an error value, not a stack overflow.
        let deep_array = [vec![b'['; 100_000], vec![b']'; 100_000]].concat();
        assert!(matches!(decode(&deep_array), Decoded::Other { .. }));
        let deep_object = [
            b"{\"a\":".repeat(100_000),
            b"1".to_vec(),
            b"}".repeat(100_000),
        ]
        .concat();
        assert!(matches!(decode(&deep_object), Decoded::Other { .. }));
    }

    #[test]
    fn names_with_control_characters_are_escaped() {
        let pb = decode(&envelope("v1", "Pod", Some("ns\n"), "a\x1b[2Jb", None));
        assert_terminal_safe(&pb);
        assert!(
            pb.summary().contains("ns\\n/a\\u{1b}[2Jb"),
            "{}",
            pb.summary()
        );
        let js = decode(br#"{"kind":"K\u001b[31m","metadata":{"name":"n\r"}}"#);
        assert_terminal_safe(&js);
        assert_eq!(js.summary(), "JSON K\\u{1b}[31m n\\r");
    }
}
