//! The keyspace reader of `snapshot ls/get/diff` (MVCC key bucket, KeyValue decoding, --rev).
#![no_main]
use etcdops::bolt::Db;
use etcdops::etcd::keyspace::{read, Query};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut db) = Db::open(data.to_vec()) else {
        return;
    };
    let _ = read(&mut db, &Query::default());
    let _ = read(
        &mut db,
        &Query {
            at: Some(2),
            prefix: b"/registry/".to_vec(),
            exact: false,
            values: true,
        },
    );
});
