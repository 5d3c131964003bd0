//! `--initial-cluster` and peer URL parsing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = etcdops::etcd::stored_members::parse_initial_cluster(text);
    }
});
