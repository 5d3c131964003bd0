//! The process-wide signal handling of commands that write: on SIGINT or SIGTERM every live
//! temporary is removed before the exit, a [`Critical`] sequence of renames finishes first, and
//! SIGXFSZ becomes an EFBIG error instead of a silent death.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Temporaries ([`TempFile`], [`TempDir`]) alive in this process, for the signal handler.
static LIVE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
/// Set by a command that handles SIGINT/SIGTERM itself from here on.
static HANDLED_ELSEWHERE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Set once the signal handler has taken the list of temporaries: none is created after.
pub(super) static INTERRUPTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);
/// Set as soon as the signal handler has a signal to act on: it will exit the process.
static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// What an interrupted command leaves as it was, in its own words (the default: what was
/// complete stays).
static STAYS: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Say what an interruption from here on leaves as it was (e.g. restore: the snapshot and the
/// data dir); `None` returns to the default.
pub fn interruption_leaves(what: Option<String>) {
    *STAYS.lock().unwrap_or_else(|p| p.into_inner()) = what;
}

/// Held across a sequence of renames that must finish together (see [`Critical`]); the signal
/// handler waits for it.
static CRITICAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// While this lives, SIGINT and SIGTERM wait: a restore's WAL dir, data dir and manifest, or a
/// renewal's keys and certificates, are renamed (or rolled back) as one step, never half.
pub struct Critical(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl Critical {
    pub fn enter() -> Critical {
        Critical(CRITICAL.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

pub(super) fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Remove a temporary file or directory; retried for a moment, since the command's thread
/// may still be adding a file inside a directory until it notices it is gone. Whether it is.
fn remove_now(path: &Path) -> bool {
    for _ in 0..50 {
        let _ = fs::remove_dir_all(path).or_else(|_| fs::remove_file(path));
        if fs::symlink_metadata(path).is_err() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    false
}

pub(super) fn untrack(path: &Path) {
    live().retain(|p| p != path);
}

/// On SIGINT or SIGTERM, remove every live temporary and exit 2 with one line, instead of
/// dying with them on disk (a decoded snapshot holds every Secret in plain text). For the
/// commands that run to the end on one thread; a command with its own handling (a save that
/// aborts its upload, `verify --boot` that stops its etcd) holds a [`SignalsHandledHere`].
pub fn remove_temporaries_on_signals() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the signal handler")?;
    // Installed before this returns: no window in which a signal still kills outright.
    let (mut int, mut term) = {
        let _enter = rt.enter();
        (
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        )
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                loop {
                    let name = tokio::select! {
                        _ = int.recv() => "SIGINT",
                        _ = term.recv() => "SIGTERM",
                    };
                    if HANDLED_ELSEWHERE.load(std::sync::atomic::Ordering::SeqCst) {
                        continue;
                    }
                    SIGNALLED.store(true, std::sync::atomic::Ordering::SeqCst);
                    // Let a sequence of renames in progress finish first.
                    let _critical = Critical::enter();
                    let unfinished: Vec<PathBuf> = {
                        let mut live = live();
                        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
                        live.drain(..).collect()
                    };
                    let left: Vec<String> = unfinished
                        .iter()
                        .filter(|p| !remove_now(p))
                        .map(|p| crate::text::escape(&p.display().to_string()))
                        .collect();
                    let removed = unfinished.len() - left.len();
                    let stays = STAYS
                        .lock()
                        .ok()
                        .and_then(|s| s.clone())
                        .unwrap_or_else(|| "what was already complete stays".to_string());
                    let line = if left.is_empty() {
                        format!("error: interrupted by {name}: {removed} unfinished file(s) removed; {stays}")
                    } else {
                        format!("error: interrupted by {name}: {removed} unfinished file(s) removed, {} could not be: remove them by hand", left.join(", "))
                    };
                    // Never a panic here (stderr may be a closed pipe): the exit must happen.
                    let _ = writeln!(io::stderr().lock(), "{line}");
                    std::process::exit(crate::exit::ERROR.into());
                }
            })
        })
        .context("starting the signal handler")?;
    Ok(())
}

/// Called before the result is reported: once the signal handler has a signal to act on, its
/// line and exit are the ones to give (an error here is most likely its removal seen from the
/// command: a directory gone under its writer). Then this does not return: the handler exits
/// the process, or, should it not within 10 s, this does.
pub fn wait_if_signalled() {
    if !SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    std::thread::sleep(std::time::Duration::from_secs(10));
    let _ = writeln!(io::stderr().lock(), "error: interrupted");
    std::process::exit(crate::exit::ERROR.into());
}

/// While this lives, SIGINT and SIGTERM are the caller's to handle (see
/// [`remove_temporaries_on_signals`]); create it after the caller's own handlers.
pub struct SignalsHandledHere(());

impl SignalsHandledHere {
    pub fn start() -> SignalsHandledHere {
        HANDLED_ELSEWHERE.store(true, std::sync::atomic::Ordering::SeqCst);
        SignalsHandledHere(())
    }
}

impl Drop for SignalsHandledHere {
    fn drop(&mut self) {
        HANDLED_ELSEWHERE.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// SIGXFSZ on Linux.
pub const SIGXFSZ: i32 = 25;

/// Make a write past `ulimit -f` fail with EFBIG instead of killing the process (SIGXFSZ's
/// default action), so that the command can remove its temporaries and say why. The handler
/// stays installed for the life of the process.
pub fn catch_file_size_signal() -> Result<()> {
    let install = || {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ))
            .map(drop)
            .context("installing the SIGXFSZ handler")
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        return install();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the signal handler")?;
    let _enter = rt.enter();
    install()
}
