//! rustls client configuration from `--cacert`, `--cert`, `--key` and
//! `--insecure-skip-tls-verify`. Every failure names the file and the flag it came from.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::settings::{ConnSettings, Sourced};

/// The CA bundle Debian and most distributions keep, used when https is asked for with no
/// --cacert (etcdctl uses the system roots then too).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub fn client_config(conn: &ConnSettings) -> Result<rustls::ClientConfig> {
    build(conn, conn.insecure_skip_tls_verify.value)
}

/// A configuration that accepts whatever the server presents, to look at it (`cert-expiry`).
pub fn inspecting_config(conn: &ConnSettings) -> Result<rustls::ClientConfig> {
    build(conn, true)
}

fn build(conn: &ConnSettings, accept_any: bool) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?;

    let builder = if accept_any {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
    } else {
        builder.with_root_certificates(roots(conn.cacert.as_ref())?)
    };

    let mut config = match (&conn.cert, &conn.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(c), None) => bail!(
            "client certificate {} (from {}) given without a key (--key)",
            c.value.display(),
            c.source
        ),
        (None, Some(k)) => bail!(
            "client key {} (from {}) given without a certificate (--cert)",
            k.value.display(),
            k.source
        ),
        (Some(c), Some(k)) => {
            let certs = read_certs(&c.value, "client certificate", c)?;
            let key = read_key(&k.value, k)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => anyhow::anyhow!(
                        "client key {} (from {}) does not match certificate {} (from {})",
                        k.value.display(),
                        k.source,
                        c.value.display(),
                        c.source
                    ),
                    other => anyhow::anyhow!(
                        "client certificate {} / key {}: {other}",
                        c.value.display(),
                        k.value.display()
                    ),
                })?
        }
    };
    // etcd serves gRPC over HTTP/2; newer gRPC servers insist on the ALPN token.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// TLS for an https service other than etcd (object storage): server authentication only,
/// against `ca` (else the system bundle), or none at all when `accept_any`.
pub fn https_config(
    ca: Option<&Sourced<std::path::PathBuf>>,
    accept_any: bool,
) -> Result<rustls::ClientConfig> {
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
fn roots(ca: Option<&Sourced<std::path::PathBuf>>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in read_certs(&ca.value, "CA certificate", ca)? {
                roots.add(cert).with_context(|| {
                    format!(
                        "CA certificate file {} (from {}) holds an unusable certificate",
                        ca.value.display(),
                        ca.source
                    )
                })?;
            }
        }
        None => {
            if let Ok(pem) = std::fs::read(SYSTEM_BUNDLE) {
                for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
                    let _ = roots.add(cert);
                }
            }
        }
    }
    Ok(roots)
}

fn read_file<T>(path: &Path, what: &str, from: &Sourced<T>) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "reading {what} file {} (from {})",
            path.display(),
            from.source
        )
    })
}

fn read_certs<T>(
    path: &Path,
    what: &str,
    from: &Sourced<T>,
) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(path, what, from)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{what} file {} is not valid PEM", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{what} file {} (from {}) contains no PEM certificate",
            path.display(),
            from.source
        );
    }
    Ok(certs)
}

fn read_key<T>(path: &Path, from: &Sourced<T>) -> Result<PrivateKeyDer<'static>> {
    let pem = read_file(path, "client key", from)?;
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => bail!(
            "client key file {} (from {}) contains no PEM private key",
            path.display(),
            from.source
        ),
        Err(e) => {
            Err(e).with_context(|| format!("client key file {} is not valid PEM", path.display()))
        }
    }
}

/// `--insecure-skip-tls-verify`: accept any server certificate, but still check that the
/// handshake is signed by the key in it (so the connection is at least encrypted to its holder).
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

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
