//! A small S3 server on loopback that answers wrongly on purpose: listings that repeat keys or
//! tokens or never end, bodies that never end or trickle, 503s. It speaks plain HTTP/1.1
//! (one request per connection), keeps objects in memory, accepts any signature and records
//! every request, so a test can check what etcdops asked for and what it deleted.
//!
//! SeaweedFS ([`super::s3`]) is the real server of the other tests; this one exists because a
//! real server cannot be made to answer like this.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Every listing page says "truncated" with the same continuation token.
    SameToken,
    /// Page 1 holds the first half and a token; page 2 holds everything (overlapping page 1).
    OverlappingPages,
    /// [`Fault::SameToken`] only for a listing of a whole prefix (ending in `/`): a save's
    /// check of its own name lists cleanly, its `--keep` listing repeats every key.
    SameTokenOnPrefix,
    /// The first page says "truncated" and names no continuation token.
    TruncatedNoToken,
    /// Tokens A, B, A, B … and every page truncated, holding every object.
    AlternatingTokens,
    /// A new token on every page, each page empty and truncated.
    EndlessTokens,
    /// The same for the multipart-upload listing: new markers on every page.
    EndlessUploadListing,
    /// GET of an object (not a `.json` sidecar) sends its bytes, then zeros without end.
    EndlessBody,
    /// GET of an object sends one byte every 5 s.
    TricklingBody,
    /// The first N requests are answered `503 SlowDown`.
    SlowDown(usize),
    /// The first listing page (of a prefix) and the first object GET (not a sidecar) are
    /// answered `503 SlowDown`, once each.
    SlowDownOnceEach,
    /// Every DELETE is answered `500 InternalError`, then carried out on a later attempt.
    FlakyDeletes,
    /// Every multipart part is answered `503 SlowDown` once, then accepted.
    FlakyParts,
}

#[derive(Default)]
pub struct State {
    pub objects: BTreeMap<String, Vec<u8>>,
    /// "METHOD /bucket/key?query", in arrival order.
    pub requests: Vec<String>,
    /// Sidecar GETs in flight now, and the most seen at once.
    in_flight: usize,
    pub max_in_flight: usize,
    /// Requests refused once already (FlakyDeletes, FlakyParts).
    failed_once: std::collections::HashSet<String>,
    /// Parts of multipart uploads in progress: key → part number → bytes.
    parts: BTreeMap<String, BTreeMap<u32, Vec<u8>>>,
}

pub struct FaultyS3 {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    fault: Arc<Mutex<Fault>>,
    /// How long a sidecar GET or a listing page takes (to see how many sidecars are fetched
    /// at once, and how long a listing may go on).
    pub delay: Arc<Mutex<Duration>>,
    stop: Arc<AtomicBool>,
}

impl FaultyS3 {
    pub fn start(fault: Fault) -> FaultyS3 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = FaultyS3 {
            port,
            state: Arc::default(),
            fault: Arc::new(Mutex::new(fault)),
            delay: Arc::default(),
            stop: Arc::default(),
        };
        let (state, fault, delay, stop) = (
            server.state.clone(),
            server.fault.clone(),
            server.delay.clone(),
            server.stop.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (state, fault, delay) = (state.clone(), fault.clone(), delay.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &state, &fault, &delay);
                });
            }
        });
        server
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// The files of `dir` as objects under `bucket/prefix`.
    pub fn load_dir(&self, bucket: &str, prefix: &str, dir: &Path) {
        let mut state = self.state.lock().unwrap();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            state.objects.insert(
                format!("{bucket}/{prefix}{name}"),
                std::fs::read(e.path()).unwrap(),
            );
        }
    }

    /// Object keys under `bucket/prefix`, without them.
    pub fn names(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let full = format!("{bucket}/{prefix}");
        let state = self.state.lock().unwrap();
        state
            .objects
            .keys()
            .filter_map(|k| k.strip_prefix(&full).map(str::to_string))
            .collect()
    }

    pub fn requests(&self, method: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .requests
            .iter()
            .filter(|r| r.starts_with(&format!("{method} ")))
            .cloned()
            .collect()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment etcdops needs to use this server (any key is accepted).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "AKIAFAULTY".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "faulty-secret".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}

impl Drop for FaultyS3 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Request {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(conn: &TcpStream) -> std::io::Result<Request> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Ok(Request {
        method,
        path: decode(path.trim_start_matches('/')),
        query,
        body,
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(conn: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/xml\r\nETag: \"e\"\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    conn.flush()
}

fn serve(
    mut conn: TcpStream,
    state: &Mutex<State>,
    fault: &Mutex<Fault>,
    delay: &Mutex<Duration>,
) -> std::io::Result<()> {
    let req = read_request(&conn)?;
    let fault = *fault.lock().unwrap();
    {
        let mut s = state.lock().unwrap();
        let q: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.requests
            .push(format!("{} /{}?{}", req.method, req.path, q.join("&")));
        let once = match (req.method.as_str(), req.path.split_once('/')) {
            ("GET", None) if req.query.contains_key("prefix") => Some("listing"),
            ("GET", Some((_, k))) if !k.is_empty() && !k.ends_with(".json") => Some("object"),
            _ => None,
        };
        if let (Fault::SlowDownOnceEach, Some(what)) = (fault, once) {
            if s.failed_once.insert(what.to_string()) {
                drop(s);
                return respond(
                    &mut conn,
                    "503 Slow Down",
                    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                );
            }
        }
        if let Fault::SlowDown(n) = fault {
            if s.requests.len() <= n {
                drop(s);
                return respond(
                    &mut conn,
                    "503 Slow Down",
                    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                );
            }
        }
    }
    let (bucket, key) = req.path.split_once('/').unwrap_or((&req.path, ""));
    match (req.method.as_str(), key) {
        ("GET", "") if req.query.contains_key("uploads") => {
            respond(&mut conn, "200 OK", &upload_listing(&req, fault))
        }
        ("GET", "") => {
            let pause = *delay.lock().unwrap();
            std::thread::sleep(pause);
            respond(&mut conn, "200 OK", &listing(&req, bucket, state, fault))
        }
        ("GET", _) => get(&mut conn, &req.path, state, fault, delay),
        ("POST", _) | ("PUT", _) | ("DELETE", _) if is_multipart(&req) => {
            multipart(&mut conn, &req, state, fault)
        }
        ("PUT", _) => {
            state
                .lock()
                .unwrap()
                .objects
                .insert(req.path.clone(), req.body);
            respond(&mut conn, "200 OK", b"")
        }
        ("DELETE", _) => {
            let mut s = state.lock().unwrap();
            if fault == Fault::FlakyDeletes && s.failed_once.insert(req.path.clone()) {
                drop(s);
                return respond(
                    &mut conn,
                    "500 Internal Server Error",
                    b"<Error><Code>InternalError</Code><Message>try again</Message></Error>",
                );
            }
            s.objects.remove(&req.path);
            drop(s);
            respond(&mut conn, "204 No Content", b"")
        }
        _ => respond(&mut conn, "501 Not Implemented", b""),
    }
}

fn is_multipart(req: &Request) -> bool {
    req.query.contains_key("uploads") || req.query.contains_key("uploadId")
}

/// CreateMultipartUpload, UploadPart, CompleteMultipartUpload (the parts in number order) and
/// AbortMultipartUpload.
fn multipart(
    conn: &mut TcpStream,
    req: &Request,
    state: &Mutex<State>,
    fault: Fault,
) -> std::io::Result<()> {
    let mut s = state.lock().unwrap();
    match (req.method.as_str(), req.query.get("partNumber")) {
        ("POST", _) if req.query.contains_key("uploads") => {
            s.parts.insert(req.path.clone(), BTreeMap::new());
            drop(s);
            respond(
                conn,
                "200 OK",
                b"<InitiateMultipartUploadResult><UploadId>up1</UploadId></InitiateMultipartUploadResult>",
            )
        }
        ("PUT", Some(n)) => {
            let id = format!("{} part {n}", req.path);
            if fault == Fault::FlakyParts && s.failed_once.insert(id) {
                drop(s);
                return respond(
                    conn,
                    "503 Slow Down",
                    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                );
            }
            let n: u32 = n.parse().unwrap_or(0);
            s.parts
                .entry(req.path.clone())
                .or_default()
                .insert(n, req.body.clone());
            drop(s);
            respond(conn, "200 OK", b"")
        }
        ("POST", _) => {
            let parts = s.parts.remove(&req.path).unwrap_or_default();
            let whole: Vec<u8> = parts.into_values().flatten().collect();
            s.objects.insert(req.path.clone(), whole);
            drop(s);
            respond(
                conn,
                "200 OK",
                b"<CompleteMultipartUploadResult><ETag>\"e\"</ETag></CompleteMultipartUploadResult>",
            )
        }
        _ => {
            s.parts.remove(&req.path);
            drop(s);
            respond(conn, "204 No Content", b"")
        }
    }
}

fn get(
    conn: &mut TcpStream,
    path: &str,
    state: &Mutex<State>,
    fault: Fault,
    delay: &Mutex<Duration>,
) -> std::io::Result<()> {
    let sidecar = path.ends_with(".json");
    let Some(body) = state.lock().unwrap().objects.get(path).cloned() else {
        return respond(
            conn,
            "404 Not Found",
            b"<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>",
        );
    };
    if sidecar {
        {
            let mut s = state.lock().unwrap();
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
        }
        let pause = *delay.lock().unwrap();
        std::thread::sleep(pause);
        state.lock().unwrap().in_flight -= 1;
        return respond(conn, "200 OK", &body);
    }
    match fault {
        Fault::EndlessBody => {
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )?;
            let zeros = vec![0u8; 1 << 16];
            for chunk in std::iter::once(&body[..]).chain(std::iter::repeat(&zeros[..])) {
                write!(conn, "{:x}\r\n", chunk.len())?;
                conn.write_all(chunk)?;
                conn.write_all(b"\r\n")?;
            }
            Ok(())
        }
        Fault::TricklingBody => {
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            for b in body {
                conn.write_all(&[b])?;
                conn.flush()?;
                std::thread::sleep(Duration::from_secs(5));
            }
            Ok(())
        }
        _ => respond(conn, "200 OK", &body),
    }
}

fn contents(keys: &[(String, usize)]) -> String {
    keys.iter()
        .map(|(k, size)| {
            format!(
                "<Contents><Key>{}</Key><Size>{size}</Size><ETag>\"e\"</ETag><LastModified>2026-12-07T00:00:00.000Z</LastModified></Contents>",
                k.replace('&', "&amp;").replace('<', "&lt;")
            )
        })
        .collect()
}

/// ListObjectsV2 of `bucket`, with the fault applied.
fn listing(req: &Request, bucket: &str, state: &Mutex<State>, fault: Fault) -> Vec<u8> {
    let prefix = req.query.get("prefix").cloned().unwrap_or_default();
    let token = req.query.get("continuation-token").cloned();
    let all: Vec<(String, usize)> = state
        .lock()
        .unwrap()
        .objects
        .iter()
        .filter_map(|(k, v)| {
            let k = k.strip_prefix(&format!("{bucket}/"))?;
            let rest = k.strip_prefix(&prefix)?;
            (!rest.contains('/')).then(|| (k.to_string(), v.len()))
        })
        .collect();
    let half = all.len() / 2;
    let (items, next): (Vec<(String, usize)>, Option<String>) = match fault {
        Fault::SameToken => (all, Some("T".to_string())),
        Fault::TruncatedNoToken => (all, Some(String::new())),
        Fault::SameTokenOnPrefix if prefix.ends_with('/') => (all, Some("T".to_string())),
        Fault::OverlappingPages => match token {
            None => (all[..half].to_vec(), Some("page2".to_string())),
            Some(_) => (all, None),
        },
        Fault::AlternatingTokens => {
            let next = if token.as_deref() == Some("A") {
                "B"
            } else {
                "A"
            };
            (all, Some(next.to_string()))
        }
        Fault::EndlessTokens => {
            let n: u64 = token.and_then(|t| t.parse().ok()).unwrap_or(0);
            (Vec::new(), Some((n + 1).to_string()))
        }
        _ => (all, None),
    };
    let next = next
        .map(|t| {
            if t.is_empty() {
                return "<IsTruncated>true</IsTruncated>".to_string();
            }
            format!(
                "<IsTruncated>true</IsTruncated><NextContinuationToken>{t}</NextContinuationToken>"
            )
        })
        .unwrap_or_else(|| "<IsTruncated>false</IsTruncated>".to_string());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>{bucket}</Name><Prefix>{prefix}</Prefix>{next}{}</ListBucketResult>",
        contents(&items)
    )
    .into_bytes()
}

/// ListMultipartUploads: none in progress, or new markers without end.
fn upload_listing(req: &Request, fault: Fault) -> Vec<u8> {
    if fault != Fault::EndlessUploadListing {
        return b"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>".to_vec();
    }
    let n: u64 = req
        .query
        .get("key-marker")
        .and_then(|k| k.trim_start_matches('k').parse().ok())
        .unwrap_or(0);
    format!(
        "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated><NextKeyMarker>k{}</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker></ListMultipartUploadsResult>",
        n + 1
    )
    .into_bytes()
}
