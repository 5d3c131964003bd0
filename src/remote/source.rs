//! SOURCE → a plain snapshot file on local disk, for `snapshot status`, `verify` and `restore`.
//!
//! - A plain local file is used where it is (nothing copied).
//! - A local `.zst`/`.age` file, or any `s3://` object, is decoded (download, decrypt,
//!   decompress) into an exclusive 0600 temporary in a scratch directory chosen by the caller
//!   (restore: beside the data dir, so the space check covers it), removed when dropped.
//! - An `s3://` object is trusted only with its sidecar: the object's and the plain file's
//!   sha256 and sizes must match it, or nothing is returned. A local sidecar (`FILE.json`), when
//!   present, is checked the same way, for a plain file too (an extra read of the whole file,
//!   before the command reads it).
//!
//! The etcd sha256 trailer is checked afterwards by the command, as for any snapshot file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;

pub use super::codec::BadContent;
use super::codec::{self, Digests, Identities, Layers};
use super::meta::{Metadata, MAX_SIDECAR, SIDECAR_SUFFIX};
use super::s3::{S3Settings, S3, STALL_TIMEOUT};
use super::Location;
use crate::buf::{AlignedBuf, AlignedWriter};
use crate::etcd::status::TrailerCheck;
use crate::fsutil::TempFile;
use crate::units::hex;

/// Where to read a snapshot from and how to open it.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub location: Location,
    pub identities: Vec<PathBuf>,
    pub s3: S3Settings,
}

/// A plain snapshot file, possibly a decoded temporary (removed on drop).
pub struct PlainSnapshot {
    pub path: PathBuf,
    temp: Option<TempFile>,
    pub layers: Layers,
    /// The sidecar the object was checked against.
    pub meta: Option<Metadata>,
    /// A decoded temporary whose sha256 trailer was checked while it was written.
    pub trailer_verified: bool,
    /// Made here from a revision log: no trailer (every segment's sha256 was checked instead).
    pub replayed: bool,
}

impl PlainSnapshot {
    /// A database made here (a base with the revision log replayed into it): it has no sha256
    /// trailer, and nothing read it but us.
    pub fn replayed(temp: TempFile) -> PlainSnapshot {
        PlainSnapshot {
            path: temp.path().to_path_buf(),
            temp: Some(temp),
            layers: Layers::default(),
            meta: None,
            trailer_verified: false,
            replayed: true,
        }
    }

    /// The decoded temporary, for a caller that moves it into place instead of copying it
    /// (`None` for a file used where it is).
    pub fn into_temp(self) -> Option<TempFile> {
        self.temp
    }
}

pub fn open(src: &SourceSettings, scratch: &Path) -> Result<PlainSnapshot> {
    match &src.location {
        Location::Local(path) => open_local(path, src, scratch),
        Location::S3 { bucket, key } => open_s3(bucket, key, src, scratch),
    }
}

fn open_local(path: &Path, src: &SourceSettings, scratch: &Path) -> Result<PlainSnapshot> {
    let mut file =
        crate::fsutil::open_regular(path).with_context(|| format!("reading {}", path.display()))?;
    let (head, mut whole) = codec::peek(&mut file, codec::AGE_MAGIC.len())
        .with_context(|| format!("reading {}", path.display()))?;
    if !head.starts_with(codec::AGE_MAGIC) && !head.starts_with(&codec::ZSTD_MAGIC) {
        // A plain file saved into a DIR/ has a sidecar too: check it the same way.
        let meta = local_sidecar(path)?;
        let mut trailer_verified = false;
        if let Some(meta) = &meta {
            let mut check = TrailerCheck::new();
            let mut buf = AlignedBuf::new(1 << 20);
            loop {
                let n = whole
                    .read(&mut buf)
                    .with_context(|| format!("reading {}", path.display()))?;
                if n == 0 {
                    break;
                }
                check.feed(&buf[..n]);
            }
            let digests = Digests {
                plain_sha256: check.file_sha256(),
                plain_len: check.total,
                object_sha256: check.file_sha256(),
                object_len: check.total,
            };
            check_against(meta, &digests, &path.display().to_string())?;
            trailer_verified = check.verify().is_ok();
        }
        return Ok(PlainSnapshot {
            path: path.to_path_buf(),
            temp: None,
            layers: Layers::default(),
            meta,
            trailer_verified,
            replayed: false,
        });
    }
    let file =
        crate::fsutil::open_regular(path).with_context(|| format!("reading {}", path.display()))?;
    let ids = Identities::load(&src.identities)?;
    let what = path.display().to_string();
    let meta = local_sidecar(path)?;
    let declared = meta.as_ref().map(|m| m.db_size);
    let (temp, layers, digests, trailer_verified) =
        decode_to_temp(file, &ids, &what, scratch, path, declared)?;
    if let Some(meta) = &meta {
        check_against(meta, &digests, &what)?;
    }
    Ok(PlainSnapshot {
        path: temp.path().to_path_buf(),
        temp: Some(temp),
        layers,
        meta,
        trailer_verified,
        replayed: false,
    })
}

fn local_sidecar(path: &Path) -> Result<Option<Metadata>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sidecar = PathBuf::from(format!("{}{SIDECAR_SUFFIX}", path.display()));
    let bytes = match crate::fsutil::read_capped(&sidecar, MAX_SIDECAR as u64) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", sidecar.display())),
    };
    Metadata::parse(&bytes, &name)
        .map(Some)
        .with_context(|| format!("{}", sidecar.display()))
}

fn open_s3(bucket: &str, key: &str, src: &SourceSettings, scratch: &Path) -> Result<PlainSnapshot> {
    let what = format!("s3://{bucket}/{key}");
    if key.is_empty() || key.ends_with('/') {
        return Err(crate::exit::Hinted {
            error: anyhow!("{what} is a prefix, not a snapshot"),
            hint: format!("pick one with `etcdops snapshot ls {what}`"),
        }
        .into());
    }
    let ids = Identities::load(&src.identities)?;
    let name = key.rsplit('/').next().unwrap_or(key).to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (meta, resp, deadline) = rt.block_on(async {
        let s3 = S3::connect(&src.s3).await?;
        let sidecar_key = format!("{key}{SIDECAR_SUFFIX}");
        let bytes = match s3.get_small(bucket, &sidecar_key, MAX_SIDECAR + 1).await {
            Ok(b) => b,
            Err(e) if format!("{e:#}").contains("does not exist") => {
                // Tell a missing snapshot from a missing sidecar.
                s3.get_object(bucket, key).await?;
                return Err(crate::exit::Hinted {
                    error: anyhow!("{what} has no metadata object ({name}{SIDECAR_SUFFIX}): it was not written by a completed etcdops save"),
                    hint: "etcdops restores only snapshots verified on upload; download it and restore the local file if you trust it".to_string(),
                }
                .into());
            }
            Err(e) => return Err(e),
        };
        let meta = Metadata::parse(&bytes, &name).with_context(|| format!("{what}{SIDECAR_SUFFIX}"))?;
        // The decoded file goes into `scratch`: refuse before downloading what cannot fit.
        crate::fsutil::ensure_free_space(scratch, meta.db_size, "the decoded snapshot")?;
        let resp = s3.get_object(bucket, key).await?;
        Ok::<_, anyhow::Error>((meta, resp, s3.deadline()))
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, String>>(16);
    rt.spawn(pump(resp, tx, meta.object_size, deadline));
    let reader = ChannelReader {
        rx,
        current: Bytes::new(),
    };
    let (temp, layers, digests, trailer_verified) = decode_to_temp(
        reader,
        &ids,
        &what,
        scratch,
        Path::new(&name),
        Some(meta.db_size),
    )?;
    check_against(&meta, &digests, &what)?;
    Ok(PlainSnapshot {
        path: temp.path().to_path_buf(),
        temp: Some(temp),
        layers,
        meta: Some(meta),
        trailer_verified,
        replayed: false,
    })
}

/// Feed a download's body into a bounded channel (decoding runs on the caller's thread): no
/// more than `declared` bytes (the sidecar's object size; a body that goes on is an error,
/// never a full disk), no chunk later than the stall timer, nothing after `deadline`.
async fn pump(
    resp: super::http::Response,
    tx: tokio::sync::mpsc::Sender<std::result::Result<Bytes, String>>,
    declared: u64,
    deadline: Option<std::time::Instant>,
) {
    let mut body = resp.into_body();
    let mut received = 0u64;
    loop {
        let left = deadline.map_or(STALL_TIMEOUT, |d| {
            STALL_TIMEOUT.min(d.saturating_duration_since(std::time::Instant::now()))
        });
        let frame = match tokio::time::timeout(left, body.frame()).await {
            Err(_) if left < STALL_TIMEOUT => {
                Err("the download did not finish within --timeout (raise it, or check the object store and the network)".to_string())
            }
            Err(_) => Err(format!("the download stalled: no data for {STALL_TIMEOUT:?}")),
            Ok(None) => break,
            Ok(Some(Err(e))) => Err(format!("the download broke: {e}")),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    received += data.len() as u64;
                    if received > declared {
                        Err(format!("the object store sent more than the {declared} bytes its metadata declares: it was changed after the save, or the server is faulty"))
                    } else {
                        Ok(data)
                    }
                }
                Err(_) => continue,
            },
        };
        let failed = frame.is_err();
        if tx.send(frame).await.is_err() || failed {
            break;
        }
    }
}

/// Reads what the download task sends.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::result::Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

fn decode_to_temp<R: Read + Send + 'static>(
    raw: R,
    ids: &Identities,
    what: &str,
    scratch: &Path,
    name: &Path,
    declared: Option<u64>,
) -> Result<(TempFile, Layers, Digests, bool)> {
    let (mut plain, layers, object_hash) = codec::decoder(raw, ids, what)?;
    let base = name
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".to_string());
    let mut temp = TempFile::beside(&scratch.join(base), 0o600)?;
    let temp_path = temp.path().to_path_buf();
    let file = temp
        .file()
        .ok_or_else(|| anyhow!("temporary {} is closed", temp_path.display()))?;
    let mut out = AlignedWriter::with_capacity(1 << 20, file);
    // Hash as etcd's trailer rule says (all but the last 32 bytes), which also gives the whole
    // file's hash.
    let mut check = TrailerCheck::new();
    let mut buf = AlignedBuf::new(1 << 20);
    loop {
        let n = plain.read(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => {
                anyhow::Error::new(BadContent(e.to_string()))
            }
            _ => anyhow!("{e}"),
        })?;
        if n == 0 {
            break;
        }
        check.feed(&buf[..n]);
        if let Some(declared) = declared.filter(|&d| check.total > d) {
            return Err(BadContent(format!(
                "{what} decodes to more than the {declared} bytes its metadata declares: it was changed after the save"
            ))
            .into());
        }
        out.write_all(&buf[..n])
            .with_context(|| format!("writing {}", temp_path.display()))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", temp_path.display()))?;
    drop(out);
    let (object_sha256, object_len) = object_hash.finish();
    let digests = Digests {
        plain_sha256: check.file_sha256(),
        plain_len: check.total,
        object_sha256,
        object_len,
    };
    Ok((temp, layers, digests, check.verify().is_ok()))
}

fn check_against(meta: &Metadata, d: &Digests, what: &str) -> Result<()> {
    if d.object_len != meta.object_size || hex(&d.object_sha256) != meta.object_sha256 {
        return Err(BadContent(format!(
            "{what} does not match its metadata ({} bytes with sha256 {}, expected {} bytes with sha256 {}): it was truncated, changed or corrupted after the save",
            d.object_len,
            &hex(&d.object_sha256)[..16],
            meta.object_size,
            meta.object_sha256.get(..16).unwrap_or(&meta.object_sha256)
        ))
        .into());
    }
    if d.plain_len != meta.db_size || hex(&d.plain_sha256) != meta.db_sha256 {
        return Err(BadContent(format!("{what} decodes to a snapshot that does not match its metadata (sha256 of the plain file differs)")).into());
    }
    Ok(())
}
