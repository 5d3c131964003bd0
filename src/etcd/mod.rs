//! etcd's backend schema inside a bbolt file: bucket names, revision keys, meta keys, members.

pub mod members;
pub mod membership;
pub mod schema;
