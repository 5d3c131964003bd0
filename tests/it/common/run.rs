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
    Command::new(env!("CARGO_BIN_EXE_etcdops"))
        .env_clear()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting etcdops")
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
