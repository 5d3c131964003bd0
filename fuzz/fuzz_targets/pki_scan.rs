//! The certificate and kubeconfig scanner of cert-expiry and cert-renew on arbitrary file
//! contents (PEM, DER, kubeconfig YAML with embedded base64), then the wiring checks across
//! what it found, and cert-renew's certificate and key readers on the same text.
#![no_main]
use etcdops::pki::renew::{first_cert, key_pair};
use etcdops::pki::Scan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut scan = Scan::default();
    scan.file(std::path::Path::new("fuzzed.crt"), data);
    scan.check_wiring();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = first_cert(text);
        let _ = key_pair(text, "fuzzed.key");
    }
});
