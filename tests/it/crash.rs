//! The crash-safety matrix (docs/reliability.md): every command that writes, SIGKILLed at 20
//! pseudo-random points of its run, with the invariant checked after each kill — the target is
//! absent or complete and valid, the input unchanged, no temporary left after the next run —
//! and the same command on a full disk (a small tmpfs), into a read-only target, under
//! `ulimit -f` where it writes locally, and beside a concurrent second writer. cert-renew's rows
//! are in cert_renew.rs, the save's stall and server-kill cases in snapshot_save.rs.

use crate::common::s;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::common::cluster::{
    free_port, shared, write_kubeadm_manifest, Cluster, Kv, Lease, Version,
};
use crate::common::run::{
    etcdops, etcdops_spawn, etcdops_spawn_env, in_private_mounts, read_only_mount, send_signal,
    signal_at_random_points, wait_run, Run,
};
use crate::common::s3::{S3Server, READER_KEY, READER_SECRET};
use crate::common::{age_identity, older_copies, older_name, temporaries};

const ROUNDS: u64 = 20;

/// SIGKILL a fresh run `ROUNDS` times at pseudo-random points (see
/// [`signal_at_random_points`]) and check the invariant after each kill; at least a quarter of
/// the runs must be cut short.
fn kill_at_random_points(
    seed: u64,
    span: Duration,
    spawn: impl FnMut(u64) -> Child,
    mut check: impl FnMut(u64),
) {
    let killed = signal_at_random_points(seed, span, ROUNDS, "KILL", spawn, |round, r| {
        // Ended by the signal (no exit code), ran to its end, or (a save) found its generated
        // name taken by the previous round in the same second: nothing else is expected.
        assert!(
            r.code == -1 || r.code == 0 || (r.code == 2 && r.stderr.contains("same second")),
            "round {round}: {r:?}"
        );
        check(round);
    });
    assert!(
        killed >= ROUNDS as usize / 4,
        "only {killed} of {ROUNDS} runs were cut short"
    );
}

/// `env` with the keys of the identity that may only read and list.
fn reader_env<'a>(env: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut reader: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"))
        .copied()
        .collect();
    reader.extend([
        ("AWS_ACCESS_KEY_ID", READER_KEY),
        ("AWS_SECRET_ACCESS_KEY", READER_SECRET),
    ]);
    reader
}

/// How many snapshots a `prune -w json` run reports as `refused`.
fn refused_in(r: &Run) -> usize {
    r.json()["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "refused")
        .count()
}

/// A clean refusal: exit 2 and one `error:` line.
fn assert_refused(r: &Run, what: &str) {
    assert_eq!(r.code, 2, "{what}: {r:?}");
    assert_eq!(r.error_lines(), 1, "{what}: {}", r.stderr);
}

/// Sleep into the next wall-clock second: a save then gets a name no earlier round took.
fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()) + 1_000_000,
    ));
}

/// The same command twice at the same moment; both results.
fn two_at_once<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> (Run, Run) {
    let (x, y) = (etcdops_spawn_env(args, env), etcdops_spawn_env(args, env));
    let now = Instant::now();
    (
        wait_run(x, now, Duration::from_secs(60)),
        wait_run(y, now, Duration::from_secs(60)),
    )
}

/// `snapshot status` accepts the file: a complete snapshot whose trailer matches.
fn assert_complete(file: &Path, what: &str) {
    let r = etcdops(&["snapshot", "status", &s(file)], &[]);
    assert_eq!(
        r.code,
        0,
        "{what}: {} is not a complete snapshot: {r:?}",
        file.display()
    );
}

fn conn(c: &Cluster) -> Vec<String> {
    let mut v = vec!["--endpoints".to_string(), c.members[0].client_url.clone()];
    v.extend(c.tls_args());
    v
}

fn argv<'a>(head: &[&'a str], tail: &'a [String]) -> Vec<&'a str> {
    let mut v = head.to_vec();
    v.extend(tail.iter().map(String::as_str));
    v
}

/// A shell word.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What `ls -A DIR` printed after the `---` line a script echoed.
fn listed_after_marker(r: &Run) -> Vec<String> {
    r.stdout
        .split_once("---\n")
        .map(|(_, rest)| rest.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn local_save_killed_full_disk_read_only_and_two_at_once() {
    let c = shared(Version::V3_5_1, 1);
    let conn = conn(&c);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.db");
    let f = s(&file);

    // An uninterrupted save: the old file every killed save must leave valid (or replace whole).
    let start = Instant::now();
    let r = etcdops(&argv(&["snapshot", "save", &f], &conn), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let span = start.elapsed();
    kill_at_random_points(
        1,
        span,
        |_| etcdops_spawn(&argv(&["snapshot", "save", &f], &conn)),
        |round| assert_complete(&file, &format!("FILE, round {round}")),
    );

    // DIR/: every generated file is complete, and every sidecar names a file that exists.
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let dest = format!("{}/", s(&backups));
    kill_at_random_points(
        2,
        span,
        |_| {
            next_second();
            etcdops_spawn(&argv(&["snapshot", "save", &dest], &conn))
        },
        |round| {
            for e in std::fs::read_dir(&backups).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(db) = name.strip_suffix(".json") {
                    assert!(
                        backups.join(db).exists(),
                        "round {round}: {name} names nothing"
                    );
                } else if !name.starts_with('.') {
                    assert_complete(&e.path(), &format!("DIR/, round {round}"));
                }
            }
        },
    );
    // The next runs sweep what the killed ones left.
    std::thread::sleep(Duration::from_millis(1100));
    for d in [&f, &dest] {
        let r = etcdops(&argv(&["snapshot", "save", d], &conn), &[]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );
    assert!(
        temporaries(&backups).is_empty(),
        "{:?}",
        temporaries(&backups)
    );

    // A second writer at the same moment: into one FILE both finish (each renames a whole file
    // over it); into one DIR/ they get different names, or the later is refused.
    let both = |dest: &str| two_at_once(&argv(&["snapshot", "save", dest], &conn), &[]);
    let (a, b) = both(&f);
    assert_eq!((a.code, b.code), (0, 0), "{a:?} {b:?}");
    assert_complete(&file, "two writers");
    std::thread::sleep(Duration::from_millis(1100));
    let count_db = || {
        std::fs::read_dir(&backups)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".db"))
            .count()
    };
    let before = count_db();
    let (a, b) = both(&dest);
    assert_eq!(
        count_db() - before,
        usize::from(a.code == 0) + usize::from(b.code == 0),
        "one new snapshot per successful save: {a:?} {b:?}"
    );
    assert!(a.code == 0 || b.code == 0, "{a:?} {b:?}");
    for r in [&a, &b] {
        assert!(
            r.code == 0
                || r.stderr
                    .contains("another save of this member in the same second?"),
            "{r:?}"
        );
    }
    for e in std::fs::read_dir(&backups).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".db") {
            let v = etcdops(&["snapshot", "verify", &s(&e.path())], &[]);
            assert_eq!(v.code, 0, "{name}: {v:?}");
        }
    }
    assert!(temporaries(dir.path()).is_empty());
    assert!(temporaries(&backups).is_empty());

    // A full disk (an 8 KiB tmpfs) and a read-only target: exit 2, one line, nothing written.
    let save = conn.iter().map(|a| q(a)).collect::<Vec<_>>().join(" ");
    let target = dir.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    let t = s(&target);
    for (what, mount) in [
        ("full disk", format!("mount -t tmpfs -o size=8k tmpfs {t}")),
        ("read-only", read_only_mount(&t)),
    ] {
        for dest in [format!("{t}/snap.db"), format!("{t}/")] {
            let r = in_private_mounts(
                &format!(
                    "{mount} || exit 99; etcdops snapshot save {} {save}; rc=$?; echo ---; ls -A {t}; exit $rc",
                    q(&dest)
                ),
                &[],
            );
            assert_refused(&r, &format!("{what}, {dest}"));
            assert!(listed_after_marker(&r).is_empty(), "{what}: left {r:?}");
        }
    }
}

/// The shared cluster's keyspace, and a local snapshot of it.
fn snapshot_of(c: &Lease, dir: &Path) -> (PathBuf, Vec<Kv>) {
    let file = dir.join("source.db");
    let r = etcdops(&argv(&["snapshot", "save", &s(&file)], &conn(c)), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    (file, c.client(None).dump())
}

/// A complete restored data dir: the 64 MB WAL segment and a snapshot `status` accepts.
fn assert_restored(data: &Path, what: &str) {
    let wal = data.join("member/wal/0000000000000000-0000000000000000.wal");
    assert_eq!(
        std::fs::metadata(&wal).map(|m| m.len()).ok(),
        Some(64_000_000),
        "{what}: incomplete data dir {}",
        data.display()
    );
    assert_complete_db(&data.join("member/snap/db"), what);
}

fn assert_complete_db(db: &Path, what: &str) {
    // A member's db has no trailer: status reads it with the trailer check off.
    let r = etcdops(&["snapshot", "status", &s(db), "--skip-hash-check"], &[]);
    assert_eq!(r.code, 0, "{what}: {} does not read: {r:?}", db.display());
}

/// Boot a restored member on etcd 3.5.1, then (a patch upgrade) on 3.5.30, and compare its
/// keyspace with `dump` each time.
fn boots_with(data: &Path, name: &str, peer: &str, dump: &[Kv]) {
    for version in Version::BOTH_3_5 {
        let booted = Cluster::boot(
            version,
            &[(name.to_string(), data.to_path_buf(), peer.to_string())],
        );
        assert!(
            booted.client(None).dump() == dump,
            "{} boots on {version:?} with another keyspace",
            data.display()
        );
    }
}

fn restore_args(source: &str, data: &Path, peer: &str) -> Vec<String> {
    vec![
        "snapshot".into(),
        "restore".into(),
        source.into(),
        "--data-dir".into(),
        s(data),
        "--name".into(),
        "r".into(),
        "--initial-advertise-peer-urls".into(),
        peer.into(),
        "--initial-cluster".into(),
        format!("r={peer}"),
    ]
}

/// Kill restores of `source` (extra flags and environment for s3://) at 20 points; each data
/// dir is absent or complete, the complete ones boot (the first three; all are checked on
/// disk), a rerun finishes the absent ones, and nothing of ours is left beside them.
fn restores_killed(seed: u64, source: &str, extra: &[String], env: &[(&str, &str)], dump: &[Kv]) {
    let dir = tempfile::tempdir().unwrap();
    let peers: Vec<String> = (0..=100)
        .map(|_| format!("https://127.0.0.1:{}", free_port()))
        .collect();
    let peer = |round: u64| peers[round.min(100) as usize].clone();
    let args = |round: u64| {
        let mut a = restore_args(
            source,
            &dir.path().join(format!("r{round}.etcd")),
            &peer(round),
        );
        a.extend(extra.iter().cloned());
        a
    };
    let start = Instant::now();
    let a = args(99);
    let r = etcdops(&a.iter().map(String::as_str).collect::<Vec<_>>(), env);
    assert_eq!(r.code, 0, "{r:?}");
    let span = start.elapsed();
    let mut booted = 0;
    kill_at_random_points(
        seed,
        span,
        |round| etcdops_spawn_env(&args(round), env),
        |round| {
            let data = dir.path().join(format!("r{round}.etcd"));
            if data.exists() {
                assert_restored(&data, &format!("{source}, round {round}"));
                if booted < 3 {
                    boots_with(&data, "r", &peer(round), dump);
                    booted += 1;
                }
            } else {
                let a = args(round);
                let r = etcdops(&a.iter().map(String::as_str).collect::<Vec<_>>(), env);
                assert_eq!(r.code, 0, "rerun of round {round}: {r:?}");
                assert_restored(&data, &format!("{source}, rerun {round}"));
            }
        },
    );
    let a = args(100);
    let r = etcdops(&a.iter().map(String::as_str).collect::<Vec<_>>(), env);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );
}

/// Restore on a full disk, into a read-only parent, and two restores into one data dir.
fn restore_conditions(source: &str, extra: &[String], env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let t = s(&mnt);
    let peer = "https://127.0.0.1:2380";
    let mut a = restore_args(source, &mnt.join("r.etcd"), peer);
    a.extend(extra.iter().cloned());
    let words = a.iter().map(|w| q(w)).collect::<Vec<_>>().join(" ");
    for (what, mount) in [
        // Room for the decoded snapshot but not for the 64 MB WAL; then not even for that.
        ("full disk", format!("mount -t tmpfs -o size=16m tmpfs {t}")),
        (
            "full disk, tiny",
            format!("mount -t tmpfs -o size=8k tmpfs {t}"),
        ),
        ("read-only", read_only_mount(&t)),
    ] {
        let r = in_private_mounts(
            &format!("{mount} || exit 99; etcdops {words}; rc=$?; echo ---; ls -A {t}; exit $rc"),
            env,
        );
        assert_refused(&r, what);
        assert!(listed_after_marker(&r).is_empty(), "{what}: left {r:?}");
    }
    // Two at once into one data dir: one builds it, the other is refused, the dir is whole.
    let data = dir.path().join("both.etcd");
    let mut a = restore_args(source, &data, peer);
    a.extend(extra.iter().cloned());
    let (x, y) = two_at_once(&a, env);
    let mut codes = [x.code, y.code];
    codes.sort();
    assert_eq!(codes, [0, 2], "{x:?} {y:?}");
    assert_restored(&data, "two writers");
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );
}

#[test]
fn restore_killed_full_disk_read_only_and_two_at_once() {
    let c = shared(Version::V3_5_1, 1);
    let dir = tempfile::tempdir().unwrap();
    let (file, dump) = snapshot_of(&c, dir.path());
    drop(c);
    let snap = s(&file);
    restores_killed(3, &snap, &[], &[], &dump);
    restore_conditions(&snap, &[], &[]);
    // The input is never touched.
    assert_complete(&file, "the restored snapshot");
}

#[test]
fn restore_from_s3_killed_full_disk_read_only_and_two_at_once() {
    let server = S3Server::shared();
    server.bucket("crash-restore");
    let c = shared(Version::V3_5_1, 1);
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = age_identity(dir.path());
    let env = server.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut a = vec![
        "snapshot",
        "save",
        "s3://crash-restore/p/",
        "--compress",
        "zstd",
        "--encrypt-to",
        &public,
        "-w",
        "json",
    ];
    let tail: Vec<String> = conn(&c).into_iter().chain(server.args()).collect();
    a.extend(tail.iter().map(String::as_str));
    let r = etcdops(&a, &env);
    assert_eq!(r.code, 0, "{r:?}");
    let source = r.json()["file"].as_str().unwrap().to_string();
    let dump = c.client(None).dump();
    drop(c);
    let mut extra = vec!["--identity".to_string(), s(&key)];
    extra.extend(server.args());
    restores_killed(4, &source, &extra, &env, &dump);
    restore_conditions(&source, &extra, &env);
    let v = etcdops(&argv(&["snapshot", "verify", &source], &extra), &env);
    assert_eq!(v.code, 0, "the object is unchanged: {v:?}");
}

/// A kubeadm node in a temporary directory: a snapshot of the shared cluster, and
/// `manifests/etcd.yaml` for its member. Returns the directory, the snapshot, the manifests dir.
fn kubeadm_node() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let c = shared(Version::V3_5_1, 1);
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = snapshot_of(&c, dir.path());
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    write_kubeadm_manifest(&c, 0, &manifests.join("etcd.yaml"));
    (dir, file, manifests)
}

#[test]
fn update_manifest_killed_leaves_the_old_manifest_or_the_new_one_with_its_data_dir() {
    let (dir, file, manifests) = kubeadm_node();
    let manifest = manifests.join("etcd.yaml");
    let original = std::fs::read_to_string(&manifest).unwrap();
    let args = |round: u64| {
        vec![
            "snapshot".to_string(),
            "restore".into(),
            s(&file),
            "--from-manifest".into(),
            s(&manifest),
            "--update-manifest".into(),
            "--data-dir".into(),
            s(&dir.path().join(format!("new{round}.etcd"))),
        ]
    };
    let run = |round: u64| {
        let a = args(round);
        etcdops(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    };
    let start = Instant::now();
    let r = run(99);
    assert_eq!(r.code, 0, "{r:?}");
    let span = start.elapsed();
    kill_at_random_points(
        5,
        span,
        |round| {
            std::fs::write(&manifest, &original).unwrap();
            let a = args(round);
            etcdops_spawn(&a.iter().map(String::as_str).collect::<Vec<_>>())
        },
        |round| {
            let text = std::fs::read_to_string(&manifest).unwrap();
            let new = dir.path().join(format!("new{round}.etcd"));
            let r = etcdops(&["manifest-read", "--manifest", &s(&manifest)], &[]);
            assert_eq!(
                r.code, 0,
                "round {round}: the manifest does not read: {r:?}"
            );
            if text == original {
                return;
            }
            // Only the data dir changed, and it is complete.
            assert_eq!(
                text,
                original.replace(
                    &format!("path: {}", original_data_dir(&original)),
                    &format!("path: {}", new.display())
                ),
                "round {round}"
            );
            // (Its boot is the restore's, proven above; this member's peer URL is in use.)
            assert_restored(&new, &format!("round {round}"));
        },
    );
    // The next run sweeps what the killed ones left beside the manifest and the data dirs.
    std::fs::write(&manifest, &original).unwrap();
    assert_eq!(run(100).code, 0);
    assert!(
        temporaries(&manifests).is_empty(),
        "{:?}",
        temporaries(&manifests)
    );
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );

    // The manifest's directory read-only: refused before anything is restored.
    let m = s(&manifests);
    std::fs::write(&manifest, &original).unwrap();
    let words = args(101).iter().map(|w| q(w)).collect::<Vec<_>>().join(" ");
    let r = in_private_mounts(
        &format!("{} || exit 99; etcdops {words}", read_only_mount(&m)),
        &[],
    );
    assert_refused(&r, "read-only manifests dir");
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), original);
    assert!(
        !dir.path().join("new101.etcd").exists(),
        "restored although the manifest cannot change"
    );
}

/// SIGTERM (which, unlike SIGKILL, the command sees) late in `restore --update-manifest`, where
/// the data dir and then the manifest are renamed: the handler waits for that sequence, so
/// each run ends with the old manifest and no new data dir, or the new manifest and its
/// complete data dir; never one without the other. Exit 0, or 2 with one line.
#[test]
fn a_terminated_update_manifest_renames_both_or_neither() {
    let (dir, file, manifests) = kubeadm_node();
    let manifest = manifests.join("etcd.yaml");
    let original = std::fs::read_to_string(&manifest).unwrap();
    let new = |round: u64| dir.path().join(format!("new{round}.etcd"));
    let args = |round: u64| {
        [
            "snapshot",
            "restore",
            &s(&file),
            "--from-manifest",
            &s(&manifest),
            "--update-manifest",
            "--data-dir",
            &s(&new(round)),
        ]
        .map(str::to_string)
    };
    // The shortest of three uninterrupted runs (the first is cold).
    let span = (0..3)
        .map(|i| {
            std::fs::write(&manifest, &original).unwrap();
            let a = args(90 + i);
            let start = Instant::now();
            let r = etcdops(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
            assert_eq!(r.code, 0, "{r:?}");
            start.elapsed().as_micros() as u64
        })
        .min()
        .unwrap();
    let mut late = 0;
    let interrupted = signal_at_random_points(
        17,
        Duration::from_micros(span),
        ROUNDS,
        "TERM",
        |round| {
            std::fs::write(&manifest, &original).unwrap();
            etcdops_spawn_env(&args(round), &[])
        },
        |round, r| {
            let text = std::fs::read_to_string(&manifest).unwrap();
            match r.code {
                0 => {}
                2 => {
                    assert_refused(r, &format!("round {round}"));
                    assert!(r.stderr.contains("SIGTERM"), "round {round}: {r:?}");
                    late += usize::from(text != original);
                }
                // Signalled before its handler was installed, before it wrote anything.
                code => assert_eq!(code, -1, "round {round}: {r:?}"),
            }
            if text == original {
                assert!(
                    !new(round).exists(),
                    "round {round}: a data dir the manifest does not name: {r:?}"
                );
            } else {
                assert_eq!(
                    text,
                    original.replace(
                        &format!("path: {}", original_data_dir(&original)),
                        &format!("path: {}", new(round).display())
                    ),
                    "round {round}"
                );
                assert_restored(&new(round), &format!("round {round}"));
            }
            for d in [&manifests, dir.path()] {
                let left = temporaries(d);
                assert!(left.is_empty(), "round {round}: {left:?} {r:?}");
            }
        },
    );
    // The signal reached most runs before their end; some once the renames had begun, which
    // then finished before the exit.
    eprintln!("crash: {late} of {ROUNDS} runs signalled once the renames had begun");
    assert!(
        interrupted >= 5,
        "only {interrupted} of {ROUNDS} runs interrupted"
    );
}

/// The data dir the kubeadm manifest's hostPath names (the one after `etcd-data`'s hostPath).
fn original_data_dir(manifest: &str) -> String {
    manifest
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("path: "))
        .unwrap()
        .to_string()
}

#[test]
fn save_to_s3_killed_read_only_bucket_and_two_at_once() {
    let server = S3Server::shared();
    let bucket = server.bucket("crash-save");
    let c = shared(Version::V3_5_1, 1);
    let env = server.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tail: Vec<String> = conn(&c).into_iter().chain(server.args()).collect();
    let dest = "s3://crash-save/p/";
    let save = argv(&["snapshot", "save", dest, "--compress", "zstd"], &tail);
    // The first write into a new bucket is slow on this server: time the second.
    let r = etcdops(&save, &env);
    assert_eq!(r.code, 0, "{r:?}");
    next_second();
    let start = Instant::now();
    let r = etcdops(&save, &env);
    assert_eq!(r.code, 0, "{r:?}");
    let span = start.elapsed();
    // Every object under the prefix is whole: with its sidecar it verifies; without one (killed
    // between the two) it still decodes to a complete snapshot.
    let mut seen = std::collections::BTreeSet::new();
    let scratch = tempfile::tempdir().unwrap();
    let mut check_all = |what: &str| {
        let keys = server.keys(&bucket, "p/");
        for k in keys.iter().filter(|k| k.ends_with(".db.zst")) {
            if !seen.insert(k.clone()) {
                continue;
            }
            let url = format!("s3://{bucket}/{k}");
            if keys.contains(&format!("{k}.json")) {
                let v = etcdops(&argv(&["snapshot", "verify", &url], &server.args()), &env);
                assert_eq!(v.code, 0, "{what}: {url}: {v:?}");
            } else {
                let local = scratch.path().join("fetched.db.zst");
                server.aws_ok(&["s3", "cp", &url, &s(&local)]);
                let plain = scratch.path().join("fetched.db");
                let _ = std::fs::remove_file(&plain);
                let ok = std::process::Command::new("zstd")
                    .args(["-d", "-q", "-o", &s(&plain), &s(&local)])
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "{what}: {url} does not decompress");
                assert_complete(&plain, what);
            }
        }
        for k in keys.iter().filter_map(|k| k.strip_suffix(".json")) {
            assert!(
                keys.contains(&k.to_string()),
                "{what}: {k}.json names nothing"
            );
        }
    };
    kill_at_random_points(
        6,
        span,
        |_| {
            next_second();
            etcdops_spawn_env(&save, &env)
        },
        |round| check_all(&format!("round {round}")),
    );
    // The next save aborts the uploads the killed ones left.
    std::thread::sleep(Duration::from_millis(1100));
    let r = etcdops(&save, &env);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        server.uploads(&bucket).is_empty(),
        "{:?}",
        server.uploads(&bucket)
    );
    check_all("after the next save");

    // Two at once: one object each, or the later refused; nothing partial either way.
    std::thread::sleep(Duration::from_millis(1100));
    let (x, y) = two_at_once(&save, &env);
    assert!(x.code == 0 || y.code == 0, "{x:?} {y:?}");
    for r in [&x, &y] {
        assert!(r.code == 0 || r.error_lines() == 1, "{r:?}");
    }
    check_all("two writers");

    // A bucket these credentials may only read: exit 2, one line, nothing written.
    let before = server.keys(&bucket, "p/");
    let reader = reader_env(&env);
    let r = etcdops(&save, &reader);
    assert_refused(&r, "read-only credentials");
    assert_eq!(server.keys(&bucket, "p/"), before);
    assert!(server.uploads(&bucket).is_empty());

    // Nothing is written locally: a save to S3 works with `ulimit -f 0`.
    std::thread::sleep(Duration::from_millis(1100));
    let words = save.iter().map(|w| q(w)).collect::<Vec<_>>().join(" ");
    let envs: String = env.iter().map(|(k, v)| format!("{k}={} ", q(v))).collect();
    let out = std::process::Command::new("/bin/sh")
        .env_clear()
        .arg("-c")
        .arg(format!(
            "ulimit -f 0 && exec env {envs}{} {words}",
            env!("CARGO_BIN_EXE_etcdops")
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prune_killed_read_only_and_two_at_once() {
    let c = shared(Version::V3_5_1, 1);
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("b");
    std::fs::create_dir(&backups).unwrap();
    let dest = format!("{}/", s(&backups));
    let r = etcdops(
        &argv(&["snapshot", "save", &dest, "-w", "json"], &conn(&c)),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    drop(c);
    let made = PathBuf::from(r.json()["file"].as_str().unwrap());
    let newest = made.file_name().unwrap().to_string_lossy().into_owned();
    let sidecar = PathBuf::from(format!("{}.json", s(&made)));
    // 60 older saves of the same member (missing ones again before each run).
    let populate = || older_copies(&made, &sidecar, &backups, 60);
    let prune = ["snapshot", "prune", dest.as_str(), "--keep-last", "1"];
    populate();
    let start = Instant::now();
    let r = etcdops(&prune, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let span = start.elapsed();
    let only_newest = || {
        let left: Vec<String> = std::fs::read_dir(&backups)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let mut left = left;
        left.sort();
        assert_eq!(left, vec![newest.clone(), format!("{newest}.json")]);
    };
    only_newest();
    kill_at_random_points(
        7,
        span,
        |_| {
            populate();
            etcdops_spawn(&prune)
        },
        |round| {
            // No sidecar names a deleted snapshot; the newest is untouched.
            for e in std::fs::read_dir(&backups).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(db) = name.strip_suffix(".json") {
                    assert!(
                        backups.join(db).exists(),
                        "round {round}: {name} names nothing"
                    );
                }
            }
            assert_complete(&made, &format!("round {round}"));
        },
    );
    // A kill between a sidecar's delete and its object's leaves an object no prune touches
    // (docs/reliability.md); with the sidecars back, the next prune finishes the job.
    populate();
    assert_eq!(etcdops(&prune, &[]).code, 0);
    only_newest();

    // Two at once: both finish, and the end state is the same.
    populate();
    let (x, y) = two_at_once(&prune, &[]);
    assert_eq!((x.code, y.code), (0, 0), "{x:?} {y:?}");
    only_newest();

    // A read-only directory: every delete refused and said so, exit 2, nothing removed.
    populate();
    let b = s(&backups);
    let r = in_private_mounts(
        &format!(
            "{} || exit 99; etcdops snapshot prune {b}/ --keep-last 1 -w json",
            read_only_mount(&b)
        ),
        &[],
    );
    assert_refused(&r, "read-only backup dir");
    let refused = refused_in(&r);
    assert_eq!(refused, 60, "{r:?}");
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 122);
}

/// `prune s3://`: the same kills, a read-only identity and two prunes at once. After every
/// kill each sidecar names an object and the newest snapshot is whole; an object whose sidecar
/// a killed run had deleted is trusted again once its sidecar is back (as `populate` does).
#[test]
fn prune_from_s3_killed_read_only_and_two_at_once() {
    let server = S3Server::shared();
    let bucket = server.bucket("crash-prune");
    let env = server.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dest = format!("s3://{bucket}/p/");
    let c = shared(Version::V3_5_1, 1);
    let tail: Vec<String> = conn(&c).into_iter().chain(server.args()).collect();
    let r = etcdops(
        &argv(&["snapshot", "save", &dest, "-w", "json"], &tail),
        &env,
    );
    assert_eq!(r.code, 0, "{r:?}");
    drop(c);
    let file = r.json()["file"].as_str().unwrap().to_string();
    let newest = file.rsplit('/').next().unwrap().to_string();
    // 30 older snapshots of the same member, staged locally and synced up before each run:
    // what is missing is uploaded again.
    let dir = tempfile::tempdir().unwrap();
    let (made, sidecar) = (dir.path().join("made"), dir.path().join("made.json"));
    server.aws_ok(&["s3", "cp", &file, &s(&made)]);
    server.aws_ok(&["s3", "cp", &format!("{file}.json"), &s(&sidecar)]);
    let staged = dir.path().join("staged");
    std::fs::create_dir(&staged).unwrap();
    older_copies(&made, &sidecar, &staged, 30);
    let populate = || {
        server.aws_ok(&["s3", "sync", &s(&staged), &dest]);
        assert_eq!(server.keys(&bucket, "p/").len(), 62);
    };
    let only_newest = || {
        assert_eq!(
            server.keys(&bucket, "p/"),
            vec![format!("p/{newest}"), format!("p/{newest}.json")]
        );
    };
    let tail = server.args();
    let prune = argv(&["snapshot", "prune", &dest, "--keep-last", "1"], &tail);
    populate();
    let start = Instant::now();
    let r = etcdops(&prune, &env);
    assert_eq!(r.code, 0, "{r:?}");
    let span = start.elapsed();
    only_newest();
    kill_at_random_points(
        8,
        span,
        |_| {
            populate();
            etcdops_spawn_env(&prune, &env)
        },
        |round| {
            let keys = server.keys(&bucket, "p/");
            for k in keys.iter().filter_map(|k| k.strip_suffix(".json")) {
                assert!(
                    keys.iter().any(|o| o == k),
                    "round {round}: {k}.json names nothing"
                );
            }
            assert!(
                keys.contains(&format!("p/{newest}")),
                "round {round}: the newest is gone"
            );
        },
    );
    let verify = argv(&["snapshot", "verify", &file], &tail);
    let v = etcdops(&verify, &env);
    assert_eq!(v.code, 0, "{v:?}");
    // What a kill between a sidecar's delete and its object's leaves, made on purpose: `ls`
    // names it, prune leaves it; its sidecar back, the next prune deletes it.
    populate();
    let orphan = older_name(&newest, 0);
    server.aws_ok(&["s3", "rm", &format!("{dest}{orphan}.json")]);
    let ls = etcdops(&argv(&["snapshot", "ls", &dest, "-w", "json"], &tail), &env);
    let listed = ls.json()["snapshots"].as_array().unwrap().clone();
    let entry = listed
        .iter()
        .find(|e| e["name"] == orphan.as_str())
        .unwrap();
    assert_eq!(entry["verified"], false, "{entry}");
    assert!(
        entry["problem"]
            .as_str()
            .unwrap()
            .contains("no metadata sidecar (an interrupted save or prune, or not ours)"),
        "{entry}"
    );
    assert_eq!(etcdops(&prune, &env).code, 0);
    assert_eq!(
        server.keys(&bucket, "p/"),
        vec![
            format!("p/{orphan}"),
            format!("p/{newest}"),
            format!("p/{newest}.json")
        ]
    );
    populate();
    assert_eq!(etcdops(&prune, &env).code, 0);
    only_newest();

    // Two at once: both finish (a delete of what the other deleted is no error on S3).
    populate();
    let (x, y) = two_at_once(&prune, &env);
    assert_eq!((x.code, y.code), (0, 0), "{x:?} {y:?}");
    only_newest();

    // An identity that may only read: every delete refused and said so, exit 2, nothing gone.
    populate();
    let reader = reader_env(&env);
    let json = argv(&["-w", "json"], &[]);
    let r = etcdops(&[prune.clone(), json].concat(), &reader);
    assert_refused(&r, "read-only identity");
    let refused = refused_in(&r);
    assert_eq!(refused, 30, "{r:?}");
    assert_eq!(server.keys(&bucket, "p/").len(), 62);
    assert_eq!(etcdops(&verify, &env).code, 0);
}

/// Ctrl-C while an offline command decodes an encrypted snapshot: exit 2, and the plaintext
/// copy in TMPDIR is gone.
#[test]
fn an_interrupted_decode_leaves_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // A large, slow-to-decode object: 64 MiB of noise through zstd -19 would be slow to make;
    // age over 256 MiB of zeros decodes in about a second.
    let (key, _) = age_identity(dir.path());
    let obj = dir.path().join("big.db.age");
    let ok = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "head -c 268435456 /dev/zero | age -e -i {} -o {}",
            q(&s(&key)),
            q(&s(&obj))
        ))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    for cmd in [["snapshot", "status"], ["snapshot", "ls"]] {
        let start = Instant::now();
        let (o, k, t) = (s(&obj), s(&key), s(&tmp));
        let mut child = etcdops_spawn_env(
            &[cmd[0], cmd[1], o.as_str(), "--identity", k.as_str()],
            &[("TMPDIR", t.as_str())],
        );
        while std::fs::read_dir(&tmp).unwrap().count() == 0
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "{cmd:?} ended before it was interrupted"
        );
        send_signal(child.id(), "INT");
        let r = wait_run(child, start, Duration::from_secs(20));
        assert_eq!(r.code, 2, "{cmd:?}: {r:?}");
        assert!(r.stderr.contains("SIGINT"), "{}", r.stderr);
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{cmd:?} left {left:?} in TMPDIR");
    }
    // A restore decodes beside the data dir; interrupted, it says what stays (#28 item 17).
    let place = dir.path().join("place");
    std::fs::create_dir(&place).unwrap();
    let data = place.join("restored");
    let start = Instant::now();
    let (o, k, d) = (s(&obj), s(&key), s(&data));
    let mut child = etcdops_spawn_env(
        &[
            "snapshot",
            "restore",
            o.as_str(),
            "--identity",
            k.as_str(),
            "--data-dir",
            d.as_str(),
        ],
        &[],
    );
    while std::fs::read_dir(&place).unwrap().count() == 0
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "restore ended before it was interrupted"
    );
    send_signal(child.id(), "INT");
    let r = wait_run(child, start, Duration::from_secs(20));
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "the snapshot {o} is untouched and nothing was put in place at {d}"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_dir(&place).unwrap().count(),
        0,
        "nothing left beside the data dir"
    );
}

#[test]
fn schedule_units_killed_read_only_and_two_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    std::fs::create_dir(&units).unwrap();
    let d = s(&units);
    let args = [
        "schedule",
        "print",
        "systemd",
        "--every",
        "15m",
        "--dir",
        d.as_str(),
        "--",
        "s3://bkt/p/",
    ];
    let start = Instant::now();
    assert_eq!(etcdops(&args, &[]).code, 0);
    let span = start.elapsed();
    let (service, timer) = ("etcdops-snapshot.service", "etcdops-snapshot.timer");
    let whole: Vec<(String, Vec<u8>)> = [service, timer]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(units.join(n)).unwrap()))
        .collect();
    // Each unit is absent or whole with mode 0644, and a timer never names a missing service.
    let check = |what: &str| {
        for (name, bytes) in &whole {
            let p = units.join(name);
            if p.exists() {
                assert_eq!(&std::fs::read(&p).unwrap(), bytes, "{what}: {name}");
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o644, "{what}: {name}");
            }
        }
        assert!(
            !units.join(timer).exists() || units.join(service).exists(),
            "{what}"
        );
    };
    kill_at_random_points(
        8,
        span,
        |_| {
            for n in [service, timer] {
                let _ = std::fs::remove_file(units.join(n));
            }
            etcdops_spawn(&args)
        },
        |round| check(&format!("round {round}")),
    );
    assert_eq!(etcdops(&args, &[]).code, 0);
    check("after the next run");
    assert!(temporaries(&units).is_empty(), "{:?}", temporaries(&units));

    let (x, y) = two_at_once(&args, &[]);
    assert_eq!((x.code, y.code), (0, 0), "{x:?} {y:?}");
    check("two writers");

    let r = in_private_mounts(
        &format!(
            "{} || exit 99; etcdops schedule print systemd --every 15m --dir {d} -- s3://bkt/p/",
            read_only_mount(&d)
        ),
        &[],
    );
    assert_refused(&r, "read-only unit dir");
    check("read-only");
}

/// `save DIR/ --keep` whose delete is refused (the old snapshot is a mount point: unlink gives
/// EBUSY): the complete save is still reported, with `prune_failed`, exit 2; the refused
/// snapshot keeps its sidecar, so the next prune deletes it.
#[test]
fn a_refused_delete_after_a_save_is_reported_beside_it_and_retried_later() {
    let c = shared(Version::V3_5_1, 1);
    let conn = conn(&c);
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    std::fs::create_dir(&b).unwrap();
    let dest = format!("{}/", s(&b));
    let r = etcdops(
        &argv(&["snapshot", "save", &dest, "-w", "json"], &conn),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let first = PathBuf::from(r.json()["file"].as_str().unwrap());
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    let node = name
        .strip_prefix("etcd-")
        .unwrap()
        .rsplit_once('-')
        .unwrap()
        .0
        .to_string();
    // An older save of the same member, pinned in place.
    let pinned = format!("etcd-{node}-20260101T000000Z.db");
    std::fs::hard_link(&first, b.join(&pinned)).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", s(&first))).unwrap()).unwrap();
    meta["name"] = pinned.clone().into();
    std::fs::write(
        b.join(format!("{pinned}.json")),
        serde_json::to_vec(&meta).unwrap(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let save = argv(
        &["snapshot", "save", &dest, "--keep", "last=1", "-w", "json"],
        &conn,
    )
    .iter()
    .map(|w| q(w))
    .collect::<Vec<_>>()
    .join(" ");
    let p = s(&b.join(&pinned));
    let r = in_private_mounts(
        &format!("mount --bind {p} {p} || exit 99; etcdops {save}"),
        &[],
    );
    assert_refused(&r, "refused delete after a save");
    assert!(
        r.stderr
            .contains("the snapshot is saved and complete, but --keep failed"),
        "{}",
        r.stderr
    );
    let report = r.json();
    assert!(
        report["prune_failed"].as_str().unwrap().contains(&pinned),
        "{report}"
    );
    let saved = PathBuf::from(report["file"].as_str().unwrap());
    let v = etcdops(&["snapshot", "verify", &s(&saved)], &[]);
    assert_eq!(v.code, 0, "the new save is whole: {v:?}");
    // The first save went (no rule keeps it); the pinned one is still there with its sidecar.
    let ls = etcdops(&["snapshot", "ls", &dest, "-w", "json"], &[]);
    let listed: Vec<(String, bool)> = ls.json()["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["verified"] == true,
            )
        })
        .collect();
    let new_name = saved.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        listed,
        vec![(pinned.clone(), true), (new_name.clone(), true)]
    );
    // Unpinned, the next prune deletes it.
    let r = etcdops(&["snapshot", "prune", &dest, "--keep-last", "1"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!b.join(&pinned).exists() && !b.join(format!("{pinned}.json")).exists());
    assert!(saved.exists());
}
