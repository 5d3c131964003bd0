//! The S3 operations etcdops needs, over [`Http`] with SigV4: objects (put, get streamed, delete,
//! list one level), multipart uploads (create, part, complete, abort, list) and bucket checks.
//!
//! Addressing (`--s3-bucket-lookup`): `path` sends `https://ENDPOINT/BUCKET/KEY`, `dns` sends
//! `https://BUCKET.ENDPOINT/KEY`; `auto` (the default) uses path style whenever an endpoint is
//! given (S3-compatible servers: MinIO, SeaweedFS, Ceph) or the bucket name is not a plain DNS
//! label, and virtual-hosted style on AWS otherwise, as aws-cli does.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::credentials::{self, AwsEnv, Loaded};
use super::http::{read_body, Http, Response};
use super::sigv4::{self, encode_path, Credentials, UNSIGNED_PAYLOAD};
use crate::exit::Hinted;
use crate::timestamp::amz_date;

/// Small requests (lists, metadata, completes) must answer within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// One multipart part (a few MiB) must be accepted within this.
const PART_TIMEOUT: Duration = Duration::from_secs(300);
/// A download with no bytes for this long has stalled.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Responses that are not object bodies stay below this.
const SMALL_BODY: usize = 16 << 20;
/// A listing stops with an error past this many pages or entries (a prefix of generated
/// snapshots holds thousands at most; a server whose pages never end is faulty).
pub const MAX_LIST_PAGES: usize = 1_000;
pub const MAX_LIST_ENTRIES: usize = 200_000;
/// One whole listing (every page) must be over within this, whatever the command's deadline.
pub const LIST_DEADLINE: Duration = Duration::from_secs(300);
/// Attempts per request when `AWS_MAX_ATTEMPTS` does not say (the AWS SDKs' standard mode).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BucketLookup {
    #[default]
    Auto,
    Path,
    Dns,
}

/// Where and how to reach the object store, resolved from flags and the environment.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `--s3-endpoint` / `AWS_ENDPOINT_URL`; AWS's regional endpoint when absent.
    pub endpoint: Option<String>,
    pub region: String,
    /// `--s3-endpoint-ca` / `AWS_CA_BUNDLE`, and which of the two it came from.
    pub ca: Option<(std::path::PathBuf, &'static str)>,
    pub skip_verify: bool,
    pub lookup: BucketLookup,
    pub env: AwsEnv,
    /// Send a CRC32C checksum with every upload (`AWS_REQUEST_CHECKSUM_CALCULATION`
    /// `when_supported`, the default) or only where required (`when_required`: never).
    pub checksums: bool,
    /// Attempts per request for answers worth retrying (500, 502, 503, 504, 429, throttling
    /// codes, a broken connection): `AWS_MAX_ATTEMPTS` / the profile's `max_attempts`.
    pub max_attempts: u32,
    /// `--timeout` of a command that reads: every request and body of this client must be
    /// over within this of its connection.
    pub timeout: Option<Duration>,
}

pub struct S3 {
    http: Http,
    scheme: String,
    /// host[:port] of the endpoint.
    authority: String,
    endpoint_given: bool,
    lookup: BucketLookup,
    region: String,
    creds: Credentials,
    /// Where the credentials came from, for messages (never the values).
    creds_from: String,
    checksums: bool,
    max_attempts: u32,
    /// When every read of this client must be over (`--timeout` after connecting).
    deadline: Option<(Instant, Duration)>,
}

/// The value of `x-amz-checksum-crc32c`: base64 of the big-endian CRC-32C.
fn crc32c_base64(body: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc32c::crc32c(body).to_be_bytes())
}

/// What one request addresses, and what it carries besides its body.
#[derive(Clone, Copy)]
struct Req<'a> {
    method: &'a str,
    bucket: &'a str,
    key: &'a str,
    query: &'a [(String, String)],
    /// Headers to sign and send besides host, date, payload hash and session token.
    headers: &'a [(&'a str, String)],
}

impl<'a> Req<'a> {
    fn new(method: &'a str, bucket: &'a str, key: &'a str) -> Req<'a> {
        Req {
            method,
            bucket,
            key,
            query: &[],
            headers: &[],
        }
    }

    fn query(self, query: &'a [(String, String)]) -> Req<'a> {
        Req { query, ..self }
    }

    fn headers(self, headers: &'a [(&'a str, String)]) -> Req<'a> {
        Req { headers, ..self }
    }
}

/// How one attempt of a request failed.
enum Attempt {
    /// Worth another attempt: 500, 502, 503, 504, 429, a throttling or internal-error code, or
    /// a connection that broke or could not be made.
    Retry(anyhow::Error),
    Final(anyhow::Error),
}

/// " after N attempts", for an error that came after more than one.
fn after(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// One uploaded part of a multipart upload, as CompleteMultipartUpload names it.
#[derive(Debug, Clone)]
pub struct Part {
    pub number: u32,
    pub etag: String,
    /// Base64 CRC32C of the part, when checksums are sent.
    pub crc32c: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Object {
    pub key: String,
    pub size: u64,
    pub last_modified: String,
    /// As the server sent it (quotes included).
    pub etag: String,
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
    pub initiated: String,
}

impl S3 {
    pub async fn connect(settings: &S3Settings) -> Result<S3> {
        if settings.skip_verify {
            eprintln!("etcdops: warning: --s3-skip-ssl-verify: the object store's certificate is not checked; anyone on the path can read and change the backups");
        }
        let ca = settings.ca.as_ref().map(|(p, from)| (p.as_path(), *from));
        let tls = crate::tls::https_config(ca, settings.skip_verify)?;
        let http = Http::new(tls);
        let endpoint = match &settings.endpoint {
            Some(e) => e.clone(),
            None => format!("https://s3.{}.amazonaws.com", settings.region),
        };
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| anyhow!("--s3-endpoint {endpoint:?} is not a URL: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_string(),
            _ => bail!("--s3-endpoint {endpoint:?} must start with https:// (or http://)"),
        };
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .ok_or_else(|| anyhow!("--s3-endpoint {endpoint:?} names no host"))?;
        let Loaded { creds, from } = credentials::load(&settings.env, &http).await?;
        if scheme == "http" {
            // The secret key never leaves; a session token is sent as a header of every request.
            let token = if creds.session_token.is_some() {
                format!(" the session token from {from} travels in clear with every request (anyone on the path can use it until it expires), and")
            } else {
                String::new()
            };
            eprintln!(
                "etcdops: warning: the object store endpoint {} is plain http: the requests are signed but not encrypted;{token} anyone on the path can read unencrypted backups (use https, or --encrypt-to)",
                crate::text::escape(&format!("http://{}", uri.authority().map(|a| a.host()).unwrap_or("")))
            );
        }
        Ok(S3 {
            http,
            scheme,
            authority,
            endpoint_given: settings.endpoint.is_some(),
            lookup: settings.lookup,
            region: settings.region.clone(),
            creds,
            creds_from: from,
            checksums: settings.checksums,
            max_attempts: settings.max_attempts.max(1),
            deadline: settings.timeout.map(|t| (Instant::now() + t, t)),
        })
    }

    fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    fn virtual_hosted(&self, bucket: &str) -> bool {
        let dns_label = !bucket.is_empty()
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        match self.lookup {
            BucketLookup::Path => false,
            BucketLookup::Dns => true,
            BucketLookup::Auto => !self.endpoint_given && dns_label,
        }
    }

    /// Sign and send a request; a non-2xx answer becomes an error in words. An answer worth
    /// retrying (see [`Attempt`]) is sent again after a pause, up to `max_attempts` in all, as
    /// the AWS SDKs' standard mode does: a random pause up to 1 s, 2 s, 4 s … (at most 20 s).
    async fn call(&self, req: Req<'_>, body: Bytes, limit: Duration) -> Result<Response> {
        let mut attempt = 1;
        loop {
            let limit = self.remaining(limit)?;
            match self.call_once(req, body.clone(), limit, attempt).await {
                Ok(resp) => return Ok(resp),
                Err(Attempt::Retry(_)) if attempt < self.max_attempts => {
                    let ceiling = Duration::from_secs(1 << (attempt - 1).min(5)).min(MAX_BACKOFF);
                    let pause = ceiling.mul_f64(rand::random::<f64>());
                    tokio::time::sleep(self.remaining(pause)?).await;
                    attempt += 1;
                }
                // A request cut short by the command's deadline failed because of it: say so
                // (`--timeout`), not "no answer within" the few milliseconds that were left.
                Err(Attempt::Retry(e) | Attempt::Final(e)) => {
                    return Err(self.remaining(Duration::ZERO).err().unwrap_or(e))
                }
            }
        }
    }

    /// `limit`, shortened to what is left of the command's `--timeout`; an error once it is
    /// over.
    fn remaining(&self, limit: Duration) -> Result<Duration> {
        let Some((deadline, timeout)) = self.deadline else {
            return Ok(limit);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Hinted {
                error: anyhow!(
                    "the object store {} did not finish within --timeout {}",
                    self.endpoint(),
                    crate::units::go_duration(timeout)
                ),
                hint: "raise --timeout, or check the object store and the network".to_string(),
            }
            .into());
        }
        Ok(limit.min(left))
    }

    /// When every read of this client must be over (`--timeout`), for a caller streaming a
    /// body itself.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.map(|(d, _)| d)
    }

    /// A whole small body, within the stall timer and the command's `--timeout`.
    async fn read_small(&self, resp: Response, limit: usize) -> Result<Vec<u8>> {
        let left = self.remaining(Duration::MAX)?;
        match tokio::time::timeout(left, read_body(resp, limit, STALL_TIMEOUT)).await {
            Ok(body) => body,
            Err(_) => Err(self
                .remaining(Duration::ZERO)
                .err()
                .unwrap_or_else(|| anyhow!("the object store's answer did not end in time"))),
        }
    }

    /// One attempt of [`S3::call`].
    async fn call_once(
        &self,
        req: Req<'_>,
        body: Bytes,
        limit: Duration,
        attempt: u32,
    ) -> std::result::Result<Response, Attempt> {
        let (bucket, key) = (req.bucket, req.key);
        let req = self.signed(req, body).map_err(|e| {
            Attempt::Final(anyhow!("building the request for s3://{bucket}/{key}: {e}"))
        })?;
        let resp = match self.http.send(req, limit).await {
            Ok(resp) => resp,
            // A connection that broke or was refused may work the next time; a request that
            // used up its time limit is not sent again.
            Err(e) if format!("{e:#}").contains("no answer within") => {
                return Err(Attempt::Final(self.transport_error(e, attempt)))
            }
            Err(e) => return Err(Attempt::Retry(self.transport_error(e, attempt))),
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = self.read_small(resp, SMALL_BODY).await.unwrap_or_default();
        let (error, retry) = self.refusal(status, &body, bucket, key, attempt);
        Err(if retry {
            Attempt::Retry(error)
        } else {
            Attempt::Final(error)
        })
    }

    /// The request of one attempt, signed (SigV4) at this moment.
    fn signed(
        &self,
        req: Req<'_>,
        body: Bytes,
    ) -> std::result::Result<http::Request<Full<Bytes>>, http::Error> {
        let Req {
            method,
            bucket,
            key,
            query,
            headers: extra,
        } = req;
        let (host, path) = if self.virtual_hosted(bucket) {
            (format!("{bucket}.{}", self.authority), format!("/{key}"))
        } else if key.is_empty() {
            (self.authority.clone(), format!("/{bucket}"))
        } else {
            (self.authority.clone(), format!("/{bucket}/{key}"))
        };
        let path = encode_path(&path);
        let payload_hash = if self.scheme == "https" {
            UNSIGNED_PAYLOAD.to_string()
        } else {
            crate::units::hex(&Sha256::digest(&body))
        };
        let date = amz_date(std::time::SystemTime::now());
        let mut headers = vec![
            ("host".to_string(), host.clone()),
            ("x-amz-content-sha256".to_string(), payload_hash.clone()),
            ("x-amz-date".to_string(), date.clone()),
        ];
        if let Some(token) = &self.creds.session_token {
            headers.push(("x-amz-security-token".to_string(), token.clone()));
        }
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let auth = sigv4::sign(
            &sigv4::Request {
                method,
                path: &path,
                query,
                headers: &headers,
                payload_hash: &payload_hash,
            },
            &self.creds,
            &self.region,
            &date,
        );
        let query_string = sigv4::canonical_query(query);
        let uri = if query_string.is_empty() {
            format!("{}://{host}{path}", self.scheme)
        } else {
            format!("{}://{host}{path}?{query_string}", self.scheme)
        };
        let mut req = http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("authorization", auth)
            .header("content-length", body.len());
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        req.body(Full::new(body))
    }

    fn transport_error(&self, e: anyhow::Error, attempts: u32) -> anyhow::Error {
        let text = format!("{e:#}{}", after(attempts));
        let hint = if text.contains("certificate") || text.contains("UnknownIssuer") {
            "pass the CA that signed the object store's certificate with --s3-endpoint-ca FILE (or AWS_CA_BUNDLE)"
        } else if text.contains("refused") || text.contains("timed out") || text.contains("dns") {
            "check --s3-endpoint (or AWS_ENDPOINT_URL) and that the object store is up"
        } else {
            "check --s3-endpoint, the network and the object store"
        };
        Hinted {
            error: anyhow!("object store {}: {text}", self.endpoint()),
            hint: hint.to_string(),
        }
        .into()
    }

    /// The error for a non-2xx answer, and whether it is worth another attempt.
    fn refusal(
        &self,
        status: http::StatusCode,
        body: &[u8],
        bucket: &str,
        key: &str,
        attempts: u32,
    ) -> (anyhow::Error, bool) {
        let parsed: Option<ErrorBody> = std::str::from_utf8(body)
            .ok()
            .and_then(|s| quick_xml::de::from_str(s).ok());
        let (code, message) = match parsed {
            Some(e) => (e.code, e.message),
            None => (
                status
                    .canonical_reason()
                    .unwrap_or("error")
                    .replace(' ', ""),
                String::new(),
            ),
        };
        let what = if key.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{key}")
        };
        let message = crate::text::escape(&message);
        let code = crate::text::escape(&code);
        let (error, hint) = match (status.as_u16(), code.as_str()) {
            (_, "NoSuchBucket") => (
                format!("bucket {bucket:?} does not exist at {}", self.endpoint()),
                format!("create it first (aws s3 mb s3://{bucket}) or fix the bucket name"),
            ),
            (_, "NoSuchKey") | (404, _) => (
                format!("{what} does not exist"),
                "list what is there with `etcdops snapshot ls s3://BUCKET/PREFIX/`".to_string(),
            ),
            (_, "SignatureDoesNotMatch" | "InvalidAccessKeyId" | "AccessDenied" | "InvalidToken" | "ExpiredToken")
            | (401 | 403, _) => (
                format!("the object store refused the credentials from {} for {what} ({code}{})", self.creds_from, if message.is_empty() { String::new() } else { format!(": {message}") }),
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket policy".to_string(),
            ),
            _ => (
                format!("the object store answered {} for {what} ({code}{}){}", status.as_u16(), if message.is_empty() { String::new() } else { format!(": {message}") }, after(attempts)),
                "retry later (AWS_MAX_ATTEMPTS sets the attempts per request); if it persists, check the object store's logs".to_string(),
            ),
        };
        let retry = matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
            || matches!(
                code.as_str(),
                "SlowDown"
                    | "Throttling"
                    | "ThrottlingException"
                    | "RequestTimeout"
                    | "InternalError"
                    | "ServiceUnavailable"
            );
        let error = Hinted {
            error: anyhow!(error),
            hint,
        }
        .into();
        (error, retry)
    }

    async fn call_small(&self, req: Req<'_>, body: Bytes) -> Result<Vec<u8>> {
        let (bucket, key) = (req.bucket, req.key);
        let resp = self.call(req, body, REQUEST_TIMEOUT).await?;
        self.read_small(resp, SMALL_BODY)
            .await
            .with_context(|| format!("s3://{bucket}/{key}"))
    }

    /// Fails with a clear line when the bucket is missing or the credentials are refused.
    pub async fn check_bucket(&self, bucket: &str) -> Result<()> {
        let q = [
            ("list-type".to_string(), "2".to_string()),
            ("max-keys".to_string(), "1".to_string()),
        ];
        self.call_small(Req::new("GET", bucket, "").query(&q), Bytes::new())
            .await?;
        Ok(())
    }

    pub async fn put_object(&self, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        let (extra, _) = self.checksum(&body);
        self.call_small(Req::new("PUT", bucket, key).headers(&extra), body)
            .await?;
        Ok(())
    }

    /// The headers that carry the body's CRC32C (the server checks it, and S3 Object Lock
    /// buckets require a checksum on every upload), and its value; none when checksums are off.
    fn checksum(&self, body: &[u8]) -> (Vec<(&'static str, String)>, Option<String>) {
        if !self.checksums {
            return (Vec::new(), None);
        }
        let value = crc32c_base64(body);
        (
            vec![
                ("x-amz-sdk-checksum-algorithm", "CRC32C".to_string()),
                ("x-amz-checksum-crc32c", value.clone()),
            ],
            Some(value),
        )
    }

    /// A small object, whole (metadata sidecars).
    pub async fn get_small(&self, bucket: &str, key: &str, limit: usize) -> Result<Vec<u8>> {
        let resp = self
            .call(Req::new("GET", bucket, key), Bytes::new(), REQUEST_TIMEOUT)
            .await?;
        self.read_small(resp, limit)
            .await
            .with_context(|| format!("s3://{bucket}/{key}"))
    }

    /// An object's body, to be streamed by the caller.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Response> {
        self.call(Req::new("GET", bucket, key), Bytes::new(), REQUEST_TIMEOUT)
            .await
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        self.call_small(Req::new("DELETE", bucket, key), Bytes::new())
            .await?;
        Ok(())
    }

    /// Objects directly under `prefix` (a `/` delimiter: no deeper levels). A listing the
    /// server gets wrong is an error, never a partial or doubled answer: a key named twice, a
    /// continuation token seen before, a truncated page without a token, more than
    /// [`MAX_LIST_PAGES`] pages or [`MAX_LIST_ENTRIES`] entries, or more than [`LIST_DEADLINE`].
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Object>> {
        let what = format!("s3://{bucket}/{prefix}");
        let pages = async {
            let mut out = Vec::new();
            let mut keys = HashSet::new();
            let mut tokens = HashSet::new();
            let mut token: Option<String> = None;
            for _ in 0..MAX_LIST_PAGES {
                let mut q = vec![
                    ("list-type".to_string(), "2".to_string()),
                    ("prefix".to_string(), prefix.to_string()),
                    ("delimiter".to_string(), "/".to_string()),
                ];
                if let Some(t) = &token {
                    q.push(("continuation-token".to_string(), t.clone()));
                }
                let body = self
                    .call_small(Req::new("GET", bucket, "").query(&q), Bytes::new())
                    .await?;
                let page: ListBucketResult = parse_xml(&body, "ListObjectsV2")?;
                for c in page.contents {
                    if !keys.insert(c.key.clone()) {
                        return Err(faulty_listing(
                            &what,
                            &format!("it names {:?} twice", c.key),
                        ));
                    }
                    out.push(Object {
                        key: c.key,
                        size: c.size,
                        last_modified: c.last_modified,
                        etag: c.etag,
                    });
                }
                within_entry_cap(&what, out.len())?;
                token = match (page.is_truncated, page.next_continuation_token) {
                    (false, _) => return Ok(out),
                    (true, Some(t)) if !t.is_empty() => {
                        if !tokens.insert(t.clone()) {
                            return Err(faulty_listing(&what, "it repeats a continuation token"));
                        }
                        Some(t)
                    }
                    (true, _) => {
                        return Err(faulty_listing(
                            &what,
                            "a page is truncated but names no continuation token",
                        ))
                    }
                };
            }
            Err(faulty_listing(
                &what,
                &format!("it has more than {MAX_LIST_PAGES} pages"),
            ))
        };
        bounded_listing(&what, pages).await
    }

    pub async fn create_multipart(&self, bucket: &str, key: &str) -> Result<String> {
        let q = [("uploads".to_string(), String::new())];
        let extra: Vec<(&str, String)> = if self.checksums {
            vec![("x-amz-checksum-algorithm", "CRC32C".to_string())]
        } else {
            Vec::new()
        };
        let body = self
            .call_small(
                Req::new("POST", bucket, key).query(&q).headers(&extra),
                Bytes::new(),
            )
            .await?;
        let r: InitiateResult = parse_xml(&body, "CreateMultipartUpload")?;
        Ok(r.upload_id)
    }

    /// Upload part `number` (from 1).
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
    ) -> Result<Part> {
        let q = [
            ("partNumber".to_string(), number.to_string()),
            ("uploadId".to_string(), upload_id.to_string()),
        ];
        let (extra, crc32c) = self.checksum(&body);
        let resp = self
            .call(
                Req::new("PUT", bucket, key).query(&q).headers(&extra),
                body,
                PART_TIMEOUT,
            )
            .await?;
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                anyhow!("the object store sent no ETag for part {number} of s3://{bucket}/{key}")
            })?;
        Ok(Part {
            number,
            etag,
            crc32c,
        })
    }

    /// Complete an upload; returns the object's ETag as the server gave it.
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[Part],
    ) -> Result<String> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for p in parts {
            let crc = p
                .crc32c
                .as_ref()
                .map(|c| format!("<ChecksumCRC32C>{c}</ChecksumCRC32C>"))
                .unwrap_or_default();
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>{crc}</Part>",
                p.number,
                quick_xml::escape::escape(p.etag.as_str())
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let q = [("uploadId".to_string(), upload_id.to_string())];
        let body = self
            .call_small(Req::new("POST", bucket, key).query(&q), Bytes::from(xml))
            .await?;
        // S3 may answer 200 and still report a failure in the body.
        if let Ok(text) = std::str::from_utf8(&body) {
            if let Ok(e) = quick_xml::de::from_str::<ErrorBody>(text) {
                if !e.code.is_empty() {
                    bail!(
                        "completing the upload of s3://{bucket}/{key} failed: {}: {}",
                        crate::text::escape(&e.code),
                        crate::text::escape(&e.message)
                    );
                }
            }
        }
        Ok(parse_xml::<CompleteResult>(&body, "CompleteMultipartUpload")?.etag)
    }

    pub async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        let q = [("uploadId".to_string(), upload_id.to_string())];
        self.call_small(Req::new("DELETE", bucket, key).query(&q), Bytes::new())
            .await?;
        Ok(())
    }

    /// Multipart uploads in progress under `prefix`, with the same bounds as [`S3::list`].
    pub async fn list_multipart(&self, bucket: &str, prefix: &str) -> Result<Vec<Upload>> {
        let what = format!("the uploads in progress under s3://{bucket}/{prefix}");
        let pages = async {
            let mut out = Vec::new();
            let mut seen = HashSet::new();
            let mut markers: Option<(String, String)> = None;
            for _ in 0..MAX_LIST_PAGES {
                let mut q = vec![
                    ("uploads".to_string(), String::new()),
                    ("prefix".to_string(), prefix.to_string()),
                ];
                if let Some((k, u)) = &markers {
                    q.push(("key-marker".to_string(), k.clone()));
                    q.push(("upload-id-marker".to_string(), u.clone()));
                }
                let body = self
                    .call_small(Req::new("GET", bucket, "").query(&q), Bytes::new())
                    .await?;
                let page: ListUploadsResult = parse_xml(&body, "ListMultipartUploads")?;
                out.extend(page.uploads.into_iter().map(|u| Upload {
                    key: u.key,
                    upload_id: u.upload_id,
                    initiated: u.initiated,
                }));
                within_entry_cap(&what, out.len())?;
                let next = (
                    page.next_key_marker.unwrap_or_default(),
                    page.next_upload_id_marker.unwrap_or_default(),
                );
                if !page.is_truncated {
                    return Ok(out);
                }
                if next.0.is_empty() || !seen.insert(next.clone()) {
                    return Err(faulty_listing(
                        &what,
                        "a truncated page names no new markers",
                    ));
                }
                markers = Some(next);
            }
            Err(faulty_listing(
                &what,
                &format!("it has more than {MAX_LIST_PAGES} pages"),
            ))
        };
        bounded_listing(&what, pages).await
    }
}

/// A listing past [`MAX_LIST_ENTRIES`] entries is refused.
fn within_entry_cap(what: &str, entries: usize) -> Result<()> {
    if entries > MAX_LIST_ENTRIES {
        return Err(faulty_listing(
            what,
            &format!("it has more than {MAX_LIST_ENTRIES} entries"),
        ));
    }
    Ok(())
}

/// A listing the object store got wrong: nothing is decided on it.
fn faulty_listing(what: &str, why: &str) -> anyhow::Error {
    Hinted {
        error: anyhow!(
            "the object store's listing of {} is faulty: {}; nothing was changed",
            crate::text::escape(what),
            crate::text::escape(why)
        ),
        hint: "check the object store (its logs, a proxy in between); `aws s3api list-objects-v2` shows what it answers".to_string(),
    }
    .into()
}

/// Run a whole listing within [`LIST_DEADLINE`].
async fn bounded_listing<T>(
    what: &str,
    pages: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(LIST_DEADLINE, pages).await {
        Ok(r) => r,
        Err(_) => Err(faulty_listing(
            what,
            &format!(
                "it did not end within {}",
                crate::units::go_duration(LIST_DEADLINE)
            ),
        )),
    }
}

/// Read `body` as each XML answer this client parses (listings, uploads, errors). For the fuzz
/// target: no answer may panic the client or make it allocate without bound.
pub fn parse_every_answer(body: &[u8]) {
    let _ = parse_xml::<ListBucketResult>(body, "ListObjectsV2");
    let _ = parse_xml::<InitiateResult>(body, "CreateMultipartUpload");
    let _ = parse_xml::<ListUploadsResult>(body, "ListMultipartUploads");
    let _ = parse_xml::<ErrorBody>(body, "an error");
    let _ = parse_xml::<CompleteResult>(body, "CompleteMultipartUpload");
}

fn parse_xml<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T> {
    let text = std::str::from_utf8(body)
        .map_err(|_| anyhow!("the object store's answer to {what} is not UTF-8 XML"))?;
    quick_xml::de::from_str(text)
        .map_err(|e| anyhow!("the object store's answer to {what} is not the expected XML: {e}"))
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

#[derive(Deserialize)]
struct ListBucketResult {
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextContinuationToken")]
    next_continuation_token: Option<String>,
    #[serde(rename = "Contents", default)]
    contents: Vec<Contents>,
}

#[derive(Deserialize)]
struct Contents {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Size", default)]
    size: u64,
    #[serde(rename = "LastModified", default)]
    last_modified: String,
    #[serde(rename = "ETag", default)]
    etag: String,
}

/// `<CompleteMultipartUploadResult>`: the completed object's ETag.
#[derive(Deserialize)]
struct CompleteResult {
    #[serde(rename = "ETag", default)]
    etag: String,
}

#[derive(Deserialize)]
struct InitiateResult {
    #[serde(rename = "UploadId")]
    upload_id: String,
}

#[derive(Deserialize)]
struct ListUploadsResult {
    #[serde(rename = "IsTruncated", default)]
    is_truncated: bool,
    #[serde(rename = "NextKeyMarker")]
    next_key_marker: Option<String>,
    #[serde(rename = "NextUploadIdMarker")]
    next_upload_id_marker: Option<String>,
    #[serde(rename = "Upload", default)]
    uploads: Vec<UploadEntry>,
}

#[derive(Deserialize)]
struct UploadEntry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "UploadId")]
    upload_id: String,
    #[serde(rename = "Initiated", default)]
    initiated: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_header_value_is_base64_of_the_big_endian_checksum() {
        // The CRC-32C check value of "123456789" is 0xE3069283.
        assert_eq!(crc32c_base64(b"123456789"), "4waSgw==");
        assert_eq!(crc32c_base64(b""), "AAAAAA==");
    }

    #[test]
    fn list_results_parse() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken>
<Contents><Key>p/a&amp;b.db</Key><LastModified>2026-11-28T05:23:09.000Z</LastModified><ETag>&quot;x&quot;</ETag><Size>20000000</Size></Contents>
<Contents><Key>p/c</Key><Size>1</Size></Contents><CommonPrefixes><Prefix>p/d/</Prefix></CommonPrefixes></ListBucketResult>"#;
        let r: ListBucketResult = parse_xml(xml.as_bytes(), "t").unwrap();
        assert!(r.is_truncated);
        assert_eq!(r.next_continuation_token.as_deref(), Some("tok"));
        assert_eq!(r.contents.len(), 2);
        assert_eq!(r.contents[0].key, "p/a&b.db");
        assert_eq!(r.contents[0].size, 20000000);
        let e: ErrorBody = quick_xml::de::from_str(
            "<Error><Code>NoSuchBucket</Code><Message>gone</Message><Resource>/b</Resource></Error>",
        )
        .unwrap();
        assert_eq!(e.code, "NoSuchBucket");
        let u: ListUploadsResult = parse_xml(b"<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>false</IsTruncated><Upload><Key>k</Key><UploadId>u1</UploadId><Initiated>2026-11-28T05:00:00Z</Initiated></Upload></ListMultipartUploadsResult>", "t").unwrap();
        assert_eq!(u.uploads[0].upload_id, "u1");
    }
}
