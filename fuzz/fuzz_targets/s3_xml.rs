//! The object store's XML answers (listings, multipart uploads, errors) on arbitrary bytes:
//! an answer from a hostile or broken server must give an error, never a panic or a runaway.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    etcdops::remote::s3::parse_every_answer(data);
});
