//! One etcd connection per endpoint. etcd-client balances requests across all endpoints it is
//! given, which hides which member answered; health and status need to talk to each member on
//! its own, so every connection here is bound to exactly one endpoint.
//!
//! The TCP and TLS handshake are ours (tokio + rustls), handed to tonic as a connector: that is
//! what lets us implement `--insecure-skip-tls-verify`, check a client key against its
//! certificate before dialling, and tell connect, TLS, timeout and auth failures apart.
//!
//! Does not: retry, or pick endpoints (commands decide that).

pub mod cluster;
pub mod maintenance;
pub mod tls;
pub mod watch;

use std::error::Error as StdError;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::settings::ConnSettings;

const STREAM_WINDOW: u32 = 8 << 20;

/// What went wrong talking to an endpoint, as an operator would triage it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// TCP could not be established (refused, unreachable, DNS).
    Connect,
    /// The TLS handshake or certificate validation failed, on either side.
    Tls,
    /// Authentication with --user/--password failed.
    Auth,
    /// No answer within --dial-timeout or --command-timeout.
    Timeout,
    /// The endpoint answered but has an active alarm (NOSPACE, CORRUPT).
    Alarm,
    /// Anything else the server answered with.
    Server,
    /// A member of the list that has published no client URL: it has not started (or not
    /// since a restore), so nothing can be asked of it.
    Unstarted,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Auth => "auth",
            FailureKind::Timeout => "timeout",
            FailureKind::Alarm => "alarm",
            FailureKind::Server => "server",
            FailureKind::Unstarted => "unstarted",
        })
    }
}

/// A failed exchange with one endpoint.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind} error: {message}")]
pub struct EndpointError {
    pub kind: FailureKind,
    pub message: String,
}

impl EndpointError {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> EndpointError {
        EndpointError {
            kind,
            message: message.into(),
        }
    }

    pub fn timeout(what: &str, after: Duration) -> EndpointError {
        EndpointError::new(
            FailureKind::Timeout,
            format!("{what} did not finish within {after:?}"),
        )
    }
}

/// Where to dial, parsed from an endpoint string (`https://host:port`, `host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The endpoint as the user wrote it; shown in every report.
    pub endpoint: String,
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// An endpoint that is not `[scheme://]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("endpoint {endpoint:?}: {problem}")]
pub struct EndpointSyntax {
    pub endpoint: String,
    pub problem: SyntaxProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxProblem {
    #[error("unsupported scheme (use http:// or https://)")]
    Scheme,
    #[error("invalid port {0:?}")]
    Port(String),
    #[error("missing host")]
    Host,
}

impl Target {
    /// Parse an endpoint. A scheme-less one uses TLS when `default_tls` is set, as etcdctl does
    /// when it has any TLS material.
    pub fn parse(endpoint: &str, default_tls: bool) -> Result<Target, EndpointSyntax> {
        let bad = |problem| EndpointSyntax {
            endpoint: endpoint.to_string(),
            problem,
        };
        let (tls, rest) = if let Some(rest) = endpoint.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = endpoint.strip_prefix("http://") {
            (false, rest)
        } else if endpoint.contains("://") {
            return Err(bad(SyntaxProblem::Scheme));
        } else {
            (default_tls, endpoint)
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| bad(SyntaxProblem::Port(p.to_string())))?;
                (h, port)
            }
            _ => (authority, 2379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad(SyntaxProblem::Host));
        }
        Ok(Target {
            endpoint: endpoint.to_string(),
            host: host.to_string(),
            port,
            tls,
        })
    }
}

/// Parse every configured endpoint, or say which one is malformed.
pub fn targets(conn: &ConnSettings) -> anyhow::Result<Vec<Target>> {
    let default_tls = conn.wants_tls();
    conn.endpoints
        .value
        .iter()
        .map(|e| {
            Target::parse(e, default_tls)
                .map_err(|m| anyhow::anyhow!("{m} (from {})", conn.endpoints.source))
        })
        .collect()
}

/// Everything needed to open connections, built once per command.
#[derive(Clone)]
pub struct Connector {
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Which CA the server was checked against, for "not trusted" errors.
    trust: String,
    /// The client certificate and where it came from, for "rejected" errors.
    client_cert: Option<String>,
    user: Option<(String, String)>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
}

impl Connector {
    /// Load certificates and keys now, so a bad file is one error naming it, before any dial.
    pub fn new(conn: &ConnSettings, targets: &[Target]) -> anyhow::Result<Connector> {
        let tls = if conn.wants_tls() || targets.iter().any(|t| t.tls) {
            Some(Arc::new(tls::client_config(conn)?))
        } else {
            None
        };
        let trust = match (&conn.cacert, conn.insecure_skip_tls_verify.value) {
            (_, true) => "no CA (--insecure-skip-tls-verify)".to_string(),
            (Some(ca), false) => format!("CA file {} (from {})", ca.value.display(), ca.source),
            (None, false) => "the system CA bundle (no --cacert given)".to_string(),
        };
        Ok(Connector {
            tls,
            trust,
            client_cert: conn
                .cert
                .as_ref()
                .map(|c| format!("{} (from {})", c.value.display(), c.source)),
            user: conn.user.as_ref().map(|u| u.value.clone()),
            dial_timeout: conn.dial_timeout.value,
            command_timeout: conn.command_timeout.value,
        })
    }

    /// Open a client bound to `target`: dial within --dial-timeout, authenticate (if a user is
    /// configured) within --command-timeout.
    pub async fn connect(&self, target: &Target) -> Result<Client, EndpointError> {
        self.connect_inner(target)
            .await
            .map_err(|e| self.explain(target, e))
    }

    /// Add the one hint that fixes a failure an operator meets often: a missing or rejected
    /// client certificate, the wrong scheme for the port, a certificate for another name, a
    /// server the CA does not vouch for.
    pub fn explain(&self, target: &Target, mut e: EndpointError) -> EndpointError {
        if let Some(h) = hint(&e.message, target, self.client_cert.as_deref(), &self.trust) {
            e.message = format!("{}: {h}", e.message);
        }
        e
    }

    async fn connect_inner(&self, target: &Target) -> Result<Client, EndpointError> {
        let tls = match (target.tls, &self.tls) {
            (false, _) => None,
            (true, Some(cfg)) => Some(cfg.clone()),
            (true, None) => {
                return Err(EndpointError::new(
                    FailureKind::Tls,
                    "https endpoint, but no TLS settings were loaded",
                ))
            }
        };
        let server_name = server_name(&target.host)?;
        let dialer = Dialer {
            host: target.host.clone(),
            port: target.port,
            tls: tls.map(|cfg| (cfg, server_name)),
        };
        // tonic only needs a URI for the :authority header; the dialer does the real work.
        let uri = format!("http://{}:{}", bracket(&target.host), target.port);
        let endpoint = tonic::transport::Endpoint::from_shared(uri)
            .map_err(|e| EndpointError::new(FailureKind::Connect, e.to_string()))?
            .connect_timeout(self.dial_timeout)
            .keep_alive_while_idle(true)
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(6))
            // Large flow-control windows let the server send a snapshot stream in big bursts:
            // fewer wake-ups and WINDOW_UPDATE frames per megabyte.
            .initial_stream_window_size(Some(STREAM_WINDOW))
            .initial_connection_window_size(Some(STREAM_WINDOW));
        let connector = tower::service_fn(move |_: http::Uri| {
            let dialer = dialer.clone();
            async move { dialer.dial().await }
        });
        let channel = tokio::time::timeout(
            self.dial_timeout,
            endpoint.connect_with_connector(connector),
        )
        .await
        .map_err(|_| EndpointError::timeout("connecting", self.dial_timeout))?
        .map_err(|e| classify(&e))?;

        let mut options = ConnectOptions::new();
        if let Some((name, password)) = &self.user {
            options = options.with_user(name.clone(), password.clone());
        }
        tokio::time::timeout(
            self.command_timeout,
            Client::from_channel(etcd_client::Channel::Tonic(channel), Some(options)),
        )
        .await
        .map_err(|_| EndpointError::timeout("authenticating", self.command_timeout))?
        .map_err(|e| classify_etcd(&e))
    }

    /// Run one request against `target`'s client, bounded by --command-timeout.
    pub async fn request<T>(
        &self,
        target: &Target,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EndpointError> {
        tokio::time::timeout(self.command_timeout, fut)
            .await
            .map_err(|_| EndpointError::timeout(what, self.command_timeout))?
            .map_err(|e| self.explain(target, classify_etcd(&e)))
    }
}

/// The one hint that fixes a failure (see [`Connector::explain`]), from its message.
fn hint(message: &str, target: &Target, client_cert: Option<&str>, trust: &str) -> Option<String> {
    let m = message;
    if m.contains("BadCertificate") || m.contains("CertificateRequired") || m.contains("TLS alert")
    {
        return Some(match client_cert {
            None => "the server requires a client certificate: pass --cert and --key (on a kubeadm node, /etc/kubernetes/pki/etcd/healthcheck-client.crt and .key)".to_string(),
            Some(cert) => format!("the server rejected the client certificate {cert}: is it signed by the CA the server trusts (--trusted-ca-file)?"),
        });
    }
    let hostport = format!("{}:{}", bracket(&target.host), target.port);
    if target.tls && (m.contains("handshake eof") || m.contains("corrupt message")) {
        return Some(format!(
            "{} does not speak TLS: use http://{hostport}",
            target.endpoint
        ));
    }
    if !target.tls && m.contains("transport error") {
        return Some(format!(
            "{} may expect TLS: use https://{hostport} with --cacert (and --cert/--key)",
            target.endpoint
        ));
    }
    if m.contains("not valid for name") || m.contains("NotValidForName") {
        return Some(format!(
            "the server certificate does not name {}; dial an address or name it lists (the CA is not the problem)",
            target.host
        ));
    }
    m.contains("invalid peer certificate")
        .then(|| format!("server certificate not trusted by {trust}"))
}

/// The name TLS verifies the server certificate against: an IP address or a DNS name.
fn server_name(host: &str) -> Result<ServerName<'static>, EndpointError> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(host.to_string()).map_err(|_| {
            EndpointError::new(FailureKind::Connect, format!("invalid host name {host:?}"))
        }),
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// A byte stream that is either plain TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

#[derive(Clone)]
struct Dialer {
    host: String,
    port: u16,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl Dialer {
    async fn dial(self) -> Result<TokioIo<Box<dyn Io>>, EndpointError> {
        let addr = format!("{}:{}", bracket(&self.host), self.port);
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| EndpointError::new(FailureKind::Connect, format!("{addr}: {e}")))?;
        // gRPC sends many small frames; Nagle would add latency to every request.
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match self.tls {
            None => Box::new(tcp),
            Some((config, name)) => {
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        EndpointError::new(FailureKind::Tls, format!("{addr}: {}", io_detail(&e)))
                    })?;
                Box::new(tls)
            }
        };
        Ok(TokioIo::new(stream))
    }
}

/// The text of an io::Error, looking inside it for a rustls error (io::Error's own `source`
/// skips its payload).
fn io_detail(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

/// The certificate `target` serves, from a TLS handshake that accepts anything (the point is to
/// look at it). The client certificate is presented when configured, since etcd may require it.
pub async fn served_certificate(
    conn: &ConnSettings,
    target: &Target,
) -> Result<Vec<u8>, EndpointError> {
    let config = tls::inspecting_config(conn)
        .map_err(|e| EndpointError::new(FailureKind::Tls, format!("{e:#}")))?;
    let name = server_name(&target.host)?;
    let addr = format!("{}:{}", bracket(&target.host), target.port);
    let dial = async {
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| EndpointError::new(FailureKind::Connect, format!("{addr}: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| {
                EndpointError::new(FailureKind::Tls, format!("{addr}: {}", io_detail(&e)))
            })?;
        let (_, session) = tls.get_ref();
        session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.to_vec())
            .ok_or_else(|| {
                EndpointError::new(FailureKind::Tls, format!("{addr}: no certificate served"))
            })
    };
    tokio::time::timeout(conn.dial_timeout.value, dial)
        .await
        .map_err(|_| EndpointError::timeout("connecting", conn.dial_timeout.value))?
}

/// Classify an error chain from tonic/hyper/h2, looking for our dial error or a TLS alert.
fn classify(err: &(dyn StdError + 'static)) -> EndpointError {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    let mut last = err.to_string();
    while let Some(e) = current {
        if let Some(ours) = e.downcast_ref::<EndpointError>() {
            return ours.clone();
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return EndpointError::new(FailureKind::Tls, tls_detail(tls));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                    return EndpointError::new(FailureKind::Tls, tls_detail(tls));
                }
                if let Some(ours) = inner.downcast_ref::<EndpointError>() {
                    return ours.clone();
                }
            }
            if io.kind() == std::io::ErrorKind::TimedOut {
                return EndpointError::new(FailureKind::Timeout, io.to_string());
            }
        }
        last = e.to_string();
        current = e.source();
    }
    EndpointError::new(FailureKind::Connect, last)
}

fn tls_detail(e: &rustls::Error) -> String {
    match e {
        rustls::Error::AlertReceived(alert) => format!(
            "the server rejected our client certificate (TLS alert {alert:?}); check --cert/--key"
        ),
        other => other.to_string(),
    }
}

/// Classify an etcd-client error (which does not expose `source`).
pub fn classify_etcd(err: &etcd_client::Error) -> EndpointError {
    use etcd_client::Error as E;
    match err {
        E::TransportError(e) => classify(e),
        E::IoError(e) => classify(e),
        E::GRpcStatus(status) => {
            if let Some(source) = status.source() {
                let found = classify(source);
                if found.kind != FailureKind::Connect
                    || (status.code() == tonic::Code::Unavailable
                        && !status.message().starts_with("etcdserver:"))
                {
                    return found;
                }
            }
            let message = status.message().to_string();
            let kind = match status.code() {
                tonic::Code::Unauthenticated => FailureKind::Auth,
                tonic::Code::InvalidArgument if message.contains("authentication failed") => {
                    FailureKind::Auth
                }
                tonic::Code::DeadlineExceeded => FailureKind::Timeout,
                // etcd answers "etcdserver: leader changed" / "no leader" as Unavailable: it
                // was reached, so that is the server's state, not a connection problem.
                tonic::Code::Unavailable if message.starts_with("etcdserver:") => {
                    FailureKind::Server
                }
                tonic::Code::Unavailable => FailureKind::Connect,
                _ if message.contains("user name is empty")
                    || message.contains("invalid auth token") =>
                {
                    FailureKind::Auth
                }
                _ => FailureKind::Server,
            };
            EndpointError::new(kind, message)
        }
        other => EndpointError::new(FailureKind::Server, other.to_string()),
    }
}

/// True when etcd said "permission denied": the request went through consensus, which is
/// all `health` needs to know.
pub fn is_permission_denied(err: &etcd_client::Error) -> bool {
    matches!(err, etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::PermissionDenied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate for another name blames the name, never the CA (rustls's own wording).
    #[test]
    fn name_mismatch_hint_does_not_blame_the_ca() {
        use rustls::{CertificateError, Error};
        let t = Target::parse("https://localhost:2379", false).unwrap();
        let trust = "CA file ca.crt (from flag --cacert)";
        for message in [
            Error::InvalidCertificate(CertificateError::NotValidForName).to_string(),
            // What a handshake with rustls 0.23 says (seen against etcd).
            "invalid peer certificate: certificate not valid for name \"localhost\"; certificate is only valid for IpAddress(127.0.0.1)".to_string(),
        ] {
            let h = hint(&message, &t, None, trust).unwrap();
            assert!(h.contains("does not name localhost") && !h.contains("not trusted"), "{message}: {h}");
        }
        let unknown = Error::InvalidCertificate(CertificateError::UnknownIssuer).to_string();
        assert_eq!(
            hint(&unknown, &t, None, trust).unwrap(),
            format!("server certificate not trusted by {trust}")
        );
    }

    #[test]
    fn endpoint_forms() {
        let t = Target::parse("https://127.0.0.1:2379", false).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 2379, true));
        let t = Target::parse("http://localhost:22379", true).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("localhost", 22379, false)
        );
        let t = Target::parse("10.0.0.1:2379", true).unwrap();
        assert!(t.tls);
        let t = Target::parse("10.0.0.1:2379", false).unwrap();
        assert!(!t.tls);
        let t = Target::parse("https://[::1]:2379", false).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 2379));
        let t = Target::parse("https://etcd.local", false).unwrap();
        assert_eq!(t.port, 2379);
        assert!(Target::parse("unix:///x", false).is_err());
        assert!(Target::parse("https://:2379", false).is_err());
        assert!(Target::parse("host:notaport", false).is_err());
    }
}
