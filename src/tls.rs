//! TLS pieces shared by every connection etcdops makes (etcd, object storage): trusted roots
//! from a CA file or the system bundle, PEM certificates and keys read with messages that name
//! the file and where its path came from, and the verifier behind the skip-verify flags.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where distributions keep the system CA bundle (Debian, Ubuntu, Alpine, Arch; RHEL, Fedora;
/// SUSE; RHEL's extracted trust; Alpine's and BSDs' other name), used when https is asked for
/// with no CA file (etcdctl and aws-cli use the system roots then too). The first found wins.
const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// TLS for an https service other than etcd (object storage): server authentication only,
/// against `ca` (else the system bundle), or none at all when `accept_any`.
pub fn https_config(ca: Option<(&Path, &str)>, accept_any: bool) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?;
    if accept_any {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
            .with_no_client_auth());
    }
    Ok(builder
        .with_root_certificates(roots(ca)?)
        .with_no_client_auth())
}

/// The trusted roots: the CA file given, else the system bundle.
pub fn roots(ca: Option<(&Path, &str)>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some((path, from)) => {
            for cert in read_certs(path, "CA certificate", from)? {
                roots.add(cert).with_context(|| {
                    format!(
                        "CA certificate file {} (from {from}) holds an unusable certificate",
                        path.display()
                    )
                })?;
            }
        }
        None => {
            if let Some(pem) = SYSTEM_BUNDLES
                .iter()
                .find_map(|p| crate::regular::read_capped(Path::new(p), MAX_SYSTEM_BUNDLE).ok())
            {
                for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
                    let _ = roots.add(cert);
                }
            }
            if roots.is_empty() {
                bail!(
                    "no CA certificate to check the server with: no system CA bundle in {}; pass the CA file (--cacert for etcd, --s3-endpoint-ca or AWS_CA_BUNDLE for object storage)",
                    SYSTEM_BUNDLES.join(", ")
                );
            }
        }
    }
    Ok(roots)
}

/// A CA, certificate or key file is a few KB: at most this is read.
pub const MAX_TLS_FILE: u64 = 1 << 20;

/// A system CA bundle holds a few hundred certificates.
const MAX_SYSTEM_BUNDLE: u64 = 16 << 20;

/// A regular file of at most [`MAX_TLS_FILE`] bytes: a FIFO never blocks, a device is never read.
fn read_file(path: &Path, what: &str, from: &str) -> Result<Vec<u8>> {
    crate::regular::read_capped(path, MAX_TLS_FILE)
        .with_context(|| format!("reading {what} file {} (from {from})", path.display()))
}

/// The certificates of a PEM file; `from` says where its path came from, for messages.
pub fn read_certs(path: &Path, what: &str, from: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(path, what, from)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{what} file {} is not valid PEM", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{what} file {} (from {from}) contains no PEM certificate",
            path.display()
        );
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn read_key(path: &Path, from: &str) -> Result<PrivateKeyDer<'static>> {
    let pem = read_file(path, "client key", from)?;
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => bail!(
            "client key file {} (from {from}) contains no PEM private key",
            path.display()
        ),
        Err(e) => {
            Err(e).with_context(|| format!("client key file {} is not valid PEM", path.display()))
        }
    }
}

/// `--insecure-skip-tls-verify`: accept any server certificate, but still check that the
/// handshake is signed by the key in it (so the connection is at least encrypted to its holder).
#[derive(Debug)]
pub struct AcceptAnyServerCert(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
