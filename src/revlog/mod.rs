//! The revision log: the changes after a base snapshot, kept beside it so that a restore can
//! reach any revision (point-in-time recovery). See docs/architecture.md ("The revision log")
//! for the rooms it grows into: the segment format and the offline replay into a base's bbolt
//! file are here; the chain of segments in a store and the follower come next.

pub mod chain;
pub mod point;
pub mod replay;
pub mod segment;
