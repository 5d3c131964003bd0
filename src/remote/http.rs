//! The one HTTP/1.1 client object storage is reached with: hyper over rustls (the same ring
//! provider as the etcd connection), a bounded connect time, and bodies either in memory (small
//! requests, one multipart part at a time) or streamed (downloads).

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub type Response = http::Response<Incoming>;

#[derive(Clone)]
pub struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Http {
    pub fn new(tls: rustls::ClientConfig) -> Http {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Http { client }
    }

    /// Send and wait for the response head, at most `limit`.
    pub async fn send(&self, req: http::Request<Full<Bytes>>, limit: Duration) -> Result<Response> {
        let uri = req.uri().clone();
        let host = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        match tokio::time::timeout(limit, self.client.request(req)).await {
            Err(_) => anyhow::bail!("{host}: no answer within {limit:?}"),
            Ok(Err(e)) => Err(anyhow::anyhow!("{host}: {}", describe(&e))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

/// Read a whole body that is known to be small, refusing more than `limit` bytes.
pub async fn read_body(resp: Response, limit: usize, stall: Duration) -> Result<Vec<u8>> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    loop {
        let frame = tokio::time::timeout(stall, body.frame())
            .await
            .map_err(|_| anyhow::anyhow!("the response stalled for {stall:?}"))?;
        let Some(frame) = frame else { break };
        let frame = frame.context("reading the response")?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > limit {
                anyhow::bail!("the response is larger than {limit} bytes");
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out)
}

/// The innermost cause of a client error, in words: hyper's own text is "client error
/// (Connect)", which says nothing.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}
