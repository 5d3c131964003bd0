//! The one exit-status table (docs/cli.md, "Exit status"). Only `main` exits.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done; healthy; every certificate valid beyond the warning window |
//! | 1 | the check ran and the answer is bad (unhealthy endpoint, expiring certificate, a snapshot that fails verification) |
//! | 2 | could not do the job: usage error, unreadable or corrupt input, TLS/auth/connection failure, refused to overwrite |

/// Exit code when everything is fine.
pub const OK: u8 = 0;
/// Exit code when the check ran and the answer is bad.
pub const BAD: u8 = 1;
/// Exit code when the job could not be done (any `Err` from `run`, and usage errors).
pub const ERROR: u8 = 2;

/// How a command that ran to the end judged what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The answer is bad; the message is printed as one `error:` line on stderr.
    Bad(String),
    /// The same, with the one `hint:` line that fixes it.
    BadHint(String, String),
    /// Part of the job is done and reported, the rest could not be (exit 2): a save whose
    /// `--keep` prune was refused, a prune with a refused delete.
    Incomplete(String, String),
}

/// An error with the one hint that fixes it: `main` prints `error: ...` then `hint: ...`.
#[derive(Debug, thiserror::Error)]
#[error("{error:#}")]
pub struct Hinted {
    pub error: anyhow::Error,
    pub hint: String,
}

impl Outcome {
    /// Attach `hint` to a bad outcome (an `Ok` stays as it is).
    pub fn hinted(self, hint: String) -> Outcome {
        match self {
            Outcome::Bad(m) | Outcome::BadHint(m, _) => Outcome::BadHint(m, hint),
            other => other,
        }
    }
}

impl Outcome {
    pub fn code(&self) -> u8 {
        match self {
            Outcome::Ok => OK,
            Outcome::Bad(_) | Outcome::BadHint(..) => BAD,
            Outcome::Incomplete(..) => ERROR,
        }
    }
}
