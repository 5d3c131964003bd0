//! The revision log's segment format: what `snapshot follow` writes for the revisions after a
//! base snapshot, and what a restore to a revision replays. Versioned and length-delimited;
//! every record checksummed, so that a truncated or flipped segment is refused, never half
//! replayed. A segment is compressed and encrypted as a snapshot is, after this encoding.
//!
//! ```text
//! segment  := MAGIC record*
//! MAGIC    := "EOPSREV" 0x01                                   (8 bytes; the last is the version)
//! record   := len:u32le crc:u32le tag:u8 body                  (len = 1 + |body|; crc = CRC-32C
//!                                                               of tag and body)
//! tag 1    event     main:i64le sub:u32le time_ns:i64le op:u8 key_len:u32le key
//!                    op 0 (put):    create:i64le version:i64le lease:i64le value_len:u32le value
//!                    op 1 (delete): nothing more
//! tag 2    progress  revision:i64le time_ns:i64le              (complete through `revision`)
//! tag 3    lease     id:i64le ttl:i64le time_ns:i64le          (granted, or seen alive, with TTL)
//! tag 4    lease end id:i64le time_ns:i64le                    (revoked or expired)
//! tag 5    compacted revision:i64le time_ns:i64le              (the cluster was compacted up to
//!                                                               `revision`, seen at `time_ns`)
//! ```
//!
//! An event holds what etcd stores in its `key` bucket for one change (etcd-io/etcd
//! server/mvcc/kvstore_txn.go, put and deleteRange): a put's key-value at revision (main, sub)
//! with its create revision, version and lease (its mod revision is `main`), or a delete's
//! tombstone. [`Event::key_bucket_entry`] gives the bucket key and value byte for byte.

use crate::proto::Message;

/// The first bytes of every segment; the last byte is the format version.
pub const MAGIC: [u8; 8] = *b"EOPSREV\x01";
/// The largest record accepted: etcd's own request limit is 1.5 MiB by default and at most a few
/// MiB in practice (`--max-request-bytes`); a key-value is smaller.
pub const MAX_RECORD: usize = 64 << 20;
const HEADER: usize = 8;

const TAG_EVENT: u8 = 1;
const TAG_PROGRESS: u8 = 2;
const TAG_LEASE: u8 = 3;
const TAG_LEASE_END: u8 = 4;
const TAG_COMPACTED: u8 = 5;

/// One change in the key bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub main: i64,
    pub sub: u32,
    /// When the follower received it, Unix nanoseconds.
    pub time_ns: i64,
    pub key: Vec<u8>,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put {
        create_revision: i64,
        version: i64,
        lease: i64,
        value: Vec<u8>,
    },
    Delete,
}

/// One record of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Event(Event),
    /// Every revision up to this one is in the log (a progress notification).
    Progress {
        revision: i64,
        time_ns: i64,
    },
    /// A lease granted (or seen alive) with its TTL in seconds.
    Lease {
        id: i64,
        ttl: i64,
        time_ns: i64,
    },
    /// A lease revoked or expired.
    LeaseEnd {
        id: i64,
        time_ns: i64,
    },
    /// The cluster's compaction revision, when the follower saw it move (watch events do not
    /// carry compactions; a restore marks the same compaction so that `hashkv` agrees).
    Compacted {
        revision: i64,
        time_ns: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("not a revision log segment (no EOPSREV header)")]
    NotASegment,
    #[error("a revision log segment of format version {0}; this etcdops reads version 1")]
    Version(u8),
    #[error("record at byte {offset}: cut short (the segment is truncated)")]
    Truncated { offset: usize },
    #[error("record at byte {offset}: its checksum does not match (the segment was changed)")]
    Checksum { offset: usize },
    #[error("record at byte {offset}: {len} bytes, more than the {MAX_RECORD} a record may have")]
    TooLarge { offset: usize, len: usize },
    #[error("record at byte {offset}: {why}")]
    Malformed { offset: usize, why: &'static str },
}

impl Event {
    /// The `key` bucket entry etcd writes for this change: the key `main‖'_'‖sub` (big-endian;
    /// a tombstone adds `'t'`), and the `mvccpb.KeyValue` value — every field, zero values left
    /// out, for a put; only the key for a delete.
    pub fn key_bucket_entry(&self) -> (Vec<u8>, Vec<u8>) {
        let mut bucket_key = Vec::with_capacity(18);
        bucket_key.extend_from_slice(&(self.main as u64).to_be_bytes());
        bucket_key.push(b'_');
        bucket_key.extend_from_slice(&u64::from(self.sub).to_be_bytes());
        let value = match &self.change {
            Change::Delete => {
                bucket_key.push(b't');
                Message::new().bytes(1, &self.key).finish()
            }
            Change::Put {
                create_revision,
                version,
                lease,
                value,
            } => {
                // Tags, lengths and four varints: 48 bytes at most beside the key and value.
                let mut m =
                    Message::with_capacity(self.key.len() + value.len() + 48).bytes(1, &self.key);
                for (field, v) in [(2, *create_revision), (3, self.main), (4, *version)] {
                    if v != 0 {
                        m = m.uint(field, v as u64);
                    }
                }
                if !value.is_empty() {
                    m = m.bytes(5, value);
                }
                if *lease != 0 {
                    m = m.uint(6, *lease as u64);
                }
                m.finish()
            }
        };
        (bucket_key, value)
    }
}

/// Appends records to a segment in memory.
pub struct Writer {
    bytes: Vec<u8>,
}

impl Default for Writer {
    fn default() -> Writer {
        Writer::new()
    }
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            bytes: MAGIC.to_vec(),
        }
    }

    pub fn push(&mut self, record: &Record) {
        push_record(&mut self.bytes, record);
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.len() == MAGIC.len()
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Append one record's bytes (length, CRC-32C, tag, body) to `out`: what a segment holds after
/// its [`MAGIC`], record after record (a writer that streams a segment uses it directly).
pub fn push_record(out: &mut Vec<u8>, record: &Record) {
    let mut body = Vec::new();
    let tag = match record {
        Record::Event(e) => {
            body.extend_from_slice(&e.main.to_le_bytes());
            body.extend_from_slice(&e.sub.to_le_bytes());
            body.extend_from_slice(&e.time_ns.to_le_bytes());
            body.push(matches!(e.change, Change::Delete) as u8);
            put_bytes(&mut body, &e.key);
            if let Change::Put {
                create_revision,
                version,
                lease,
                value,
            } = &e.change
            {
                for v in [create_revision, version, lease] {
                    body.extend_from_slice(&v.to_le_bytes());
                }
                put_bytes(&mut body, value);
            }
            TAG_EVENT
        }
        Record::Progress { revision, time_ns } => {
            body.extend_from_slice(&revision.to_le_bytes());
            body.extend_from_slice(&time_ns.to_le_bytes());
            TAG_PROGRESS
        }
        Record::Lease { id, ttl, time_ns } => {
            for v in [id, ttl, time_ns] {
                body.extend_from_slice(&v.to_le_bytes());
            }
            TAG_LEASE
        }
        Record::LeaseEnd { id, time_ns } => {
            body.extend_from_slice(&id.to_le_bytes());
            body.extend_from_slice(&time_ns.to_le_bytes());
            TAG_LEASE_END
        }
        Record::Compacted { revision, time_ns } => {
            body.extend_from_slice(&revision.to_le_bytes());
            body.extend_from_slice(&time_ns.to_le_bytes());
            TAG_COMPACTED
        }
    };
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[tag]), &body);
    out.extend_from_slice(&(body.len() as u32 + 1).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(tag);
    out.extend_from_slice(&body);
}

fn put_bytes(body: &mut Vec<u8>, b: &[u8]) {
    body.extend_from_slice(&(b.len() as u32).to_le_bytes());
    body.extend_from_slice(b);
}

/// Every record of a segment, in order; the first damage found is the error.
pub fn decode(bytes: &[u8]) -> Result<Vec<Record>, SegmentError> {
    match bytes.get(..MAGIC.len()) {
        Some(m) if m == MAGIC => {}
        Some(m) if m[..7] == MAGIC[..7] => return Err(SegmentError::Version(m[7])),
        _ => return Err(SegmentError::NotASegment),
    }
    let mut records = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let offset = at;
        let head = bytes
            .get(at..at + HEADER)
            .ok_or(SegmentError::Truncated { offset })?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_RECORD {
            return Err(SegmentError::TooLarge { offset, len });
        }
        if len == 0 {
            return Err(SegmentError::Malformed {
                offset,
                why: "an empty record",
            });
        }
        let end = at + HEADER + len;
        let payload = bytes
            .get(at + HEADER..end)
            .ok_or(SegmentError::Truncated { offset })?;
        if crc32c::crc32c(payload) != crc {
            return Err(SegmentError::Checksum { offset });
        }
        let why = |why| SegmentError::Malformed { offset, why };
        records.push(record(payload[0], &payload[1..]).map_err(why)?);
        at = end;
    }
    Ok(records)
}

/// A cursor over a record's body.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("shorter than its fields");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i64(&mut self) -> Result<i64, &'static str> {
        let b = self.take(8)?;
        Ok(i64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, &'static str> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    fn end(self) -> Result<(), &'static str> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err("longer than its fields")
        }
    }
}

fn record(tag: u8, body: &[u8]) -> Result<Record, &'static str> {
    let mut b = Body(body);
    let r = match tag {
        TAG_EVENT => {
            let (main, sub, time_ns) = (b.i64()?, b.u32()?, b.i64()?);
            let op = b.take(1)?[0];
            let key = b.bytes()?;
            let change = match op {
                0 => Change::Put {
                    create_revision: b.i64()?,
                    version: b.i64()?,
                    lease: b.i64()?,
                    value: b.bytes()?,
                },
                1 => Change::Delete,
                _ => return Err("an event that is neither a put nor a delete"),
            };
            if main < 1 || key.is_empty() {
                return Err("an event without a revision or a key");
            }
            Record::Event(Event {
                main,
                sub,
                time_ns,
                key,
                change,
            })
        }
        TAG_PROGRESS => Record::Progress {
            revision: b.i64()?,
            time_ns: b.i64()?,
        },
        TAG_LEASE => Record::Lease {
            id: b.i64()?,
            ttl: b.i64()?,
            time_ns: b.i64()?,
        },
        TAG_LEASE_END => Record::LeaseEnd {
            id: b.i64()?,
            time_ns: b.i64()?,
        },
        TAG_COMPACTED => Record::Compacted {
            revision: b.i64()?,
            time_ns: b.i64()?,
        },
        _ => return Err("an unknown record type"),
    };
    b.end()?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(main: i64, sub: u32, key: &[u8], create: i64, version: i64, value: &[u8]) -> Event {
        Event {
            main,
            sub,
            time_ns: 1_795_316_501_000_000_000 + main,
            key: key.to_vec(),
            change: Change::Put {
                create_revision: create,
                version,
                lease: 0,
                value: value.to_vec(),
            },
        }
    }

    fn sample() -> Vec<Record> {
        vec![
            Record::Lease {
                id: 0x390d_a201_078a_ff0a,
                ttl: 600,
                time_ns: 5,
            },
            Record::Event(put(2, 0, b"foo", 2, 1, b"bar")),
            Record::Event(Event {
                main: 6,
                sub: 0,
                time_ns: 9,
                key: b"k3".to_vec(),
                change: Change::Delete,
            }),
            Record::Progress {
                revision: 6,
                time_ns: 10,
            },
            Record::LeaseEnd {
                id: 0x390d_a201_078a_ff0a,
                time_ns: 11,
            },
            Record::Compacted {
                revision: 4,
                time_ns: 12,
            },
        ]
    }

    fn encoded(records: &[Record]) -> Vec<u8> {
        let mut w = Writer::new();
        for r in records {
            w.push(r);
        }
        w.finish()
    }

    #[test]
    fn records_round_trip() {
        let records = sample();
        assert_eq!(decode(&encoded(&records)).unwrap(), records);
        assert_eq!(decode(&MAGIC).unwrap(), []);
    }

    /// The bucket entries etcd 3.5.1 wrote for these changes (formats.md's example snapshot).
    #[test]
    fn key_bucket_entries_are_etcds_bytes() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let (k, v) = put(2, 0, b"foo", 2, 1, b"bar").key_bucket_entry();
        assert_eq!(hex(&k), "00000000000000025f0000000000000000");
        assert_eq!(hex(&v), "0a03666f6f1002180220012a03626172");
        let (k, v) = put(3, 0, b"foo", 2, 2, b"bar2").key_bucket_entry();
        assert_eq!(hex(&k), "00000000000000035f0000000000000000");
        assert_eq!(hex(&v), "0a03666f6f1002180320022a0462617232");
        let delete = Event {
            main: 6,
            sub: 0,
            time_ns: 0,
            key: b"k3".to_vec(),
            change: Change::Delete,
        };
        let (k, v) = delete.key_bucket_entry();
        assert_eq!(hex(&k), "00000000000000065f000000000000000074");
        assert_eq!(hex(&v), "0a026b33");
        let leased = Event {
            change: Change::Put {
                create_revision: 7,
                version: 1,
                lease: 0x390d_a201_078a_ff0a,
                value: b"val".to_vec(),
            },
            ..put(7, 0, b"leased", 7, 1, b"val")
        };
        let (_, v) = leased.key_bucket_entry();
        assert_eq!(
            hex(&v),
            "0a066c65617365641007180720012a0376616c308afeabbc90c0e88639"
        );
        let (k, _) = put(8, 1, b"b", 8, 1, b"2").key_bucket_entry();
        assert_eq!(hex(&k), "00000000000000085f0000000000000001");
    }

    #[test]
    fn every_truncation_and_flip_is_refused() {
        let bytes = encoded(&sample());
        for cut in 0..bytes.len() {
            let r = decode(&bytes[..cut]);
            let whole_records = r.as_ref().is_ok_and(|v| v.len() < sample().len());
            // A cut that falls between records reads as a shorter, intact segment; the chain's
            // sidecar (count, sha256) is what refuses that. Every other cut is an error.
            assert!(r.is_err() || whole_records, "cut at {cut}: {r:?}");
        }
        for i in MAGIC.len()..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            assert!(decode(&flipped).is_err(), "flip at {i}");
        }
        assert_eq!(decode(b"EOPSREV\x02"), Err(SegmentError::Version(2)));
        assert_eq!(decode(b"not a segment"), Err(SegmentError::NotASegment));
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&(MAX_RECORD as u32 + 1).to_le_bytes());
        huge.extend_from_slice(&[0; 4]);
        assert!(matches!(decode(&huge), Err(SegmentError::TooLarge { .. })));
    }
}
