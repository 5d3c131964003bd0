//! What a broken or hostile object store answers, and what stray files in a PKI directory do:
//! each bound of docs/reliability.md ("Bounded resources") against a faulty S3 server
//! ([`FaultyS3`]) or a planted file. The real-server tests are in `remote`.

use crate::common::s;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::cluster::{shared, Cluster, Version};
use crate::common::faulty_s3::{Fault, FaultyS3};
use crate::common::older_copies;
use crate::common::run::{args, etcdops};

fn conn(c: &Cluster) -> Vec<String> {
    let mut v = vec!["--endpoints".to_string(), c.members[0].client_url.clone()];
    v.extend(c.tls_args());
    v
}

/// A real save into a new directory, and `older` copies of it under older generated names
/// (two days of hourly saves at most); returns the directory and the newest name.
fn saved(older: usize) -> (tempfile::TempDir, PathBuf, String) {
    let c = shared(Version::V3_5_1, 1);
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("b");
    std::fs::create_dir(&backups).unwrap();
    let dest = format!("{}/", s(&backups));
    let r = etcdops(
        &args(&["snapshot", "save", &dest, "-w", "json"], &conn(&c)),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let made = PathBuf::from(r.json()["file"].as_str().unwrap());
    let newest = made.file_name().unwrap().to_string_lossy().into_owned();
    let sidecar = PathBuf::from(format!("{}.json", s(&made)));
    older_copies(&made, &sidecar, &backups, older);
    (dir, backups, newest)
}

fn env(s3: &FaultyS3) -> Vec<(&'static str, String)> {
    s3.env()
}

fn run(argv: &[&str], s3: &FaultyS3) -> crate::common::run::Run {
    let env = env(s3);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    etcdops(argv, &env)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Item 1: a listing that names a key twice (one token repeated, pages that overlap, tokens
/// that alternate) is refused before any rule runs: prune and `save --keep` delete nothing.
/// The same objects listed correctly are pruned as the rules say.
#[test]
fn a_listing_that_repeats_a_key_deletes_nothing() {
    let (_d, dir, newest) = saved(40);
    for fault in [
        Fault::SameToken,
        Fault::OverlappingPages,
        Fault::AlternatingTokens,
    ] {
        let s3 = FaultyS3::start(fault);
        s3.load_dir("bkt", "p/", &dir);
        let before = sorted(s3.names("bkt", "p/"));
        for argv in [
            &["snapshot", "prune", "s3://bkt/p/", "--keep-daily", "7"][..],
            &[
                "snapshot",
                "prune",
                "s3://bkt/p/",
                "--keep-last",
                "1",
                "--dry-run",
            ],
            &["snapshot", "ls", "s3://bkt/p/"],
        ] {
            let r = run(argv, &s3);
            assert_eq!(r.code, 2, "{fault:?} {argv:?}: {r:?}");
            assert_eq!(r.error_lines(), 1, "{r:?}");
            assert!(
                r.stderr.contains("listing of s3://bkt/p/ is faulty")
                    && r.stderr.contains("nothing was changed"),
                "{fault:?}: {}",
                r.stderr
            );
            assert!(!r.stdout.contains("delete"), "{}", r.stdout);
        }
        assert!(s3.requests("DELETE").is_empty(), "{fault:?}");
        assert_eq!(sorted(s3.names("bkt", "p/")), before, "{fault:?}");
    }
    // Listed correctly: the newest of each of the three days stays, with its sidecar.
    let s3 = FaultyS3::start(Fault::None);
    s3.load_dir("bkt", "p/", &dir);
    let r = run(
        &["snapshot", "prune", "s3://bkt/p/", "--keep-daily", "7"],
        &s3,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let left = sorted(s3.names("bkt", "p/"));
    assert_eq!(left.len(), 6, "{left:?}");
    assert!(left.contains(&newest), "{left:?}");
}

/// `save --keep` against a listing that repeats a key: the save's own listing is refused, so
/// nothing is uploaded and nothing deleted.
#[test]
fn save_keep_on_a_faulty_listing_deletes_nothing() {
    let (_d, dir, _) = saved(5);
    let c = shared(Version::V3_5_1, 1);
    let s3 = FaultyS3::start(Fault::SameToken);
    s3.load_dir("bkt", "p/", &dir);
    let before = sorted(s3.names("bkt", "p/"));
    let tls = conn(&c);
    let argv = args(
        &["snapshot", "save", "s3://bkt/p/", "--keep", "last=1"],
        &tls,
    );
    let r = run(&argv, &s3);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("is faulty"), "{}", r.stderr);
    assert!(s3.requests("DELETE").is_empty());
    assert_eq!(sorted(s3.names("bkt", "p/")), before);
}

/// `save --keep` whose own name check lists cleanly but whose retention listing repeats every
/// key: the save completes, `--keep` fails (exit 2, the save's report and one error line), and
/// nothing is deleted.
#[test]
fn save_keep_whose_retention_listing_is_faulty_deletes_nothing() {
    let (_d, dir, newest) = saved(5);
    // The copies only: a save in the same second as `saved`'s would find its name taken.
    std::fs::remove_file(dir.join(&newest)).unwrap();
    std::fs::remove_file(dir.join(format!("{newest}.json"))).unwrap();
    let c = shared(Version::V3_5_1, 1);
    let s3 = FaultyS3::start(Fault::SameTokenOnPrefix);
    s3.load_dir("bkt", "p/", &dir);
    let before = sorted(s3.names("bkt", "p/"));
    let tls = conn(&c);
    let argv = args(
        &[
            "snapshot",
            "save",
            "s3://bkt/p/",
            "--keep",
            "last=1",
            "-w",
            "json",
        ],
        &tls,
    );
    let r = run(&argv, &s3);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    assert!(
        r.stderr
            .contains("the snapshot is saved and complete, but --keep failed")
            && r.stderr.contains("is faulty"),
        "{}",
        r.stderr
    );
    let report = r.json();
    assert!(report["prune_failed"]
        .as_str()
        .unwrap()
        .contains("is faulty"));
    assert!(report.get("pruned").is_none(), "{report}");
    assert!(s3.requests("DELETE").is_empty());
    let saved = report["file"]
        .as_str()
        .unwrap()
        .trim_start_matches("s3://bkt/p/");
    let mut after = before.clone();
    after.extend([saved.to_string(), format!("{saved}.json")]);
    assert_eq!(sorted(s3.names("bkt", "p/")), sorted(after));
}

/// Item 2: listings that never end stop at the page cap, with one line, in bounded time and
/// memory; the multipart-upload listing of a save too (a warning: the save goes on).
#[test]
fn endless_listings_stop_at_the_page_cap() {
    let s3 = FaultyS3::start(Fault::EndlessTokens);
    let start = Instant::now();
    let r = run(&["snapshot", "ls", "s3://bkt/p/"], &s3);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    assert!(r.stderr.contains("more than 1000 pages"), "{}", r.stderr);
    // 1000 requests on loopback; far from the 5-minute listing deadline.
    assert!(start.elapsed() < Duration::from_secs(120));
    assert_eq!(
        s3.requests("GET").len(),
        1001,
        "the bucket check and 1000 pages"
    );

    let c = shared(Version::V3_5_1, 1);
    let s3 = FaultyS3::start(Fault::EndlessUploadListing);
    let r = run(&args(&["snapshot", "save", "s3://bkt/p/"], &conn(&c)), &s3);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("cannot list incomplete uploads")
            && r.stderr.contains("more than 1000 pages"),
        "{}",
        r.stderr
    );
    assert_eq!(
        s3.names("bkt", "p/").len(),
        2,
        "the snapshot and its sidecar"
    );
}

/// A page that says "truncated" but names no continuation token: refused (it would list the
/// first page again without end, or stop short); nothing deleted.
#[test]
fn a_truncated_page_without_a_token_is_refused() {
    let (_d, dir, _) = saved(2);
    let s3 = FaultyS3::start(Fault::TruncatedNoToken);
    s3.load_dir("bkt", "p/", &dir);
    let before = sorted(s3.names("bkt", "p/"));
    for argv in [
        &["snapshot", "ls", "s3://bkt/p/"][..],
        &["snapshot", "prune", "s3://bkt/p/", "--keep-last", "1"],
    ] {
        let r = run(argv, &s3);
        assert_eq!(r.code, 2, "{argv:?}: {r:?}");
        assert_eq!(r.error_lines(), 1, "{r:?}");
        assert!(
            r.stderr
                .contains("a page is truncated but names no continuation token"),
            "{}",
            r.stderr
        );
    }
    assert!(s3.requests("DELETE").is_empty());
    assert_eq!(sorted(s3.names("bkt", "p/")), before);
}

/// A save encrypts to at most 256 recipients (a restore refuses larger age headers): 257 are
/// refused with one line before anything is written.
#[test]
fn a_save_to_257_recipients_is_refused() {
    let c = shared(Version::V3_5_1, 1);
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..257)
        .map(|_| age::x25519::Identity::generate().to_public().to_string())
        .collect();
    let file = dir.path().join("recipients.txt");
    std::fs::write(&file, keys.join("\n")).unwrap();
    let dest = dir.path().join("b");
    std::fs::create_dir(&dest).unwrap();
    let tls = conn(&c);
    let target = format!("{}/", s(&dest));
    let r = etcdops(
        &args(
            &["snapshot", "save", &target, "--encrypt-to", &s(&file)],
            &tls,
        ),
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    assert!(
        r.stderr.contains("names 257 recipients; at most 256"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
}

/// Item 2, time: a listing of pages that take 100 ms each and never end is over at the
/// command's `--timeout` (2 s), with one line naming it, far before the page cap.
#[test]
fn an_endless_slow_listing_ends_at_the_timeout() {
    let s3 = FaultyS3::start(Fault::EndlessTokens);
    *s3.delay.lock().unwrap() = Duration::from_millis(100);
    let start = Instant::now();
    let r = run(&["snapshot", "ls", "s3://bkt/p/", "--timeout", "2s"], &s3);
    let took = start.elapsed();
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    assert!(r.stderr.contains("within --timeout 2s"), "{}", r.stderr);
    assert!(took < Duration::from_secs(6), "{took:?}");
    let pages = s3.requests("GET").len();
    assert!((10..=25).contains(&pages), "{pages} pages in {took:?}");
}

/// Item 3: a body that does not end is cut at the size the sidecar declares; nothing is left in
/// TMPDIR or beside the data dir. A sidecar declaring more than the disk holds is refused
/// before the download starts.
#[test]
fn a_download_stops_at_the_declared_size() {
    let (d, dir, newest) = saved(0);
    let s3 = FaultyS3::start(Fault::EndlessBody);
    s3.load_dir("bkt", "p/", &dir);
    let tmp = d.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let url = format!("s3://bkt/p/{newest}");
    let mut env = env(&s3);
    env.push(("TMPDIR", s(&tmp)));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let target = d.path().join("restored");
    for argv in [
        vec!["snapshot", "status", url.as_str()],
        vec!["snapshot", "ls", url.as_str()],
        vec!["snapshot", "restore", url.as_str(), "--data-dir"],
    ] {
        let mut argv = argv;
        let t = s(&target);
        if argv[1] == "restore" {
            argv.push(&t);
        }
        let start = Instant::now();
        let r = etcdops(&argv, &env);
        assert_eq!(r.code, 2, "{argv:?}: {r:?}");
        assert_eq!(r.error_lines(), 1, "{r:?}");
        assert!(
            r.stderr.contains("more than the") && r.stderr.contains("its metadata declares"),
            "{}",
            r.stderr
        );
        assert!(start.elapsed() < Duration::from_secs(30));
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        assert!(!target.exists());
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            2,
            "only b/ and tmp/ beside the data dir"
        );
    }
    // A sidecar that declares a petabyte: refused before the object is asked for.
    let sidecar = format!("bkt/p/{newest}.json");
    {
        let mut st = s3.state.lock().unwrap();
        let mut meta: serde_json::Value = serde_json::from_slice(&st.objects[&sidecar]).unwrap();
        meta["db_size"] = (1u64 << 50).into();
        st.objects
            .insert(sidecar.clone(), serde_json::to_vec(&meta).unwrap());
        st.requests.clear();
    }
    let r = etcdops(&["snapshot", "status", url.as_str()], &env);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not enough free space"), "{}", r.stderr);
    assert_eq!(
        s3.requests("GET")
            .iter()
            .filter(|q| !q.contains(".json"))
            .count(),
        0,
        "{:?}",
        s3.requests("GET")
    );
}

/// Item 4: `--timeout` bounds the whole read (a body trickling a byte every 5 s is given up
/// after it); sidecars are fetched several at a time, never more than eight.
#[test]
fn a_trickling_body_ends_at_the_timeout_and_sidecars_come_eight_at_a_time() {
    let (_d, dir, newest) = saved(20);
    let s3 = FaultyS3::start(Fault::TricklingBody);
    s3.load_dir("bkt", "p/", &dir);
    let url = format!("s3://bkt/p/{newest}");
    let start = Instant::now();
    let r = run(&["snapshot", "status", &url, "--timeout", "3s"], &s3);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    assert!(r.stderr.contains("--timeout"), "{}", r.stderr);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let help = etcdops(&["snapshot", "status", "--help"], &[]);
    let words: Vec<&str> = help.stdout.split_whitespace().collect();
    assert!(
        words.join(" ").contains("[default: 30m]"),
        "{}",
        help.stdout
    );

    s3.set_fault(Fault::None);
    *s3.delay.lock().unwrap() = Duration::from_millis(300);
    let start = Instant::now();
    let r = run(&["snapshot", "ls", "s3://bkt/p/"], &s3);
    assert_eq!(r.code, 0, "{r:?}");
    let max = s3.state.lock().unwrap().max_in_flight;
    assert!((2..=8).contains(&max), "{max} sidecar fetches at once");
    // 21 sidecars at 0.3 s each: 6.3 s one by one, about 1 s eight at a time.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

/// Item 7: 503 SlowDown and 500 are retried with backoff (every request, every part); with
/// AWS_MAX_ATTEMPTS=1 the first one fails the command with one line naming the answer.
#[test]
fn slow_down_and_internal_errors_are_retried() {
    let (_d, dir, _) = saved(3);
    let s3 = FaultyS3::start(Fault::SlowDown(2));
    s3.load_dir("bkt", "p/", &dir);
    let r = run(&["snapshot", "ls", "s3://bkt/p/"], &s3);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s3.requests("GET")[..3].len(), 3);

    // A listing page and an object's GET answered 503 once each: asked again, both succeed.
    let s3 = FaultyS3::start(Fault::SlowDownOnceEach);
    s3.load_dir("bkt", "p/", &dir);
    let r = run(&["snapshot", "ls", "s3://bkt/p/"], &s3);
    assert_eq!(r.code, 0, "{r:?}");
    let pages = |s3: &FaultyS3| {
        s3.requests("GET")
            .iter()
            .filter(|q| q.ends_with("prefix=p/"))
            .count()
    };
    assert_eq!(pages(&s3), 2, "{:?}", s3.requests("GET"));
    let newest = r.stdout.lines().find_map(|l| {
        l.split_whitespace()
            .find(|w| w.starts_with("etcd-") && w.ends_with(".db"))
    });
    let url = format!(
        "s3://bkt/p/{}",
        newest.unwrap_or_else(|| panic!("{}", r.stdout))
    );
    let r = run(&["snapshot", "status", &url], &s3);
    assert_eq!(r.code, 0, "{r:?}");
    let object_gets = s3
        .requests("GET")
        .iter()
        .filter(|q| q.contains("/p/etcd-") && !q.contains(".json"))
        .count();
    assert_eq!(object_gets, 2, "{:?}", s3.requests("GET"));

    // Three 503s in a row use up AWS_MAX_ATTEMPTS' default of 3: one line naming the answer.
    let s3 = FaultyS3::start(Fault::SlowDown(3));
    s3.load_dir("bkt", "p/", &dir);
    let r = run(&["snapshot", "ls", "s3://bkt/p/"], &s3);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    assert!(
        r.stderr.contains("SlowDown") && r.stderr.contains("after 3 attempts"),
        "{}",
        r.stderr
    );
    assert_eq!(s3.requests("GET").len(), 3);

    let s3 = FaultyS3::start(Fault::SlowDown(1));
    s3.load_dir("bkt", "p/", &dir);
    let mut env = env(&s3);
    env.push(("AWS_MAX_ATTEMPTS", "1".to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = etcdops(&["snapshot", "ls", "s3://bkt/p/"], &env);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    assert!(
        r.stderr.contains("503") && r.stderr.contains("SlowDown"),
        "{}",
        r.stderr
    );

    // Deletes answered 500 once each: the prune still deletes all it should.
    let s3 = FaultyS3::start(Fault::FlakyDeletes);
    s3.load_dir("bkt", "p/", &dir);
    let r = run(
        &["snapshot", "prune", "s3://bkt/p/", "--keep-last", "1"],
        &s3,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s3.names("bkt", "p/").len(), 2);

    // Every part of a save answered 503 once: the save completes, and restores.
    let c = shared(Version::V3_5_1, 1);
    let s3 = FaultyS3::start(Fault::FlakyParts);
    let r = run(
        &args(
            &["snapshot", "save", "s3://bkt/q/", "-w", "json"],
            &conn(&c),
        ),
        &s3,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let url = r.json()["file"].as_str().unwrap().to_string();
    let r = run(&["snapshot", "status", &url], &s3);
    assert_eq!(r.code, 0, "{r:?}");
}

fn sh(script: &str) {
    let ok = std::process::Command::new("/bin/sh")
        .args(["-c", script])
        .status()
        .unwrap()
        .success();
    assert!(ok, "{script}");
}

/// `etcdops ARGS` under `/usr/bin/time`: the run and its peak RSS in KiB.
fn with_rss(argv: &[&str]) -> (crate::common::run::Run, u64) {
    let start = Instant::now();
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("RSS %M")
        .arg(env!("CARGO_BIN_EXE_etcdops"))
        .args(argv)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let rss = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RSS "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let run = crate::common::run::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        elapsed: start.elapsed(),
    };
    (run, rss)
}

/// Item 5: a FIFO, a symlink to /dev/zero and a 300 MB stray file in a PKI directory: each is
/// a row naming what it is, read through the 1 MiB cap; nothing hangs, memory stays small.
#[test]
fn stray_files_in_a_pki_dir_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::common::pki::Pki::generate(dir.path());
    let etcd = dir.path().join("etcd");
    sh(&format!(
        "cd '{}' && mkfifo pipe.crt && ln -s /dev/zero zero.crt && truncate -s 300M big.crt",
        s(&etcd)
    ));
    let (r, rss) = with_rss(&["cert-expiry", &s(dir.path()), "-w", "json"]);
    assert!(r.elapsed < Duration::from_secs(20), "{r:?}");
    assert!(rss < 100 * 1024, "{rss} KiB");
    let text = format!("{}{}", r.stdout, r.stderr);
    for (file, why) in [
        ("pipe.crt", "FIFO"),
        ("zero.crt", "character device"),
        ("big.crt", "larger than 1048576 bytes"),
    ] {
        assert!(
            text.lines().any(|l| l.contains(file) && l.contains(why)),
            "{file}: {text}"
        );
    }
    assert!(r.stdout.contains("etcd-server"), "{}", r.stdout);
    // cert-renew scans the same directory for the CA and keys: it renews and does not hang.
    let backup = dir.path().join("backup");
    let (r, rss) = with_rss(&[
        "cert-renew",
        &s(&pki.server.cert),
        "--backup-dir",
        &s(&backup),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(rss < 100 * 1024, "{rss} KiB");
    // A FIFO given as the certificate: named as what it is.
    let r = etcdops(&["cert-renew", &s(&etcd.join("pipe.crt"))], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("FIFO"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("no such certificate file"),
        "{}",
        r.stderr
    );
}

/// TLS files (`--cacert`, `--cert`, `--key`, `--s3-endpoint-ca`, `AWS_CA_BUNDLE`) are read as
/// regular files of at most 1 MiB: a FIFO is named at once (it blocked `open` before), a
/// larger file is refused, each with one line.
#[test]
fn a_fifo_or_a_huge_file_as_a_tls_file_is_one_line_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ca.pipe");
    sh(&format!("mkfifo '{}'", s(&fifo)));
    let big = dir.path().join("big.crt");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    for (file, says) in [(&fifo, "FIFO"), (&big, "larger than 1048576 bytes")] {
        let f = s(file);
        let ep = "https://127.0.0.1:1";
        let s3 = FaultyS3::start(Fault::None);
        let endpoint = s3.endpoint().replace("http://", "https://");
        for (argv, env) in [
            (vec!["health", "--endpoints", ep, "--cacert", &f], vec![]),
            (
                vec!["health", "--endpoints", ep, "--cert", &f, "--key", &f],
                vec![],
            ),
            (
                vec!["snapshot", "ls", "s3://bkt/p/", "--s3-endpoint-ca", &f],
                vec![("AWS_ENDPOINT_URL", endpoint.as_str())],
            ),
            (
                vec!["snapshot", "ls", "s3://bkt/p/"],
                vec![
                    ("AWS_ENDPOINT_URL", endpoint.as_str()),
                    ("AWS_CA_BUNDLE", f.as_str()),
                ],
            ),
        ] {
            let mut env = env;
            env.extend([
                ("AWS_ACCESS_KEY_ID", "AKIAFAULTY"),
                ("AWS_SECRET_ACCESS_KEY", "faulty-secret"),
                ("AWS_REGION", "us-east-1"),
            ]);
            let start = Instant::now();
            let r = etcdops(&argv, &env);
            assert_eq!(r.code, 2, "{argv:?}: {r:?}");
            assert_eq!(r.error_lines(), 1, "{argv:?}: {r:?}");
            assert!(r.stderr.contains(says), "{argv:?}: {}", r.stderr);
            assert!(start.elapsed() < Duration::from_secs(10), "{argv:?}");
        }
    }
}

fn openssl(args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Items 12 and 14: a file holding a chain keeps its CA after the leaf is renewed; a symlinked
/// certificate and a world-readable key are named, and the printed chmod silences the warning;
/// an encrypted CA key is named as the key; a symlinked --backup-dir parent is refused.
#[test]
fn cert_renew_keeps_chains_and_says_what_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::common::pki::Pki::generate(dir.path());
    let etcd = dir.path().join("etcd");
    let ca_pem = std::fs::read_to_string(&pki.ca.cert).unwrap();
    let leaf_pem = std::fs::read_to_string(&pki.server.cert).unwrap();
    std::fs::write(&pki.server.cert, format!("{leaf_pem}{ca_pem}")).unwrap();
    sh(&format!("chmod 644 '{}'", s(&pki.server.key)));
    let backup = |n: &str| s(&dir.path().join(n));
    let r = etcdops(
        &[
            "cert-renew",
            &s(&pki.server.cert),
            "--backup-dir",
            &backup("b1"),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let now = std::fs::read_to_string(&pki.server.cert).unwrap();
    assert!(
        now.ends_with(&ca_pem),
        "the CA after the leaf is gone:\n{now}"
    );
    assert_ne!(now, format!("{leaf_pem}{ca_pem}"));
    assert_eq!(now.matches("BEGIN CERTIFICATE").count(), 2);
    openssl(&["verify", "-CAfile", &s(&pki.ca.cert), &s(&pki.server.cert)]);
    assert!(
        r.stderr.contains("only its first certificate is renewed"),
        "{}",
        r.stderr
    );
    let chmod = r
        .stderr
        .lines()
        .find_map(|l| {
            l.split("run ")
                .nth(1)
                .filter(|c| c.starts_with("chmod 600"))
        })
        .unwrap_or_else(|| panic!("no chmod: {}", r.stderr))
        .to_string();
    sh(&chmod);
    let r = etcdops(
        &[
            "cert-renew",
            &s(&pki.server.cert),
            "--backup-dir",
            &backup("b2"),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("readable by every user"), "{}", r.stderr);

    // A symlinked certificate: said, and the link's target is left as it was.
    let real = dir.path().join("real-peer.crt");
    std::fs::rename(&pki.peer.cert, &real).unwrap();
    std::os::unix::fs::symlink(&real, &pki.peer.cert).unwrap();
    let before = std::fs::read(&real).unwrap();
    let r = etcdops(
        &[
            "cert-renew",
            &s(&pki.peer.cert),
            "--backup-dir",
            &backup("b3"),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("a symbolic link to"), "{}", r.stderr);
    assert_eq!(std::fs::read(&real).unwrap(), before);

    // A --backup-dir under a symbolic link: refused, nothing written.
    std::os::unix::fs::symlink(dir.path(), dir.path().join("link")).unwrap();
    let under_link = s(&dir.path().join("link").join("b4"));
    let cert_before = std::fs::read(&pki.healthcheck.cert).unwrap();
    let r = etcdops(
        &[
            "cert-renew",
            &s(&pki.healthcheck.cert),
            "--backup-dir",
            &under_link,
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("is a symbolic link"), "{}", r.stderr);
    assert_eq!(std::fs::read(&pki.healthcheck.cert).unwrap(), cert_before);
    assert!(!dir.path().join("b4").exists());

    // An encrypted CA key: the error names the key, not ca.crt.
    openssl(&[
        "pkey",
        "-in",
        &s(&pki.ca.key),
        "-aes256",
        "-passout",
        "pass:secret",
        "-out",
        &s(&etcd.join("ca.key.enc")),
    ]);
    std::fs::rename(etcd.join("ca.key.enc"), &pki.ca.key).unwrap();
    let r = etcdops(
        &[
            "cert-renew",
            &s(&pki.healthcheck.cert),
            "--backup-dir",
            &backup("b5"),
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    assert!(
        r.stderr.contains("ca.key") && r.stderr.contains("encrypted"),
        "{}",
        r.stderr
    );
}

/// Items 9 and 14: `schedule print` refuses a password on its command line or in the save's
/// arguments (it would be written in clear) and points to ETCDCTL_PASSWORD; `%` in
/// --on-calendar reaches systemd escaped.
#[test]
fn schedules_never_hold_a_password() {
    for argv in [
        &[
            "schedule",
            "print",
            "systemd",
            "--",
            "/var/backups/etcd/",
            "--password",
            "pw",
        ][..],
        &[
            "schedule",
            "print",
            "cronjob",
            "--",
            "s3://bkt/p/",
            "--user",
            "root:pw",
        ],
        &[
            "schedule",
            "print",
            "systemd",
            "--",
            "/b/",
            "--user=root:pw",
        ],
        &[
            "--password",
            "pw",
            "schedule",
            "print",
            "systemd",
            "--",
            "/b/",
        ],
    ] {
        let r = etcdops(argv, &[]);
        assert_eq!(r.code, 2, "{argv:?}: {r:?}");
        assert_eq!(r.error_lines(), 1, "{r:?}");
        assert!(
            !r.stdout.contains("pw") && !r.stderr.contains("pw"),
            "{r:?}"
        );
        assert!(r.stderr.contains("ETCDCTL_PASSWORD"), "{}", r.stderr);
    }
    let r = etcdops(
        &[
            "schedule", "print", "systemd", "--", "/b/", "--user", "root",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("ETCDCTL_PASSWORD"), "{}", r.stdout);

    let dir = tempfile::tempdir().unwrap();
    let r = etcdops(
        &[
            "schedule",
            "print",
            "systemd",
            "--on-calendar",
            "*-*-* 03:%h:00",
            "--dir",
            &s(dir.path()),
            "--",
            "/b/",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let timer = std::fs::read_to_string(dir.path().join("etcdops-snapshot.timer")).unwrap();
    assert!(timer.contains("OnCalendar=*-*-* 03:%%h:00"), "{timer}");
}

/// Item 10: over plain http, a session token travels in clear with every request: the warning
/// says so (and never prints the token).
#[test]
fn plain_http_names_the_session_token() {
    let s3 = FaultyS3::start(Fault::None);
    let mut env = env(&s3);
    env.push(("AWS_SESSION_TOKEN", "tok-SECRET-123".to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = etcdops(&["snapshot", "ls", "s3://bkt/p/"], &env);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("plain http") && r.stderr.contains("session token"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("tok-SECRET-123"));
    let r = run(&["snapshot", "ls", "s3://bkt/p/"], &s3);
    assert!(!r.stderr.contains("session token"), "{}", r.stderr);

    // A web identity exchanged with an STS endpoint over http: said before the token leaves.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "web-identity-SECRET").unwrap();
    let token_s = s(&token);
    let sts = s3.endpoint();
    let r = etcdops(
        &["snapshot", "ls", "s3://bkt/p/"],
        &[
            ("AWS_ENDPOINT_URL", sts.as_str()),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_s.as_str()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/etcd-backup"),
            ("AWS_ENDPOINT_URL_STS", sts.as_str()),
        ],
    );
    assert!(
        r.stderr.contains("AWS_ENDPOINT_URL_STS") && r.stderr.contains("travel in clear"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("web-identity-SECRET"), "{}", r.stderr);
}

/// Item 11: `ls`, `get` and `diff` refuse a snapshot whose page header names another page, as
/// `status` does (they read "0 keys at revision 0" and exited 0 before).
#[test]
fn ls_get_and_diff_refuse_what_status_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let good = crate::common::repo().join("examples/k8s-small.db");
    let mut bytes = std::fs::read(&good).unwrap();
    // Page 3's header names page 4.
    bytes[3 * 4096..3 * 4096 + 8].copy_from_slice(&4u64.to_le_bytes());
    let bad = dir.path().join("bad.db");
    std::fs::write(&bad, &bytes).unwrap();
    let bad = s(&bad);
    let status = etcdops(&["snapshot", "status", &bad, "--skip-hash-check"], &[]);
    assert_eq!(status.code, 2, "{status:?}");
    for argv in [
        vec!["snapshot", "ls", bad.as_str()],
        vec![
            "snapshot",
            "get",
            bad.as_str(),
            "/registry/namespaces/default",
        ],
        vec!["snapshot", "diff", good.to_str().unwrap(), bad.as_str()],
    ] {
        let r = etcdops(&argv, &[]);
        assert_eq!(r.code, 2, "{argv:?}: {r:?}");
        assert_eq!(r.error_lines(), 1, "{r:?}");
        assert!(r.stderr.contains("integrity check failed"), "{}", r.stderr);
    }
}

/// Item 13: verify's metadata check compares what the sidecar says with the snapshot: a
/// revision past the snapshot's, a cluster ID that is none, a member that is not in it.
#[test]
fn verify_checks_what_the_sidecar_says() {
    let (_d, dir, newest) = saved(0);
    let file = dir.join(&newest);
    let sidecar = dir.join(format!("{newest}.json"));
    let good: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    let r = etcdops(&["snapshot", "verify", &s(&file)], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    // The member saved from is there, with a second one the snapshot does not hold.
    let mut more = good["members"].clone();
    let mut other = more[0].clone();
    other["id"] = serde_json::json!("abc123");
    other["name"] = serde_json::json!("stranger");
    more.as_array_mut().unwrap().push(other);
    for (field, value, says) in [
        (
            "revision",
            serde_json::json!(1_000_000_000),
            "the snapshot ends at revision",
        ),
        ("revision", serde_json::json!(-3), "is not a revision"),
        (
            "cluster_id",
            serde_json::json!("banana"),
            "not an etcd cluster ID",
        ),
        (
            "member_id",
            serde_json::json!("abc123"),
            "is not a member in the snapshot",
        ),
        ("members", more, "its member list is not the snapshot's"),
        (
            "members",
            serde_json::json!([]),
            "its member list is not the snapshot's",
        ),
    ] {
        let mut meta = good.clone();
        meta[field] = value;
        std::fs::write(&sidecar, serde_json::to_vec(&meta).unwrap()).unwrap();
        let r = etcdops(&["snapshot", "verify", &s(&file)], &[]);
        assert_eq!(r.code, 1, "{field}: {r:?}");
        assert!(
            r.stdout
                .lines()
                .any(|l| l.contains("metadata") && l.contains(says)),
            "{field}: {}",
            r.stdout
        );
    }
}

/// Item 14: the restore's hint names this node's manifest only when it exists.
#[test]
fn the_restore_hint_names_only_a_manifest_that_exists() {
    let dir = tempfile::tempdir().unwrap();
    let snap = s(&crate::common::repo().join("examples/k8s-small.db"));
    let manifest = dir.path().join("etcd.yaml");
    let m = s(&manifest);
    let restore = |n: &str| {
        let target = s(&dir.path().join(n));
        etcdops(
            &["snapshot", "restore", &snap, "--data-dir", &target],
            &[("ETCDOPS_MANIFEST", m.as_str())],
        )
    };
    let r = restore("a");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("etcd manifest"), "{}", r.stderr);
    crate::common::cluster::write_kubeadm_manifest(&shared(Version::V3_5_1, 1), 0, &manifest);
    let r = restore("b");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(&format!("etcd manifest ({m})")),
        "{}",
        r.stderr
    );
}
