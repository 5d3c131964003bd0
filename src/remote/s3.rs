//! The S3 operations etcdops needs, over [`Http`] with SigV4: objects (put, get streamed, delete,
//! list one level), multipart uploads (create, part, complete, abort, list) and bucket checks.
//!
//! Addressing (`--s3-bucket-lookup`): `path` sends `https://ENDPOINT/BUCKET/KEY`, `dns` sends
//! `https://BUCKET.ENDPOINT/KEY`; `auto` (the default) uses path style whenever an endpoint is
//! given (S3-compatible servers: MinIO, SeaweedFS, Ceph) or the bucket name is not a plain DNS
//! label, and virtual-hosted style on AWS otherwise, as aws-cli does.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::credentials::{self, AwsEnv, Loaded};
use super::http::{read_body, Http, Response};
use super::sigv4::{self, encode_path, Credentials, UNSIGNED_PAYLOAD};
use crate::exit::Hinted;
use crate::units::amz_date;

/// Small requests (lists, metadata, completes) must answer within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// One multipart part (a few MiB) must be accepted within this.
const PART_TIMEOUT: Duration = Duration::from_secs(300);
/// A download with no bytes for this long has stalled.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Responses that are not object bodies stay below this.
const SMALL_BODY: usize = 16 << 20;

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
}

/// The value of `x-amz-checksum-crc32c`: base64 of the big-endian CRC-32C.
fn crc32c_base64(body: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc32c::crc32c(body).to_be_bytes())
}

/// What one request addresses, and what it carries besides its body.
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
        if scheme == "http" {
            eprintln!(
                "etcdops: warning: the object store endpoint {} is plain http: the requests are signed but not encrypted, and anyone on the path can read unencrypted backups (use https, or --encrypt-to)",
                crate::output::escape(&format!("http://{}", uri.authority().map(|a| a.host()).unwrap_or("")))
            );
        }
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .ok_or_else(|| anyhow!("--s3-endpoint {endpoint:?} names no host"))?;
        let Loaded { creds, from } = credentials::load(&settings.env, &http).await?;
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

    /// Sign and send one request; a non-2xx answer becomes an error in words.
    async fn call(&self, req: Req<'_>, body: Bytes, limit: Duration) -> Result<Response> {
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
        let req = req
            .body(Full::new(body))
            .map_err(|e| anyhow!("building the request for s3://{bucket}/{key}: {e}"))?;
        let resp = self
            .http
            .send(req, limit)
            .await
            .map_err(|e| self.transport_error(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = read_body(resp, SMALL_BODY, STALL_TIMEOUT)
            .await
            .unwrap_or_default();
        Err(self.refusal(status, &body, bucket, key))
    }

    fn transport_error(&self, e: anyhow::Error) -> anyhow::Error {
        let text = format!("{e:#}");
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

    fn refusal(
        &self,
        status: http::StatusCode,
        body: &[u8],
        bucket: &str,
        key: &str,
    ) -> anyhow::Error {
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
        let message = crate::output::escape(&message);
        let code = crate::output::escape(&code);
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
                format!("the object store answered {} for {what} ({code}{})", status.as_u16(), if message.is_empty() { String::new() } else { format!(": {message}") }),
                "retry; if it persists, check the object store's logs".to_string(),
            ),
        };
        Hinted {
            error: anyhow!(error),
            hint,
        }
        .into()
    }

    async fn call_small(&self, req: Req<'_>, body: Bytes) -> Result<Vec<u8>> {
        let (bucket, key) = (req.bucket, req.key);
        let resp = self.call(req, body, REQUEST_TIMEOUT).await?;
        read_body(resp, SMALL_BODY, STALL_TIMEOUT)
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
        read_body(resp, limit, STALL_TIMEOUT)
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

    /// Objects directly under `prefix` (a `/` delimiter: no deeper levels).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Object>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
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
            out.extend(page.contents.into_iter().map(|c| Object {
                key: c.key,
                size: c.size,
                last_modified: c.last_modified,
                etag: c.etag,
            }));
            match (page.is_truncated, page.next_continuation_token) {
                (true, Some(t)) if Some(&t) != token.as_ref() => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
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
                        crate::output::escape(&e.code),
                        crate::output::escape(&e.message)
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

    /// Multipart uploads in progress under `prefix`.
    pub async fn list_multipart(&self, bucket: &str, prefix: &str) -> Result<Vec<Upload>> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
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
            let next = (
                page.next_key_marker.unwrap_or_default(),
                page.next_upload_id_marker.unwrap_or_default(),
            );
            if !page.is_truncated || next.0.is_empty() || Some(&next) == markers.as_ref() {
                break;
            }
            markers = Some(next);
        }
        Ok(out)
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
