//! Re-signing a leaf certificate with the CA that issued it, keeping what the file on disk says
//! (kubeadm's rule): subject, SANs, key usage, extended key usage and basic constraints of the
//! old certificate; a new random serial; not-before a few minutes in the past (clock skew
//! between nodes); not-after `days` from now, capped at the CA's own not-after.
//!
//! Keys are read as PEM in any of the three encodings found on control planes — PKCS#8
//! (`PRIVATE KEY`), PKCS#1 RSA (`RSA PRIVATE KEY`, kubeadm) and SEC1 EC (`EC PRIVATE KEY`,
//! cfssl) — by wrapping the latter two into PKCS#8 for the signer.

use rcgen::{CertificateParams, KeyPair, SerialNumber};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::*;

/// How far back not-before goes, for clocks that run behind.
pub const SKEW: i64 = 5 * 60;

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("{0}: not a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    KeyUnreadable(String),
    #[error("{0}: the key is encrypted (passphrase-protected); decrypt it first (`openssl pkey -in KEY -out KEY.plain`, mode 0600)")]
    KeyEncrypted(String),
    #[error(
        "{0}: a key type the signer does not support (RSA, ECDSA P-256/P-384 and Ed25519 are)"
    )]
    KeyUnsupported(String),
    #[error("{0}: not a certificate")]
    NotACert(String),
    #[error("the key {key} does not belong to the certificate {cert}")]
    KeyMismatch { key: String, cert: String },
    #[error("{0} is not a CA certificate (no basicConstraints CA:TRUE)")]
    NotCa(String),
    #[error("the CA {ca} expired on {expired}; renewing a CA is out of scope (kubeadm certs renew does not do it either): make a new CA and re-issue every leaf")]
    CaExpired { ca: String, expired: String },
    #[error("{cert} was not signed by the CA {ca}")]
    WrongCa { cert: String, ca: String },
    #[error("signing {0}: {1}")]
    Sign(String, String),
}

/// A CA that can sign: its certificate and the key that belongs to it.
pub struct Ca {
    pub name: String,
    pub der: Vec<u8>,
    pub not_after: i64,
    key: KeyPair,
    issuer: rcgen::Certificate,
}

impl Ca {
    /// Load and check: the key matches the certificate, it is a CA, it has not expired.
    pub fn load(
        name: &str,
        cert_pem: &str,
        key_name: &str,
        key_pem: &str,
        now: i64,
    ) -> Result<Ca, RenewError> {
        let der = first_cert(cert_pem).ok_or_else(|| RenewError::NotACert(name.to_string()))?;
        let (_, x) =
            parse_x509_certificate(&der).map_err(|_| RenewError::NotACert(name.to_string()))?;
        let is_ca = x
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|b| b.value.ca);
        if !is_ca {
            return Err(RenewError::NotCa(name.to_string()));
        }
        let not_after = x.validity().not_after.timestamp();
        if not_after <= now {
            return Err(RenewError::CaExpired {
                ca: name.to_string(),
                expired: crate::timestamp::rfc3339(not_after),
            });
        }
        let key = key_pair(key_pem, key_name)?;
        if key.public_key_der() != x.public_key().raw {
            return Err(RenewError::KeyMismatch {
                key: format!("beside {name}"),
                cert: name.to_string(),
            });
        }
        let params = CertificateParams::from_ca_cert_der(&der.clone().into())
            .map_err(|e| RenewError::Sign(name.to_string(), e.to_string()))?;
        let issuer = params
            .self_signed(&key)
            .map_err(|e| RenewError::Sign(name.to_string(), e.to_string()))?;
        Ok(Ca {
            name: name.to_string(),
            der: der.clone(),
            not_after,
            key,
            issuer,
        })
    }

    /// The CA's signature verifies on `leaf_der`.
    pub fn signed(&self, leaf_der: &[u8]) -> bool {
        let (Ok((_, leaf)), Ok((_, ca))) = (
            parse_x509_certificate(leaf_der),
            parse_x509_certificate(&self.der),
        ) else {
            return false;
        };
        leaf.verify_signature(Some(ca.public_key())).is_ok()
    }
}

/// A renewed certificate.
pub struct Renewed {
    /// The file's new text: the old text with its first certificate replaced (a chain's CA,
    /// a second certificate, comments stay as they were).
    pub pem: String,
    /// How many certificates the file holds besides the renewed one (kept unchanged).
    pub others: usize,
    pub der: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    /// not-after was cut to the CA's.
    pub capped: bool,
    pub serial: String,
}

/// Re-sign `cert_pem` (its first certificate) with `ca`, for the key `key_pem` (the old key, or
/// a new one of the same algorithm).
pub fn renew(
    name: &str,
    cert_pem: &str,
    key: &KeyPair,
    ca: &Ca,
    now: i64,
    days: i64,
) -> Result<Renewed, RenewError> {
    let der = first_cert(cert_pem).ok_or_else(|| RenewError::NotACert(name.to_string()))?;
    if !ca.signed(&der) {
        return Err(RenewError::WrongCa {
            cert: name.to_string(),
            ca: ca.name.clone(),
        });
    }
    let mut params = CertificateParams::from_ca_cert_der(&der.clone().into())
        .map_err(|e| RenewError::Sign(name.to_string(), e.to_string()))?;
    let wanted = now.saturating_add(days.saturating_mul(86_400));
    let not_after = wanted.min(ca.not_after);
    let not_before = now - SKEW;
    params.not_before = ::time::OffsetDateTime::from_unix_timestamp(not_before)
        .map_err(|e| RenewError::Sign(name.to_string(), e.to_string()))?;
    params.not_after = ::time::OffsetDateTime::from_unix_timestamp(not_after)
        .map_err(|e| RenewError::Sign(name.to_string(), e.to_string()))?;
    let mut serial = [0u8; 16];
    getrandom_fill(&mut serial);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    // The new certificate gets a key identifier computed from its key, as before.
    params.key_identifier_method = rcgen::KeyIdMethod::Sha256;
    keep_extensions_verbatim(&der, &mut params);
    let cert = params
        .signed_by(key, &ca.issuer, &ca.key)
        .map_err(|e| RenewError::Sign(name.to_string(), e.to_string()))?;
    Ok(Renewed {
        pem: replace_first_cert(cert_pem, &cert.pem()),
        others: rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .count()
            .saturating_sub(1),
        der: cert.der().to_vec(),
        not_before,
        not_after,
        capped: not_after < wanted,
        serial: serial.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// The extensions rcgen would write from its typed fields, each with the criticality rcgen
/// chooses (keyUsage and basicConstraints always critical): carried over from the old
/// certificate byte for byte instead, its criticality included, so that a non-critical
/// keyUsage (as openssl writes by default) stays non-critical.
const VERBATIM: [&str; 4] = [
    "2.5.29.15", // keyUsage
    "2.5.29.37", // extendedKeyUsage
    "2.5.29.19", // basicConstraints
    "2.5.29.17", // subjectAltName
];

fn keep_extensions_verbatim(der: &[u8], params: &mut CertificateParams) {
    let Ok((_, old)) = parse_x509_certificate(der) else {
        return;
    };
    for ext in old.extensions() {
        let oid = ext.oid.to_id_string();
        let Some(arcs) = ext.oid.iter() else { continue };
        if !VERBATIM.contains(&oid.as_str()) {
            continue;
        }
        let arcs: Vec<u64> = arcs.collect();
        let mut copy = rcgen::CustomExtension::from_oid_content(&arcs, ext.value.to_vec());
        copy.set_criticality(ext.critical);
        params.custom_extensions.push(copy);
    }
    params.key_usages.clear();
    params.extended_key_usages.clear();
    params.subject_alt_names.clear();
    params.is_ca = rcgen::IsCa::NoCa;
}

fn getrandom_fill(buf: &mut [u8]) {
    use rustls::crypto::ring::default_provider;
    // ring's system random, through the provider we already ship.
    let _ = default_provider().secure_random.fill(buf);
}

/// A new private key of the same algorithm and size as the certificate's (`--new-key`), and its
/// PEM (PKCS#8). RSA keys are generated with the `rsa` crate (ring cannot), others by rcgen.
pub fn new_key_like(name: &str, cert_der: &[u8]) -> Result<(KeyPair, String), RenewError> {
    let unsupported = || RenewError::KeyUnsupported(name.to_string());
    let (_, x) =
        parse_x509_certificate(cert_der).map_err(|_| RenewError::NotACert(name.to_string()))?;
    let spki = x.public_key();
    let pkcs8: Vec<u8> = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa_key)) => {
            use rsa::pkcs8::EncodePrivateKey;
            let bits = rsa_key.key_size();
            if !(2048..=8192).contains(&bits) {
                return Err(unsupported());
            }
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
                .map_err(|e| RenewError::Sign(name.to_string(), e.to_string()))?;
            key.to_pkcs8_der()
                .map_err(|e| RenewError::Sign(name.to_string(), e.to_string()))?
                .as_bytes()
                .to_vec()
        }
        Ok(x509_parser::public_key::PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let alg = match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => &rcgen::PKCS_ECDSA_P256_SHA256,
                Some("1.3.132.0.34") => &rcgen::PKCS_ECDSA_P384_SHA384,
                _ => return Err(unsupported()),
            };
            KeyPair::generate_for(alg)
                .map_err(|e| RenewError::Sign(name.to_string(), e.to_string()))?
                .serialize_der()
        }
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => {
            let v2 = KeyPair::generate_for(&rcgen::PKCS_ED25519)
                .map_err(|e| RenewError::Sign(name.to_string(), e.to_string()))?
                .serialize_der();
            // ring writes PKCS#8 v2 (RFC 5958, with the public key), which OpenSSL 3.0 and
            // older tools refuse; the file gets v1, as `openssl genpkey` writes it.
            ed25519_v1(&v2).ok_or_else(unsupported)?
        }
        _ => return Err(unsupported()),
    };
    let pem = pem_encode("PRIVATE KEY", &pkcs8);
    let key = KeyPair::try_from(&PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)))
        .map_err(|_| unsupported())?;
    Ok((key, pem))
}

/// PKCS#8 v1 (version 0, no public key) of an Ed25519 key given as v2.
fn ed25519_v1(v2: &[u8]) -> Option<Vec<u8>> {
    let (_, seq) = der_read(v2, 0x30)?;
    let (rest, _version) = der_read(seq, 0x02)?;
    let (rest, alg) = der_read(rest, 0x30)?;
    let (_, key) = der_read(rest, 0x04)?;
    Some(pkcs8_wrap(&der_tlv(0x30, alg), key))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The first certificate of a PEM text.
/// `text` with its first PEM certificate block (and the line end after it) replaced by
/// `new_pem`; everything before and after it kept byte for byte.
fn replace_first_cert(text: &str, new_pem: &str) -> String {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let Some(start) = text.find(BEGIN) else {
        return new_pem.to_string();
    };
    let Some(end) = text[start..].find(END).map(|e| start + e + END.len()) else {
        return new_pem.to_string();
    };
    let rest = &text[end..];
    let rest = rest
        .strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'))
        .unwrap_or(rest);
    format!("{}{new_pem}{rest}", &text[..start])
}

pub fn first_cert(pem: &str) -> Option<Vec<u8>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()?
        .ok()
        .map(|c| c.to_vec())
}

/// The key pair of a PEM key in any of the three encodings.
pub fn key_pair(pem: &str, name: &str) -> Result<KeyPair, RenewError> {
    let der = match rustls_pemfile::private_key(&mut pem.as_bytes()) {
        Ok(Some(k)) => k,
        _ if pem.contains("ENCRYPTED") => return Err(RenewError::KeyEncrypted(name.to_string())),
        _ => return Err(RenewError::KeyUnreadable(name.to_string())),
    };
    let pkcs8 = match &der {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        PrivateKeyDer::Pkcs1(k) => pkcs8_wrap(&RSA_ALGORITHM, k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => {
            let curve = sec1_curve(k.secret_sec1_der())
                .ok_or_else(|| RenewError::KeyUnsupported(name.to_string()))?;
            let mut alg = EC_PUBLIC_KEY.to_vec();
            alg.extend_from_slice(&curve);
            pkcs8_wrap(&der_tlv(0x30, &alg), k.secret_sec1_der())
        }
        _ => return Err(RenewError::KeyUnsupported(name.to_string())),
    };
    KeyPair::try_from(&PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)))
        .map_err(|_| RenewError::KeyUnsupported(name.to_string()))
}

/// AlgorithmIdentifier { rsaEncryption, NULL }.
const RSA_ALGORITHM: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// OID id-ecPublicKey (1.2.840.10045.2.1), as a TLV.
const EC_PUBLIC_KEY: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// PrivateKeyInfo { version 0, algorithm, privateKey OCTET STRING }.
fn pkcs8_wrap(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(algorithm);
    body.extend_from_slice(&der_tlv(0x04, key));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(value);
    out
}

/// The named curve OID (as a TLV) in a SEC1 ECPrivateKey's `[0] parameters`.
fn sec1_curve(der: &[u8]) -> Option<Vec<u8>> {
    // ECPrivateKey ::= SEQUENCE { version, privateKey OCTET STRING, [0] parameters, [1] publicKey }
    let (_, seq) = der_read(der, 0x30)?;
    let (rest, _version) = der_read(seq, 0x02)?;
    let (rest, _key) = der_read(rest, 0x04)?;
    let (_, params) = der_read(rest, 0xa0)?;
    let (_, oid) = der_read(params, 0x06)?;
    Some(der_tlv(0x06, oid))
}

/// One TLV with the expected tag: (what follows it, its value).
fn der_read(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *b.first()? != tag {
        return None;
    }
    let first = *b.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((b.get(end..)?, b.get(head..end)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_certificate_is_replaced() {
        let old = "# leaf\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
        let new = "-----BEGIN CERTIFICATE-----\nNEW\n-----END CERTIFICATE-----\n";
        assert_eq!(
            replace_first_cert(old, new),
            "# leaf\n-----BEGIN CERTIFICATE-----\nNEW\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
        );
        let crlf = "-----BEGIN CERTIFICATE-----\r\nA\r\n-----END CERTIFICATE-----\r\n";
        assert_eq!(replace_first_cert(crlf, new), new);
    }

    #[test]
    fn tlv_round_trip() {
        let long = vec![7u8; 300];
        let t = der_tlv(0x04, &long);
        assert_eq!(&t[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(der_read(&t, 0x04), Some((&[][..], &long[..])));
        assert_eq!(der_read(&t, 0x30), None);
        assert_eq!(der_read(&[0x04, 0x85, 1, 1, 1, 1, 1], 0x04), None);
        assert_eq!(der_read(&[0x04, 0x05, 1], 0x04), None);
    }
}
