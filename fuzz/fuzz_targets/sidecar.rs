//! The remote snapshot metadata (sidecar) parser and generated-name parser.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = etcdops::remote::meta::Metadata::parse(data, "etcd-m1-20261128T000000Z.db");
    if let Ok(name) = std::str::from_utf8(data) {
        let _ = etcdops::remote::meta::parse_name(name);
    }
});
