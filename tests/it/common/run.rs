//! Running the built `etcdops` binary: to completion, in the background, or as a shell runs a
//! command line it printed; always with a scrubbed environment.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The outcome of one `etcdops` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    fn from_output(out: Output, start: Instant) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: start.elapsed(),
        }
    }

    /// How many `error: ` lines stderr has (one, for a clean failure).
    pub fn error_lines(&self) -> usize {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .count()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// `head` followed by `tail` as one argument list (e.g. a command and the TLS flags).
pub fn args<'a>(head: &[&'a str], tail: &'a [String]) -> Vec<&'a str> {
    let mut v = head.to_vec();
    v.extend(tail.iter().map(String::as_str));
    v
}

/// Run the built binary with a scrubbed environment plus `env`.
pub fn etcdops(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_etcdops"));
    cmd.env_clear().args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let out = cmd.output().expect("running etcdops");
    Run::from_output(out, start)
}

/// Start the built binary in the background (scrubbed environment, output captured).
pub fn etcdops_spawn(args: &[&str]) -> Child {
    etcdops_spawn_env(args, &[])
}

/// [`etcdops_spawn`] with `env` added to the scrubbed environment.
pub fn etcdops_spawn_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_etcdops"));
    cmd.env_clear()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("starting etcdops")
}

/// Wait for a spawned etcdops, at most `limit`; returns its result (killing it on timeout).
pub fn wait_run(mut child: Child, start: Instant, limit: Duration) -> Run {
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collecting etcdops output");
    Run::from_output(out, start)
}

/// Send a signal to a process we started, by PID.
pub fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("/bin/kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Send `signal` to a fresh run `rounds` times, each at a pseudo-random point of 0–120 % of
/// `span` (an uninterrupted run), so that the last steps are hit too; `check` sees each result.
/// A run that ends before its signal shows the window was too long (a cold first run): it
/// shrinks to 120 % of that delay. Returns how many runs the signal cut short (exit code not 0).
pub fn signal_at_random_points(
    seed: u64,
    span: Duration,
    rounds: u64,
    signal: &str,
    mut spawn: impl FnMut(u64) -> Child,
    mut check: impl FnMut(u64, &Run),
) -> usize {
    let mut x = seed;
    let mut limit = span.as_micros() as u64 * 6 / 5 + 1;
    let mut cut = 0;
    for round in 0..rounds {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((x >> 33) % limit);
        let child = spawn(round);
        let start = Instant::now();
        std::thread::sleep(delay);
        // The run may have ended already: its zombie still takes the signal, to no effect.
        send_signal(child.id(), signal);
        let r = wait_run(child, start, Duration::from_secs(60));
        if r.code == 0 {
            limit = limit.min(delay.as_micros() as u64 * 6 / 5 + 1);
        } else {
            cut += 1;
        }
        check(round, &r);
    }
    eprintln!("signals: {cut} of {rounds} runs cut short by SIG{signal}");
    cut
}

/// Run a command line etcdops printed, as a shell would, with the built `etcdops` first on
/// PATH, a scrubbed environment plus `env`, in `cwd`.
pub fn run_printed(command: &str, env: &[(&str, &str)], cwd: &Path) -> Run {
    let bin = Path::new(env!("CARGO_BIN_EXE_etcdops")).parent().unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let out = cmd.output().expect("running /bin/sh");
    Run::from_output(out, start)
}

/// What a user sees of one run, as one text for an insta snapshot: the command line (with its
/// environment), the exit code, stdout and stderr. [`assert_transcript!`] snapshots it with
/// [`Transcript::filters`], so that it is the same on every run and every machine.
pub struct Transcript {
    text: String,
    redactions: Vec<(String, String)>,
    masks: Vec<(String, String)>,
}

impl Transcript {
    /// Run the built binary as [`etcdops`] does and record the transcript.
    pub fn run(args: &[&str], env: &[(&str, &str)]) -> Transcript {
        let r = etcdops(args, env);
        let mut command = String::from("$");
        for (k, v) in env {
            command.push_str(&format!(" {k}={v}"));
        }
        command.push_str(" etcdops");
        for a in args {
            command.push(' ');
            command.push_str(a);
        }
        Transcript {
            text: format!(
                "{command}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
                r.code, r.stdout, r.stderr
            ),
            redactions: Vec::new(),
            masks: Vec::new(),
        }
    }

    /// Show `path` (a dir of this test) as `name`; applied before the generic filters.
    pub fn redact(mut self, path: &Path, name: &str) -> Transcript {
        self.redactions
            .push((regex_escape(&path.display().to_string()), name.to_string()));
        self
    }

    /// Replace what `regex` matches once table padding is squeezed (cells are `| value |`);
    /// for what a live cluster decides at run time.
    pub fn mask(mut self, regex: &str, replacement: &str) -> Transcript {
        self.masks
            .push((regex.to_string(), replacement.to_string()));
        self
    }

    /// Member and cluster IDs (hex, 13 to 16 digits) as `[ID]`: etcd derives them from the
    /// peer URLs, and a live test cluster's ports are random.
    pub fn ids(self) -> Transcript {
        self.mask(r"\b[0-9a-f]{13,16}\b", "[ID]")
    }

    /// Wall-clock dates and times (`2024-05-01T12:00:00Z`, `20240501T120000Z`) as `[DATE]`.
    pub fn dates(self) -> Transcript {
        self.mask(
            r"\b\d{4}-?\d{2}-?\d{2}T\d{2}:?\d{2}:?\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?",
            "[DATE]",
        )
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// In order: the redactions; the repository as `[REPO]`; temp dirs as `[TMP]`; 5-digit
    /// loopback ports (free ports the OS hands out) as `[PORT]`; durations (`2.1ms`, `226µs`,
    /// `1.5s`) as `[DURATION]`; table padding and borders squeezed to one space and two dashes
    /// (column widths follow the lengths of what was replaced); then the masks.
    pub fn filters(&self) -> Vec<(String, String)> {
        let tmp = std::env::temp_dir().display().to_string();
        let tmp = regex_escape(tmp.trim_end_matches('/'));
        let generic = [
            (regex_escape(env!("CARGO_MANIFEST_DIR")), "[REPO]"),
            (format!(r"{tmp}/\.tmp[A-Za-z0-9]{{6}}"), "[TMP]"),
            (
                r"\b(127\.0\.0\.1|localhost):[1-9][0-9]{4}\b".to_string(),
                "$1:[PORT]",
            ),
            (
                r"\b\d+(\.\d+)?(ns|µs|us|ms)\b|\b\d+\.\d+s\b".to_string(),
                "[DURATION]",
            ),
            (r" {2,}\|".to_string(), " |"),
            (r"\| {2,}".to_string(), "| "),
            (r"\+-{2,}".to_string(), "+--"),
        ];
        let mut filters = self.redactions.clone();
        filters.extend(generic.into_iter().map(|(r, s)| (r, s.to_string())));
        filters.extend(self.masks.iter().cloned());
        filters
    }
}

/// Assert a [`Transcript`] against `snapshots/<module path>__<name>.snap` of the calling test,
/// with its filters. Update with `INSTA_UPDATE=always`, review with `git diff`.
macro_rules! assert_transcript {
    ($name:expr, $transcript:expr) => {{
        let transcript: $crate::common::run::Transcript = $transcript;
        let mut settings = insta::Settings::clone_current();
        for (regex, replacement) in transcript.filters() {
            settings.add_filter(&regex, replacement);
        }
        settings.bind(|| insta::assert_snapshot!($name, transcript.text()));
    }};
}
pub(crate) use assert_transcript;

/// `s` with the characters that mean something in a regular expression escaped.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `sh -c script` in a mount namespace of its own (root, as on the CI machine): its mounts (a
/// small tmpfs for a full disk, a read-only bind) vanish with it. The built `etcdops` is first
/// on PATH; the environment is scrubbed plus `env`.
pub fn in_private_mounts(script: &str, env: &[(&str, &str)]) -> Run {
    let bin = Path::new(env!("CARGO_BIN_EXE_etcdops")).parent().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.env_clear()
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
        )
        .args([
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let out = cmd
        .output()
        .expect("unshare (util-linux) runs the disk-full and read-only cases");
    Run::from_output(out, start)
}

/// Shell commands (for [`in_private_mounts`]) that make `dir` read-only where it is.
pub fn read_only_mount(dir: &str) -> String {
    format!("mount --bind '{dir}' '{dir}' && mount -o remount,bind,ro '{dir}'")
}

/// Restore `snap` for one member `name` of `initial` (NAME=URL list) into `dir`.
pub fn restore_member(
    snap: &Path,
    dir: &Path,
    name: &str,
    peer: &str,
    initial: &str,
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "snapshot",
        "restore",
        snap.to_str().unwrap(),
        "--data-dir",
        dir.to_str().unwrap(),
        "--name",
        name,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        initial,
        "--initial-cluster-token",
        "restored",
        "-w",
        "json",
    ];
    args.extend(extra);
    etcdops(&args, &[])
}
