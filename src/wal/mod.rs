//! The write-ahead log segment `snapshot restore` creates: byte-identical to etcdutl 3.5.1's.
//! Mirrors etcd-io/etcd server/wal/{wal,encoder}.go and server/wal/walpb/record.proto.
//!
//! ```text
//! frame   = length u64 LE ‖ walpb.Record ‖ zero padding to 8 bytes
//!           length = len(record) | ((0x80 | pad) << 56) when pad > 0
//! Record  = {1 type int64, 2 crc uint32, 3 data bytes (when present)}
//!           types: 1 metadata, 2 entry, 3 state, 4 crc, 5 snapshot
//! crc     = CRC-32C of every record's data since the segment's type-4 record (seed 0)
//! segment = 0000000000000000-0000000000000000.wal, preallocated to 64,000,000 bytes
//! ```
//! Records of a restore: crc, metadata{NodeID, ClusterID}, snapshot{0, 0}, one ConfChange
//! entry per member (ascending ID), HardState{term 1, vote = smallest ID, commit N},
//! snapshot{N, 1, ConfState}.

use crate::etcd::stored_members::{member_json, Membership};
use crate::proto::{conf_state, Message};

/// Size every WAL segment is preallocated to (decimal, not MiB).
pub const SEGMENT_SIZE: u64 = 64_000_000;
/// Name of the first (and, after a restore, only) segment.
pub const FIRST_SEGMENT: &str = "0000000000000000-0000000000000000.wal";

const METADATA: u64 = 1;
const ENTRY: u64 = 2;
const STATE: u64 = 3;
const CRC: u64 = 4;
const SNAPSHOT: u64 = 5;
/// raftpb.EntryType EntryConfChange.
const ENTRY_CONF_CHANGE: u64 = 1;

struct Encoder {
    out: Vec<u8>,
    crc: u32,
}

impl Encoder {
    fn record(&mut self, typ: u64, data: Option<&[u8]>) {
        if let Some(d) = data {
            self.crc = crc32c::crc32c_append(self.crc, d);
        }
        let mut rec = Message::new().uint(1, typ).uint(2, u64::from(self.crc));
        if let Some(d) = data {
            rec = rec.bytes(3, d);
        }
        let rec = rec.finish();
        let pad = (8 - rec.len() % 8) % 8;
        let mut len = rec.len() as u64;
        if pad > 0 {
            len |= (0x80 | pad as u64) << 56;
        }
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(&rec);
        self.out.resize(self.out.len() + pad, 0);
    }
}

/// The records of the WAL a restore writes (without the zero tail of the segment).
/// `with_conf_state` is false only to reproduce etcd 3.4's last record.
pub fn restore_records(m: &Membership, with_conf_state: bool) -> Vec<u8> {
    let voters: Vec<u64> = m.members.iter().map(|x| x.id).collect();
    records_with(m, with_conf_state.then(|| conf_state(&voters)).as_ref())
}

/// The records of a restore of `m` whose last snapshot carries `conf` (the preflight's tests
/// write one that disagrees with the ConfChange entries).
pub(crate) fn records_with(m: &Membership, conf: Option<&Message>) -> Vec<u8> {
    let mut e = Encoder {
        out: Vec::with_capacity(1024),
        crc: 0,
    };
    e.record(CRC, None);
    let metadata = Message::new()
        .uint(1, m.local)
        .uint(2, m.cluster_id)
        .finish();
    e.record(METADATA, Some(&metadata));
    e.record(
        SNAPSHOT,
        Some(&Message::new().uint(1, 0).uint(2, 0).finish()),
    );
    for (i, member) in m.members.iter().enumerate() {
        let change = Message::new()
            .uint(1, 0)
            .uint(2, 0)
            .uint(3, member.id)
            .bytes(4, member_json(member).as_bytes());
        let entry = Message::new()
            .uint(1, ENTRY_CONF_CHANGE)
            .uint(2, 1)
            .uint(3, i as u64 + 1)
            .message(4, &change)
            .finish();
        e.record(ENTRY, Some(&entry));
    }
    let n = m.members.len() as u64;
    let vote = m.members.first().map(|x| x.id).unwrap_or_default();
    let hard_state = Message::new().uint(1, 1).uint(2, vote).uint(3, n).finish();
    e.record(STATE, Some(&hard_state));
    let mut snap = Message::new().uint(1, n).uint(2, 1);
    if let Some(c) = conf {
        snap = snap.message(3, c);
    }
    e.record(SNAPSHOT, Some(&snap.finish()));
    e.out
}

/// What a WAL segment says, read back (the restore's preflight; any etcd's segment).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WalFacts {
    pub node_id: u64,
    pub cluster_id: u64,
    /// (NodeID, ConfChangeType) of every ConfChange entry, in order (0 AddNode, 3
    /// AddLearnerNode).
    pub conf_changes: Vec<(u64, u64)>,
    /// The last snapshot record: index, term, voters, learners.
    pub snapshot: Option<(u64, u64, Vec<u64>, Vec<u64>)>,
    /// The last HardState: term, vote, commit.
    pub hard_state: Option<(u64, u64, u64)>,
}

/// Read the records of a segment up to its zero tail, checking each frame and the CRC chain.
pub fn read_records(seg: &[u8]) -> Result<WalFacts, String> {
    use crate::proto::{bytes_field, fields, read_conf_state, uint_field};
    let mut facts = WalFacts::default();
    let mut crc = 0u32;
    let mut at = 0usize;
    while at + 8 <= seg.len() {
        let word = u64::from_le_bytes(seg[at..at + 8].try_into().unwrap_or_default());
        if word == 0 {
            break;
        }
        let len = (word & 0x00ff_ffff_ffff_ffff) as usize;
        let pad = if word >> 63 == 1 {
            ((word >> 56) & 0x7) as usize
        } else {
            0
        };
        let start = at + 8;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= seg.len())
            .ok_or(format!("the record at byte {at} runs past the segment"))?;
        let rec = fields(&seg[start..end])
            .ok_or(format!("the record at byte {at} is not a walpb.Record"))?;
        let (typ, stored) = (uint_field(&rec, 1), uint_field(&rec, 2) as u32);
        let data = bytes_field(&rec, 3);
        if typ == CRC {
            crc = stored;
        } else {
            crc = crc32c::crc32c_append(crc, data.unwrap_or_default());
            if crc != stored {
                return Err(format!("the record at byte {at} fails the CRC chain"));
            }
        }
        let f = fields(data.unwrap_or_default()).ok_or(format!(
            "the data of the record at byte {at} is not a message"
        ))?;
        match typ {
            METADATA => (facts.node_id, facts.cluster_id) = (uint_field(&f, 1), uint_field(&f, 2)),
            STATE => {
                facts.hard_state = Some((uint_field(&f, 1), uint_field(&f, 2), uint_field(&f, 3)))
            }
            SNAPSHOT => {
                let (voters, learners) = bytes_field(&f, 3)
                    .map_or(Some((Vec::new(), Vec::new())), read_conf_state)
                    .ok_or("a snapshot record's ConfState is not a message")?;
                facts.snapshot = Some((uint_field(&f, 1), uint_field(&f, 2), voters, learners));
            }
            ENTRY if uint_field(&f, 1) == ENTRY_CONF_CHANGE => {
                let change = fields(bytes_field(&f, 4).unwrap_or_default())
                    .ok_or("a ConfChange entry holds no ConfChange")?;
                facts
                    .conf_changes
                    .push((uint_field(&change, 3), uint_field(&change, 2)));
            }
            _ => {}
        }
        at = end + pad;
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::stored_members::membership_from_flags as plan;
    use crate::units::hex;
    use sha2::{Digest, Sha256};

    fn segment(records: &[u8]) -> Vec<u8> {
        let mut seg = records.to_vec();
        seg.resize(SEGMENT_SIZE as usize, 0);
        seg
    }

    // sha256 of the segments etcdutl 3.5.1 / etcdctl 3.4.23 wrote for the same flags;
    // tests/it/snapshot_restore.rs also compares with a live etcdutl.
    #[test]
    fn records_read_back() {
        let ic = "m1=http://127.0.0.1:12380,m2=http://127.0.0.2:12380";
        let m = plan("m1", ic, "tok", "http://127.0.0.1:12380").unwrap();
        let f = read_records(&segment(&restore_records(&m, true))).unwrap();
        let ids: Vec<u64> = m.members.iter().map(|x| x.id).collect();
        assert_eq!(f.node_id, m.local);
        assert_eq!(f.cluster_id, m.cluster_id);
        assert_eq!(
            f.conf_changes,
            ids.iter().map(|&i| (i, 0)).collect::<Vec<_>>()
        );
        assert_eq!(f.snapshot, Some((2, 1, ids.clone(), Vec::new())));
        assert_eq!(f.hard_state, Some((1, ids[0], 2)));
        let mut bad = restore_records(&m, true);
        let last = bad.len() - 12;
        bad[last] ^= 1;
        assert!(read_records(&bad).is_err());
    }

    #[test]
    fn default_restore_wal_is_etcdutls() {
        let m = plan(
            "default",
            "default=http://localhost:2380",
            "etcd-cluster",
            "http://localhost:2380",
        )
        .unwrap();
        let recs = restore_records(&m, true);
        assert_eq!(recs.len(), 288);
        assert_eq!(
            hex(&Sha256::digest(segment(&recs))),
            "0b4a5ce53d6a11fb4489ae93ea6c2c717bd5ba3889821561512ef36598e10221"
        );
    }

    #[test]
    fn three_member_wal_is_etcdutls() {
        let ic = "m1=http://127.0.0.1:12380,m2=http://127.0.0.2:12380,m3=http://127.0.0.3:12380";
        let m = plan("m1", ic, "tok-restore", "http://127.0.0.1:12380").unwrap();
        let recs = restore_records(&m, true);
        assert_eq!(recs.len(), 536);
        assert_eq!(
            hex(&Sha256::digest(segment(&recs))),
            "e370e3445cbe6d223516302c18fb5da461ef32b106adf45a4406db251881c3c3"
        );
        let m2 = plan("m2", ic, "tok-restore", "http://127.0.0.2:12380").unwrap();
        assert_eq!(
            hex(&Sha256::digest(segment(&restore_records(&m2, true)))),
            "a95f569634fe583bcab342913f20056307e4f9e8f22eebb6446271e5c7c90527"
        );
        assert_eq!(
            hex(&Sha256::digest(segment(&restore_records(&m, false)))),
            "6cf26f2d6a5282e5da559d2f3270754d07532b4351e029dc2acbaa8ed2b6d366"
        );
    }
}
