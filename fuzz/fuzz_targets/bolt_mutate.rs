//! Structure-aware mutations of a snapshot real etcd wrote (examples/k8s-small.db): the input
//! is a list of edits to named fields — page header flags, counts and overflow, branch and
//! leaf element offsets and sizes, meta fields (with the checksum fixed so that the meta is
//! believed), bucket headers, freelist entries — with values chosen near the edges. The status
//! walk, integrity check and keyspace reader must answer every result with an error or a
//! status, never a panic or a runaway.
#![no_main]
use etcdops::bolt::Db;
use etcdops::etcd::keyspace::{read, Query};
use etcdops::etcd::status::{status, Checks};
use libfuzzer_sys::fuzz_target;

static SEED: &[u8] = include_bytes!("../../examples/k8s-small.db");
const PAGE: usize = 4096;
const HEADER: usize = 16;

fn put(buf: &mut [u8], at: usize, width: usize, value: u64) {
    if let Some(dst) = buf.get_mut(at..at + width) {
        dst.copy_from_slice(&value.to_le_bytes()[..width]);
    }
}

/// bbolt's meta checksum: FNV-1a 64 over the meta up to the checksum field.
fn fix_meta_checksum(buf: &mut [u8], page: usize) {
    let start = page * PAGE + HEADER;
    let Some(body) = buf.get(start..start + 56) else {
        return;
    };
    let mut h: u64 = 0xcbf29ce484222325;
    for b in body {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    put(buf, start + 56, 8, h);
}

fuzz_target!(|edits: &[u8]| {
    let mut db = SEED.to_vec();
    let pages = db.len() / PAGE;
    for e in edits.chunks_exact(6).take(16) {
        let page = usize::from(u16::from_le_bytes([e[1], e[2]])) % pages;
        let base = page * PAGE;
        let small = u64::from(e[5]);
        let value = match e[4] % 8 {
            0 => 0,
            1 => 1,
            2 => pages as u64 - 1,
            3 => pages as u64,
            4 => u64::from(u16::MAX),
            5 => u64::from(u32::MAX),
            6 => u64::MAX,
            _ => small,
        };
        let elem = base + HEADER + usize::from(e[3]) * 16;
        match e[0] % 9 {
            0 => put(&mut db, base + 8, 2, value),  // page flags
            1 => put(&mut db, base + 10, 2, value), // element count
            2 => put(&mut db, base + 12, 4, value), // overflow pages
            3 => put(&mut db, elem, 4, value),      // branch pos / leaf flags
            4 => put(&mut db, elem + 4, 4, value),  // branch ksize / leaf pos
            5 => put(&mut db, elem + 8, 4, value),  // branch pgid (low) / leaf ksize
            6 => put(&mut db, elem + 12, 4, value), // leaf vsize
            7 => {
                // A meta field: root bucket, sequence, freelist, high-water pgid, txid.
                let meta = usize::from(e[1] & 1);
                let field = [16usize, 24, 32, 40, 48][usize::from(e[3]) % 5];
                put(&mut db, meta * PAGE + HEADER + field, 8, value);
                fix_meta_checksum(&mut db, meta);
            }
            _ => {
                // Any byte of the page (bucket headers inside leaf values, freelist ids).
                let at = base + usize::from(u16::from_le_bytes([e[3], e[5]])) % PAGE;
                put(&mut db, at, 1, value);
            }
        }
    }
    let _ = status(&db, Checks { integrity: true, hash: true, user_keys: true });
    if let Ok(mut opened) = Db::open(db) {
        let _ = read(&mut opened, &Query::default());
    }
});
