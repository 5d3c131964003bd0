//! The static-pod manifest / etcd config file / systemd unit reader.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = etcdops::manifest::Manifest::from_text(std::path::Path::new("fuzz.yaml"), text);
    }
});
