//! The integration tests, one binary: a module per command family, and the harness in
//! [`common`]. Nothing is mocked: online commands run against real etcd processes, offline
//! commands against snapshots real etcd writes, with etcdutl as the oracle.

mod common;

mod cert_expiry;
mod cert_renew;
mod cli;
mod conventions;
mod crash;
mod ha_restore;
mod hostile;
mod house;
mod inspect;
mod maintenance;
mod manifest;
mod online;
mod remote;
mod revlog;
mod snapshot_restore;
mod snapshot_save;
mod snapshot_status;
mod versions;
