//! The Kubernetes value decoder of `snapshot get --decode`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = etcdops::etcd::k8s::decode(data);
    let summary = d.summary();
    assert!(!summary.contains('\x1b'), "an escape reached the summary");
});
