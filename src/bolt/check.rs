//! bbolt's `Tx.Check()`: every page reachable from the root referenced once, below the
//! high-water mark, not also free; every page either reachable or free; keys in order within
//! each bucket. The reader walks the tree and reports what it meets here; this module owns the
//! rules and the list of problems, and reads nothing itself. Mirrors etcd-io/bbolt
//! `tx_check.go` (1.3.7+) and `tx.go` `check` (1.3.6).

use std::fmt;

use super::meta::MetaError;
use super::page::{PageError, PageId};

/// At most this many problems are kept; the rest are counted.
const MAX_PROBLEMS: usize = 100;

/// One integrity problem: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("page {page}: out of bounds: high-water mark {hwm}")]
    OutOfBounds { page: u64, hwm: u64 },
    #[error("page {0}: multiple references")]
    MultipleReferences(u64),
    #[error("page {0}: reachable freed")]
    ReachableFreed(u64),
    #[error("page {page}: freed page out of bounds: high-water mark {hwm}")]
    FreedOutOfBounds { page: PageId, hwm: u64 },
    #[error("page {0}: already freed")]
    AlreadyFreed(PageId),
    #[error("page {0}: unreachable unfreed")]
    UnreachableUnfreed(u64),
    #[error("page {page}: freelist: {reason}")]
    Freelist { page: PageId, reason: PageError },
    #[error("page {page}: {reason}")]
    Page { page: PageId, reason: PageError },
    #[error("page {page}: header says page {says}")]
    WrongHeader { page: PageId, says: PageId },
    #[error("page {page}: branch key[{index}]={key} is not above key[{}]={previous}", .index - 1)]
    BranchOrder {
        page: PageId,
        index: usize,
        key: String,
        previous: String,
    },
    #[error("page {page}: key[{index}]={key} {rule}")]
    KeyOrder {
        page: PageId,
        index: usize,
        key: String,
        rule: OrderRule,
    },
    #[error("buckets nested deeper than {0}")]
    BucketsTooDeep(usize),
    #[error("bucket {bucket}: inline page is not a leaf")]
    InlineNotLeaf { bucket: String },
    #[error("bucket {bucket}: inline page: {reason}")]
    InlinePage { bucket: String, reason: PageError },
    #[error("meta page {page}: {reason}")]
    Meta { page: u8, reason: MetaError },
}

/// Which ordering rule a key breaks, with the neighbouring key (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRule {
    AbovePrevious(String),
    AtLeastParentBranch(String),
    BelowNextBranch(String),
}

impl fmt::Display for OrderRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderRule::AbovePrevious(k) => write!(f, "needs to be > the previous key {k}"),
            OrderRule::AtLeastParentBranch(k) => {
                write!(f, "needs to be >= its parent's branch key {k}")
            }
            OrderRule::BelowNextBranch(k) => write!(f, "needs to be < the next branch key {k}"),
        }
    }
}

/// The problems of one check: the first 100 and how many more there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    pub list: Vec<Problem>,
    pub more: usize,
}

impl Problems {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len() + self.more
    }
}

impl fmt::Display for Problems {
    /// The first three, then a count of the rest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 3;
        let shown: Vec<String> = self
            .list
            .iter()
            .take(SHOWN)
            .map(|p| p.to_string())
            .collect();
        f.write_str(&shown.join("; "))?;
        let rest = self.len().saturating_sub(SHOWN);
        if rest > 0 {
            write!(f, " (and {rest} more)")?;
        }
        Ok(())
    }
}

/// The integrity checker: which pages the walk reached, which the freelist holds, and what
/// was wrong.
pub struct Integrity {
    hwm: u64,
    reachable: Vec<u64>,
    freed: Option<Vec<u64>>,
    problems: Problems,
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

impl Integrity {
    pub fn new(hwm: PageId) -> Integrity {
        let words = (hwm.0 / 64 + 1) as usize;
        let mut check = Integrity {
            hwm: hwm.0,
            reachable: vec![0; words],
            freed: None,
            problems: Problems::default(),
        };
        set(&mut check.reachable, 0);
        set(&mut check.reachable, 1);
        check
    }

    pub fn problem(&mut self, p: Problem) {
        if self.problems.list.len() < MAX_PROBLEMS {
            self.problems.list.push(p);
        } else {
            self.problems.more += 1;
        }
    }

    /// The persisted freelist at `page` (spanning `overflow` more pages), as the reader
    /// decoded it. With etcd's unsynced freelist there is none: the free pages are simply the
    /// unreachable ones.
    pub fn freelist(&mut self, page: PageId, overflow: u32, ids: Result<Vec<PageId>, PageError>) {
        let ids = match ids {
            Ok(ids) => ids,
            Err(reason) => return self.problem(Problem::Freelist { page, reason }),
        };
        self.reach(page, overflow);
        let mut freed = vec![0u64; self.reachable.len()];
        for free in ids {
            if free.0 >= self.hwm {
                self.problem(Problem::FreedOutOfBounds {
                    page: free,
                    hwm: self.hwm,
                });
            } else if get(&freed, free.0) {
                self.problem(Problem::AlreadyFreed(free));
            } else {
                set(&mut freed, free.0);
            }
        }
        self.freed = Some(freed);
    }

    /// Mark a page span reached. False when the walk must not descend (already reached:
    /// a repeated reference or a cycle).
    pub fn reach(&mut self, id: PageId, overflow: u32) -> bool {
        let mut fine = true;
        for p in id.0..=id.0.saturating_add(u64::from(overflow)) {
            if p >= self.hwm {
                self.problem(Problem::OutOfBounds {
                    page: p,
                    hwm: self.hwm,
                });
                return false;
            }
            if get(&self.reachable, p) {
                self.problem(Problem::MultipleReferences(p));
                fine = false;
            }
            if self.freed.as_ref().is_some_and(|f| get(f, p)) {
                self.problem(Problem::ReachableFreed(p));
            }
            set(&mut self.reachable, p);
        }
        fine
    }

    /// The problems found. With a persisted freelist and `check`, pages neither reachable nor
    /// free are problems too.
    pub fn finish(mut self, check: bool) -> Problems {
        if check {
            if let Some(freed) = self.freed.take() {
                for p in 2..self.hwm {
                    if !get(&self.reachable, p) && !get(&freed, p) {
                        self.problem(Problem::UnreachableUnfreed(p));
                    }
                }
            }
        }
        self.problems
    }
}

/// Key order within one bucket's walk: the last key seen and the branch key the current
/// subtree must not go below.
#[derive(Default)]
pub struct KeyOrder {
    last: Option<Vec<u8>>,
    /// Set by the parent branch before each child subtree.
    pub lower: Option<Vec<u8>>,
}

impl KeyOrder {
    /// Take the next key of the bucket; `upper` is the next branch key above this subtree.
    pub fn admit(&mut self, key: &[u8], upper: Option<&[u8]>) -> Option<OrderRule> {
        let rule = if let Some(last) = self.last.as_deref().filter(|l| *l >= key) {
            Some(OrderRule::AbovePrevious(short_hex(last)))
        } else if let Some(lower) = self.lower.as_deref().filter(|l| key < *l) {
            Some(OrderRule::AtLeastParentBranch(short_hex(lower)))
        } else {
            upper
                .filter(|u| key >= *u)
                .map(|u| OrderRule::BelowNextBranch(short_hex(u)))
        };
        match &mut self.last {
            Some(last) => {
                last.clear();
                last.extend_from_slice(key);
            }
            None => self.last = Some(key.to_vec()),
        }
        rule
    }
}

/// A key in problem reports: hex, the first 32 bytes.
pub fn short_hex(b: &[u8]) -> String {
    let mut s = crate::units::hex(&b[..b.len().min(32)]);
    if b.len() > 32 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_show_three_and_count_the_rest() {
        let mut c = Integrity::new(PageId(10));
        for _ in 0..2 {
            c.reach(PageId(4), 0);
        }
        c.reach(PageId(9), 3);
        let p = c.finish(true);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p.to_string(),
            "page 4: multiple references; page 10: out of bounds: high-water mark 10"
        );
        let many = Problems {
            list: vec![Problem::MultipleReferences(1); 3],
            more: 5,
        };
        assert!(many.to_string().ends_with("(and 5 more)"), "{many}");
    }

    #[test]
    fn key_order_rules() {
        let mut k = KeyOrder::default();
        assert_eq!(k.admit(b"b", None), None);
        assert_eq!(
            k.admit(b"a", None),
            Some(OrderRule::AbovePrevious(short_hex(b"b")))
        );
        assert_eq!(
            k.admit(b"z", Some(b"m")),
            Some(OrderRule::BelowNextBranch(short_hex(b"m")))
        );
    }
}
