//! The bbolt reader and etcd's status walk on arbitrary bytes: open, walk, integrity check,
//! trailer rule. Any input must give a status or an error, never a panic or a runaway.
#![no_main]
use etcdops::etcd::status::{status, Checks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = status(
        &data.to_vec(),
        Checks {
            integrity: true,
            hash: true,
            user_keys: true,
        },
    );
});
