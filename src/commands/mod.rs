//! One file per command. Each takes typed settings and returns a typed report plus an
//! [`Outcome`](crate::exit::Outcome); rendering is `output`'s job. No command imports another:
//! what two commands share lives in the library module of its subject.

pub mod alarm;
pub mod cert_expiry;
pub mod cert_renew;
pub mod check_consistency;
pub mod compact;
pub mod defrag;
pub mod health;
pub mod inspect;
pub mod manifest_read;
pub mod members;
pub mod put_back;
pub mod recover_space;
pub mod schedule;
pub mod snapshot_ls;
pub mod snapshot_prune;
pub mod snapshot_restore;
pub mod snapshot_save;
pub mod snapshot_status;
pub mod snapshot_verify;
pub mod status;
