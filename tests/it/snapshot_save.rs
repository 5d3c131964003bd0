//! `snapshot save` against real etcd 3.5.1 and 3.4.23 with client TLS: the file etcdutl reads and
//! restores, endpoint choice, and that every failure leaves nothing behind (and an existing FILE
//! untouched).

use crate::common::s;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::cluster::{free_port, shared, Cluster, ClusterOptions, Version};
use crate::common::oracle::{etcdutl, run_etcdutl};
use crate::common::pki::Pki;
use crate::common::run::{args, etcdops, etcdops_spawn, send_signal, wait_run};
use crate::common::temporaries;
use serde_json::Value;

fn status_json(file: &Path) -> Value {
    serde_json::from_str(&run_etcdutl(&[
        "snapshot",
        "status",
        "-w",
        "json",
        &file.display().to_string(),
    ]))
    .unwrap()
}

fn fill_small(c: &Cluster) {
    let mut tc = c.client(None);
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..2000)
        .map(|i| {
            (
                format!("/registry/pods/ns{}/p{i}", i % 5).into_bytes(),
                vec![b'v'; 300 + i % 700],
            )
        })
        .collect();
    tc.put_all(&kvs, 100);
}

fn save_and_compare(version: Version) {
    let c = Cluster::start(ClusterOptions::new(version, 1));
    fill_small(&c);
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.db");
    let theirs = dir.path().join("theirs.db");
    let ep = c.endpoints_arg();
    let r = etcdops(
        &args(
            &[
                "snapshot",
                "save",
                &ours.display().to_string(),
                "-w",
                "json",
                "--endpoints",
                &ep,
            ],
            &c.tls_args(),
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    c.etcdctl_save(0, &theirs, None);

    let (a, b) = (status_json(&ours), status_json(&theirs));
    assert_eq!(a["revision"], b["revision"]);
    assert_eq!(a["totalKey"], b["totalKey"]);
    let report = r.json();
    assert_eq!(report["endpoint"], ep.as_str());
    assert_eq!(report["chosen_as"], "only endpoint");
    assert_eq!(report["sha256"], "verified");
    assert_eq!(report["revision"], a["revision"]);
    assert_eq!(report["hash"], a["hash"]);
    assert_eq!(report["totalKey"], a["totalKey"]);
    assert_eq!(report["size"], std::fs::metadata(&ours).unwrap().len());
    assert_eq!(
        std::fs::metadata(&ours).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        r.stderr.contains(&format!("saving a snapshot from {ep}")),
        "{}",
        r.stderr
    );
    assert!(temporaries(dir.path()).is_empty());

    // etcdutl restores it with the hash check on.
    let data = dir.path().join("restored.etcd");
    let out = std::process::Command::new(etcdutl())
        .env_clear()
        .args([
            "snapshot",
            "restore",
            &ours.display().to_string(),
            "--data-dir",
            &data.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "etcdutl restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `-` streams to stdout; the report goes to stderr.
    let piped = std::process::Command::new(env!("CARGO_BIN_EXE_etcdops"))
        .env_clear()
        .args(args(
            &["snapshot", "save", "-", "-w", "simple", "--endpoints", &ep],
            &c.tls_args(),
        ))
        .output()
        .unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let stdout_file = dir.path().join("stdout.db");
    std::fs::write(&stdout_file, &piped.stdout).unwrap();
    assert_eq!(status_json(&stdout_file)["revision"], a["revision"]);
    assert!(String::from_utf8_lossy(&piped.stderr).contains("Snapshot saved at -"));
}

#[test]
fn save_from_etcd_3_5_1() {
    save_and_compare(Version::V3_5_1);
}

#[test]
fn save_from_etcd_3_4_23() {
    save_and_compare(Version::V3_4_23);
}

#[test]
fn multi_endpoint_save_picks_the_leader() {
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 3));
    fill_small(&c);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.db");
    let status = etcdops(
        &args(
            &["status", "-w", "json", "--endpoints", &c.endpoints_arg()],
            &c.tls_args(),
        ),
        &[],
    );
    let rows: Value = status.json();
    let leader = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["isLeader"] == true)
        .unwrap()["Endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let r = etcdops(
        &args(
            &[
                "snapshot",
                "save",
                &file.display().to_string(),
                "-w",
                "json",
                "--endpoints",
                &c.endpoints_arg(),
            ],
            &c.tls_args(),
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert_eq!(report["chosen_as"], "leader");
    assert_eq!(report["endpoint"], leader.as_str());
    assert!(
        r.stderr
            .contains(&format!("saving a snapshot from {leader}"))
            && r.stderr.contains("leader"),
        "{}",
        r.stderr
    );

    // --cluster from one follower finds the leader too.
    let follower = c.endpoints().into_iter().find(|e| *e != leader).unwrap();
    let r = etcdops(
        &args(
            &[
                "snapshot",
                "save",
                &file.display().to_string(),
                "--cluster",
                "-w",
                "json",
                "--endpoints",
                &follower,
            ],
            &c.tls_args(),
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["endpoint"], leader.as_str());
}

/// Connection failures exit 2 quickly and leave no file (an existing FILE untouched), on the
/// shared one-member cluster: a save only reads from it.
mod connection_failures {
    use super::*;

    /// `snapshot save FILE --dial-timeout 1s` with `argv` over a precious existing FILE.
    fn exit_2_quickly_and_leave_no_file(what: &str, dir: &Path, argv: &[String]) {
        let file = dir.join("snap.db");
        std::fs::write(&file, b"precious old snapshot").unwrap();
        let f = s(&file);
        let r = etcdops(
            &args(&["snapshot", "save", &f, "--dial-timeout", "1s"], argv),
            &[],
        );
        assert_eq!(r.code, 2, "{what}: {r:?}");
        assert!(
            r.elapsed < Duration::from_secs(4),
            "{what}: took {:?}",
            r.elapsed
        );
        assert_eq!(r.error_lines(), 1, "{what}: {}", r.stderr);
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"precious old snapshot",
            "{what}"
        );
        assert!(temporaries(dir).is_empty(), "{what}");
    }

    #[test]
    fn wrong_ca() {
        let c = shared(Version::V3_5_1, 1);
        let dir = tempfile::tempdir().unwrap();
        let other = Pki::generate(&dir.path().join("other"));
        let p = &c.pki;
        let argv = [
            "--endpoints".to_string(),
            c.endpoints_arg(),
            "--cacert".to_string(),
            s(&other.ca.cert),
            "--cert".to_string(),
            s(&p.healthcheck.cert),
            "--key".to_string(),
            s(&p.healthcheck.key),
        ];
        exit_2_quickly_and_leave_no_file("wrong CA", dir.path(), &argv);
    }

    #[test]
    fn missing_key() {
        let c = shared(Version::V3_5_1, 1);
        let dir = tempfile::tempdir().unwrap();
        let p = &c.pki;
        let argv = [
            "--endpoints".to_string(),
            c.endpoints_arg(),
            "--cacert".to_string(),
            s(&p.ca.cert),
            "--cert".to_string(),
            s(&p.healthcheck.cert),
            "--key".to_string(),
            "/nonexistent/k.key".to_string(),
        ];
        exit_2_quickly_and_leave_no_file("missing key", dir.path(), &argv);
    }

    #[test]
    fn unreachable_endpoint() {
        let c = shared(Version::V3_5_1, 1);
        let dir = tempfile::tempdir().unwrap();
        let p = &c.pki;
        let argv = [
            "--endpoints".to_string(),
            format!("https://127.0.0.1:{}", free_port()),
            "--cacert".to_string(),
            s(&p.ca.cert),
            "--cert".to_string(),
            s(&p.healthcheck.cert),
            "--key".to_string(),
            s(&p.healthcheck.key),
        ];
        exit_2_quickly_and_leave_no_file("unreachable", dir.path(), &argv);
    }
}

#[test]
fn interruptions_leave_nothing_behind() {
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    // A few hundred MB, so the stream takes seconds.
    let mut tc = c.client(None);
    let big: Vec<(Vec<u8>, Vec<u8>)> = (0..300)
        .map(|i| {
            (
                format!("/big/{i}").into_bytes(),
                vec![(i % 251) as u8; 1_000_000],
            )
        })
        .collect();
    tc.put_all(&big, 1);
    drop(tc);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.db");
    std::fs::write(&file, b"precious old snapshot").unwrap();
    let f = file.display().to_string();
    let ep = c.endpoints_arg();
    let tls = c.tls_args();
    let untouched = |what: &str| {
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"precious old snapshot",
            "{what}: FILE changed"
        );
        let left = temporaries(dir.path());
        assert!(left.is_empty(), "{what}: temporaries left behind: {left:?}");
    };
    let wait_for_part = || {
        let start = Instant::now();
        while temporaries(dir.path()).is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !temporaries(dir.path()).is_empty(),
            "the save never started writing"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // SIGTERM to etcdops mid-stream.
    let start = Instant::now();
    let child = etcdops_spawn(&args(&["snapshot", "save", &f, "--endpoints", &ep], &tls));
    let pid = child.id();
    wait_for_part();
    send_signal(pid, "TERM");
    let r = wait_run(child, start, Duration::from_secs(20));
    assert_eq!(r.code, 2, "SIGTERM: {r:?}");
    assert!(r.stderr.contains("SIGTERM"), "{}", r.stderr);
    untouched("SIGTERM");

    // The disk fills up (RLIMIT_FSIZE of 2 MiB on the etcdops process).
    let bin = env!("CARGO_BIN_EXE_etcdops");
    let mut cmd = format!("ulimit -f 2048 && exec {bin} snapshot save {f} --endpoints {ep}");
    cmd.push_str(&tls.iter().map(|a| format!(" '{a}'")).collect::<String>());
    let out = std::process::Command::new("/bin/sh")
        .env_clear()
        .arg("-c")
        .arg(&cmd)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "disk full: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("writing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    untouched("disk full");

    // The server stops sending (SIGSTOP): the stall timeout ends the save.
    let start = Instant::now();
    let child = etcdops_spawn(&args(
        &[
            "snapshot",
            "save",
            &f,
            "--stall-timeout",
            "1s",
            "--endpoints",
            &ep,
        ],
        &tls,
    ));
    wait_for_part();
    let etcd = c.pid(0).unwrap();
    send_signal(etcd, "STOP");
    let r = wait_run(child, start, Duration::from_secs(20));
    send_signal(etcd, "CONT");
    assert_eq!(r.code, 2, "stall: {r:?}");
    assert!(r.stderr.contains("stalled"), "{}", r.stderr);
    untouched("stall");

    // The server is killed mid-stream.
    let mut c = c;
    let start = Instant::now();
    let child = etcdops_spawn(&args(&["snapshot", "save", &f, "--endpoints", &ep], &tls));
    wait_for_part();
    c.kill(0);
    let r = wait_run(child, start, Duration::from_secs(20));
    assert_eq!(r.code, 2, "server killed: {r:?}");
    assert_eq!(r.error_lines(), 1, "{}", r.stderr);
    untouched("server killed");
}

#[test]
fn temporaries_cannot_be_hijacked_and_short_writes_fail() {
    use std::os::unix::fs::MetadataExt;
    const OTHER: u32 = 65534;
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let mut tc = c.client(None);
    // About 4 MB, so that a reader that stops after 1 MB leaves most of it unwritten.
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..40)
        .map(|i| (format!("/big/{i}").into_bytes(), vec![i as u8; 100_000]))
        .collect();
    tc.put_all(&kvs, 10);
    drop(tc);
    let ep = c.endpoints_arg();
    let tls = c.tls_args();
    let dir = tempfile::tempdir().unwrap();

    // A symlink planted at FILE.part, and a FILE.part of another user with mode 0666: neither
    // is followed, adopted or changed; FILE is ours, 0600.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"victim").unwrap();
    let t = dir.path().join("t.db");
    std::os::unix::fs::symlink(&victim, dir.path().join("t.db.part")).unwrap();
    let u = dir.path().join("u.db");
    let u_part = dir.path().join("u.db.part");
    std::fs::write(&u_part, b"planted").unwrap();
    std::os::unix::fs::chown(&u_part, Some(OTHER), Some(OTHER)).unwrap();
    std::fs::set_permissions(&u_part, std::fs::Permissions::from_mode(0o666)).unwrap();
    for file in [&t, &u] {
        let r = etcdops(
            &args(
                &[
                    "snapshot",
                    "save",
                    file.to_str().unwrap(),
                    "--endpoints",
                    &ep,
                ],
                &tls,
            ),
            &[],
        );
        assert_eq!(r.code, 0, "{r:?}");
        let md = std::fs::symlink_metadata(file).unwrap();
        assert!(
            md.file_type().is_file(),
            "{} is a regular file",
            file.display()
        );
        assert_eq!((md.mode() & 0o777, md.uid()), (0o600, 0));
        assert!(status_json(file)["totalKey"].as_u64().unwrap() > 40);
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
    assert!(std::fs::symlink_metadata(dir.path().join("t.db.part"))
        .unwrap()
        .file_type()
        .is_symlink());
    let md = std::fs::metadata(&u_part).unwrap();
    assert_eq!((md.mode() & 0o777, md.uid()), (0o666, OTHER));
    assert_eq!(std::fs::read(&u_part).unwrap(), b"planted");

    // Two saves to one FILE at once: each has its own temporary, both finish, the file is a
    // complete snapshot, nothing is left over.
    let both = dir.path().join("both.db");
    let start = Instant::now();
    let children: Vec<_> = (0..2)
        .map(|_| {
            etcdops_spawn(&args(
                &[
                    "snapshot",
                    "save",
                    both.to_str().unwrap(),
                    "--endpoints",
                    &ep,
                ],
                &tls,
            ))
        })
        .collect();
    for child in children {
        let r = wait_run(child, start, Duration::from_secs(30));
        assert_eq!(r.code, 0, "{r:?}");
    }
    assert!(status_json(&both)["totalKey"].as_u64().unwrap() > 40);
    assert!(temporaries(dir.path()).is_empty());

    // `save -` into a pipe whose reader stops early: exit 2, one line, no success line.
    let mut cmd = format!(
        "{} snapshot save - --endpoints {ep}",
        env!("CARGO_BIN_EXE_etcdops")
    );
    cmd.push_str(&tls.iter().map(|a| format!(" '{a}'")).collect::<String>());
    let out = std::process::Command::new("/bin/bash")
        .env_clear()
        .arg("-c")
        .arg(format!(
            "{cmd} 2>err | head -c 1000000 >/dev/null; echo ${{PIPESTATUS[0]}}"
        ))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = std::fs::read_to_string(dir.path().join("err")).unwrap();
    assert_eq!(code, "2", "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("closed the pipe"), "{err}");
    assert!(!err.contains("Snapshot saved"), "{err}");
}

/// Whole transcripts of `snapshot save`: from the shared one-member cluster into a new file,
/// and an unreachable endpoint (exit 2, nothing written).
mod transcripts {
    use super::*;
    use crate::common::run::{assert_transcript, Transcript};

    fn save(c: &Cluster, file: &Path, endpoints: &str) -> Transcript {
        let f = file.display().to_string();
        Transcript::run(
            &args(
                &[
                    "snapshot",
                    "save",
                    &f,
                    "--dial-timeout",
                    "1s",
                    "--endpoints",
                    endpoints,
                ],
                &c.tls_args(),
            ),
            &[],
        )
        .redact(c.dir.path(), "[CLUSTER]")
        .redact(file.parent().unwrap(), "[DIR]")
        .ids()
        // What the live cluster holds when the save runs: its revision, its keys (the
        // members and cluster version it recorded while starting), their hash and size.
        .mask(
            r"(\[PORT\] \| )\d+ \| [0-9a-f]+ \| \d+ \| [^|]+ \|",
            "$1[REVISION] | [HASH] | [KEYS] | [SIZE] |",
        )
    }

    #[test]
    fn ok() {
        let c = shared(Version::V3_5_1, 1);
        let dir = tempfile::tempdir().unwrap();
        let t = save(&c, &dir.path().join("snap.db"), &c.endpoints_arg());
        assert_transcript!("ok", t);
    }

    #[test]
    fn unreachable_endpoint() {
        let c = shared(Version::V3_5_1, 1);
        let dir = tempfile::tempdir().unwrap();
        let dead = format!("https://127.0.0.1:{}", free_port());
        let t = save(&c, &dir.path().join("snap.db"), &dead);
        assert!(!dir.path().join("snap.db").exists());
        assert_transcript!("unreachable_endpoint", t);
    }
}
