//! The decrypt/decompress stream on hostile objects: layer detection, age headers without an
//! identity, zstd frames (bounded window), read to the end with a cap on what comes out.
#![no_main]
use std::io::Read;

use etcdops::remote::codec::{decoder, Identities};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ids = Identities::none();
    if let Ok((plain, _, _)) = decoder(std::io::Cursor::new(data.to_vec()), &ids, "fuzz") {
        let mut sink = Vec::new();
        let _ = plain.take(64 << 20).read_to_end(&mut sink);
    }
});
