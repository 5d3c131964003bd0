//! rustls client configuration from `--cacert`, `--cert`, `--key` and
//! `--insecure-skip-tls-verify`. Every failure names the file and the flag it came from.

use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::settings::ConnSettings;
use crate::tls::{read_certs, read_key, roots, AcceptAnyServerCert};

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
        let ca = conn
            .cacert
            .as_ref()
            .map(|c| (c.value.clone(), c.source.to_string()));
        builder.with_root_certificates(roots(ca.as_ref().map(|(p, f)| (p.as_path(), f.as_str())))?)
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
            let certs = read_certs(&c.value, "client certificate", &c.source.to_string())?;
            let key = read_key(&k.value, &k.source.to_string())?;
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
