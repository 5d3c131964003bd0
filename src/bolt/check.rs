//! Bookkeeping for bbolt's `Tx.Check()`: every page reachable from the root referenced once,
//! below the high-water mark, not also free; every page either reachable or free. Key order
//! is checked during the walk itself (reader.rs). Mirrors etcd-io/bbolt `tx_check.go`
//! (1.3.7+) and `tx.go` `check` (1.3.6).

use super::freelist;
use super::meta::NO_FREELIST;
use super::page::PageId;
use super::reader::{Db, ReadAt};
use super::BoltError;

/// At most this many problems are kept; the rest are counted.
const MAX_PROBLEMS: usize = 100;

/// Which pages the walk reached, which the freelist holds, and what was wrong.
pub struct Marks {
    hwm: u64,
    reachable: Vec<u64>,
    freed: Option<Vec<u64>>,
    problems: Vec<String>,
    dropped: usize,
}

fn get(bits: &[u64], i: u64) -> bool {
    bits.get((i / 64) as usize)
        .is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn set(bits: &mut [u64], i: u64) {
    if let Some(w) = bits.get_mut((i / 64) as usize) {
        *w |= 1 << (i % 64);
    }
}

impl Marks {
    pub fn new(hwm: PageId) -> Marks {
        let words = (hwm.0 / 64 + 1) as usize;
        let mut marks = Marks {
            hwm: hwm.0,
            reachable: vec![0; words],
            freed: None,
            problems: Vec::new(),
            dropped: 0,
        };
        set(&mut marks.reachable, 0);
        set(&mut marks.reachable, 1);
        marks
    }

    pub fn problem(&mut self, message: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(message);
        } else {
            self.dropped += 1;
        }
    }

    /// Read a persisted freelist; with etcd's unsynced freelist the free pages are simply the
    /// unreachable ones, so there is nothing to load.
    pub fn load_freelist<S: ReadAt>(&mut self, db: &mut Db<S>) -> Result<(), BoltError> {
        let id = db.meta().freelist;
        if id == NO_FREELIST {
            return Ok(());
        }
        let bytes = match db.page(id) {
            Ok(b) => b,
            Err(BoltError::Corrupted { page, reason }) => {
                self.problem(format!("page {page}: freelist: {reason}"));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let ids = match freelist::decode(bytes.bytes()) {
            Ok(ids) => ids,
            Err(reason) => {
                self.problem(format!("page {id}: freelist: {reason}"));
                return Ok(());
            }
        };
        let overflow = super::page::PageHeader::decode(bytes.bytes())
            .map(|h| h.overflow)
            .unwrap_or(0);
        self.reach(id, overflow);
        let mut freed = vec![0u64; self.reachable.len()];
        for free in ids {
            if free.0 >= self.hwm {
                self.problem(format!(
                    "page {free}: freed page out of bounds: high-water mark {}",
                    self.hwm
                ));
            } else if get(&freed, free.0) {
                self.problem(format!("page {free}: already freed"));
            } else {
                set(&mut freed, free.0);
            }
        }
        self.freed = Some(freed);
        Ok(())
    }

    /// Mark a page span reached. False when the walk must not descend (already reached:
    /// a repeated reference or a cycle).
    pub fn reach(&mut self, id: PageId, overflow: u32) -> bool {
        let mut fine = true;
        for p in id.0..=id.0.saturating_add(u64::from(overflow)) {
            if p >= self.hwm {
                self.problem(format!(
                    "page {p}: out of bounds: high-water mark {}",
                    self.hwm
                ));
                return false;
            }
            if get(&self.reachable, p) {
                self.problem(format!("page {p}: multiple references"));
                fine = false;
            }
            if self.freed.as_ref().is_some_and(|f| get(f, p)) {
                self.problem(format!("page {p}: reachable freed"));
            }
            set(&mut self.reachable, p);
        }
        fine
    }

    /// The problems found. With a persisted freelist and `check`, pages neither reachable nor
    /// free are problems too.
    pub fn finish(mut self, check: bool) -> Vec<String> {
        if check {
            if let Some(freed) = self.freed.take() {
                for p in 2..self.hwm {
                    if !get(&self.reachable, p) && !get(&freed, p) {
                        self.problem(format!("page {p}: unreachable unfreed"));
                    }
                }
            }
        }
        if self.dropped > 0 {
            self.problems.push(format!("... and {} more", self.dropped));
        }
        self.problems
    }
}
