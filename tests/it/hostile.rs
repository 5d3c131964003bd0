//! What a broken or hostile object store answers, and what stray files in a PKI directory do:
//! each bound of docs/reliability.md ("Bounded resources") against a faulty S3 server
//! ([`FaultyS3`]) or a planted file. The real-server tests are in `remote`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::cluster::{shared, Cluster, Version};
use crate::common::faulty_s3::{Fault, FaultyS3};
use crate::common::older_copies;
use crate::common::run::{args, etcdops};

fn s(p: &Path) -> String {
    p.display().to_string()
}

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
    *s3.sidecar_delay.lock().unwrap() = Duration::from_millis(300);
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
