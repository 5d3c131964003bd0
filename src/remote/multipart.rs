//! One multipart upload written as a stream, in the manner of object_store's `WriteMultipart`:
//! bytes go in through a [`PartSink`] (a `std::io::Write`, so that the zstd and age encoders
//! can write into it), [`Multipart::send_ready`] uploads the full parts with at most
//! [`PARTS_IN_FLIGHT`] requests at once, [`Multipart::finish`] uploads the rest and completes
//! the object, and an upload that is dropped unfinished is aborted through its [`Pending`].
//!
//! Memory stays bounded whatever the object's size: [`PARTS_IN_FLIGHT`] parts uploading and
//! one filling, about 45 MiB at [`PART_SIZE`].

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use tokio::task::JoinSet;

use super::meta;
use super::s3::{Part, S3};
use crate::timestamp::parse_rfc3339;

/// Every part but the last (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 5 << 20;
pub const PARTS_IN_FLIGHT: usize = 8;
/// S3's limit on parts per upload (52 GB at 5 MiB; etcd's own limit is 8 GB).
const MAX_PARTS: u32 = 10_000;
/// Another node's incomplete upload older than this is abandoned.
const STALE_UPLOAD_AGE: i64 = 24 * 3600;

/// Which object an upload builds.
struct UploadRef {
    s3: Arc<S3>,
    bucket: String,
    key: String,
    upload_id: String,
}

/// The upload in progress, if any, for aborting it when the command fails or is interrupted
/// (its future dropped): a clone lives outside the future that writes.
#[derive(Clone, Default)]
pub struct Pending(Arc<Mutex<Option<UploadRef>>>);

impl Pending {
    fn set(&self, v: Option<UploadRef>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }

    /// Abort the upload if one is pending; say so when that fails too.
    pub async fn abort(&self) {
        let taken = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(UploadRef {
            s3,
            bucket,
            key,
            upload_id,
        }) = taken
        else {
            return;
        };
        let aborted = tokio::time::timeout(
            Duration::from_secs(15),
            s3.abort_multipart(&bucket, &key, &upload_id),
        )
        .await;
        if !matches!(aborted, Ok(Ok(()))) {
            eprintln!("etcdops: the incomplete upload of s3://{bucket}/{key} could not be aborted now; the next save to this prefix aborts it");
        }
    }
}

#[derive(Default)]
struct Parts {
    filling: Vec<u8>,
    ready: Vec<Vec<u8>>,
}

/// The write side of a [`Multipart`]: what is written is cut into parts of its part size.
#[derive(Clone)]
pub struct PartSink(Arc<Mutex<Parts>>, usize);

impl PartSink {
    fn parts(&self) -> std::sync::MutexGuard<'_, Parts> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Write for PartSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let size = self.1;
        let mut g = self.parts();
        if g.filling.capacity() == 0 {
            g.filling.reserve_exact(size);
        }
        let n = (size - g.filling.len()).min(buf.len());
        g.filling.extend_from_slice(&buf[..n]);
        if g.filling.len() == size {
            let full = std::mem::take(&mut g.filling);
            g.ready.push(full);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A multipart upload in progress.
pub struct Multipart {
    s3: Arc<S3>,
    bucket: String,
    key: String,
    upload_id: String,
    sink: PartSink,
    pending: Pending,
    next: u32,
    inflight: JoinSet<Result<Part>>,
    done: Vec<Part>,
}

impl Multipart {
    /// Create the upload of `s3://bucket/key`, registered in `pending` until it completes.
    pub async fn start(
        s3: Arc<S3>,
        bucket: &str,
        key: &str,
        pending: &Pending,
    ) -> Result<Multipart> {
        let upload_id = s3.create_multipart(bucket, key).await?;
        pending.set(Some(UploadRef {
            s3: s3.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.clone(),
        }));
        Ok(Multipart {
            s3,
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id,
            sink: PartSink(Arc::new(Mutex::new(Parts::default())), PART_SIZE),
            pending: pending.clone(),
            next: 0,
            inflight: JoinSet::new(),
            done: Vec::new(),
        })
    }

    /// Where the bytes of the object are written.
    pub fn sink(&self) -> PartSink {
        self.sink.clone()
    }

    /// Upload the parts that are full (waiting while [`PARTS_IN_FLIGHT`] are in flight).
    pub async fn send_ready(&mut self) -> Result<()> {
        let ready = std::mem::take(&mut self.sink.parts().ready);
        for part in ready {
            self.submit(part).await?;
        }
        Ok(())
    }

    /// Upload what is left and complete the object; its ETag.
    pub async fn finish(mut self) -> Result<String> {
        self.send_ready().await?;
        let rest = std::mem::take(&mut self.sink.parts().filling);
        if !rest.is_empty() || self.next == 0 {
            self.submit(rest).await?;
        }
        while !self.inflight.is_empty() {
            self.reap_one().await?;
        }
        self.done.sort_by_key(|p| p.number);
        let etag = self
            .s3
            .complete_multipart(&self.bucket, &self.key, &self.upload_id, &self.done)
            .await?;
        self.pending.set(None);
        Ok(etag)
    }

    async fn submit(&mut self, part: Vec<u8>) -> Result<()> {
        while self.inflight.len() >= PARTS_IN_FLIGHT {
            self.reap_one().await?;
        }
        self.next += 1;
        if self.next > MAX_PARTS {
            bail!("the object needs more than {MAX_PARTS} parts of {PART_SIZE} bytes");
        }
        let (s3, bucket, key, id, n) = (
            self.s3.clone(),
            self.bucket.clone(),
            self.key.clone(),
            self.upload_id.clone(),
            self.next,
        );
        self.inflight.spawn(async move {
            s3.upload_part(&bucket, &key, &id, n, Bytes::from(part))
                .await
        });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<()> {
        if let Some(joined) = self.inflight.join_next().await {
            let part = joined.map_err(|e| anyhow!("a part upload failed: {e}"))??;
            self.done.push(part);
        }
        Ok(())
    }
}

/// Abort multipart uploads under `prefix` that no writer will complete: those of `node` begun
/// at or before `started` (unix seconds; a run of this node that was killed), any node's older
/// than a day. Only names of ours. Returns the keys aborted; failures only warn.
pub async fn abort_stale(
    s3: &S3,
    bucket: &str,
    prefix: &str,
    node: &str,
    started: i64,
) -> Vec<String> {
    let uploads = match s3.list_multipart(bucket, prefix).await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("etcdops: warning: cannot list incomplete uploads under s3://{bucket}/{prefix}: {e:#}");
            return Vec::new();
        }
    };
    let mut aborted = Vec::new();
    for u in uploads {
        let Some(name) = u.key.strip_prefix(prefix).and_then(meta::parse_name) else {
            continue;
        };
        let initiated = parse_rfc3339(&u.initiated).unwrap_or(i64::MAX);
        let stale =
            (name.node == node && initiated <= started) || initiated < started - STALE_UPLOAD_AGE;
        if stale
            && s3
                .abort_multipart(bucket, &u.key, &u.upload_id)
                .await
                .is_ok()
        {
            aborted.push(format!("s3://{bucket}/{}", u.key));
        }
    }
    aborted
}
