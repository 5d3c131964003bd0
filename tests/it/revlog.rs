//! The revision log's offline replay against real etcd: the events a cluster wrote after a
//! base snapshot, carried through the segment format and replayed into the base, give the key
//! bucket of a later snapshot byte for byte, and an etcd booted on the result serves what the
//! live cluster served at that revision (`get --rev`, `endpoint hashkv --rev`).

use std::path::Path;

use etcd_client::{Compare, CompareOp, DeleteOptions, PutOptions, Txn, TxnOp};
use etcdops::bolt::{bucket_entries, BucketRoot, Db, Entry};
use etcdops::revlog::segment::{self, Change, Event, Record};

use crate::common::cluster::{free_port, Cluster, ClusterOptions, ThreeMembers, Version};
use crate::common::run::{etcdops, restore_member, send_signal};
use crate::common::s;

/// The entries of a top-level bucket of a bbolt file, in key order.
fn bucket(path: &Path, name: &[u8]) -> Vec<Entry> {
    let mut db = Db::open_file(path).unwrap();
    let root = db.root();
    let top = bucket_entries(&mut db, &root).unwrap();
    let Some(b) = top.iter().find(|e| e.key == name) else {
        return Vec::new();
    };
    let root: BucketRoot = etcdops::bolt::reader::bucket_root(&b.value).unwrap();
    bucket_entries(&mut db, &root).unwrap()
}

fn key_bucket(path: &Path) -> Vec<Entry> {
    bucket(path, b"key")
}

/// The lease records a follower would have written between two snapshots: a lease for each
/// one granted, a lease end for each one gone.
fn lease_records(base: &Path, later: &Path) -> Vec<Record> {
    let (before, after) = (bucket(base, b"lease"), bucket(later, b"lease"));
    let id = |e: &Entry| i64::from_be_bytes(e.key[..8].try_into().unwrap());
    let mut out = Vec::new();
    for e in &after {
        if !before.iter().any(|b| b.key == e.key) {
            let f = etcdops::proto::fields(&e.value).unwrap();
            let ttl = etcdops::proto::uint_field(&f, 2) as i64;
            out.push(Record::Lease {
                id: id(e),
                ttl,
                time_ns: 0,
            });
        }
    }
    for e in &before {
        if !after.iter().any(|a| a.key == e.key) {
            out.push(Record::LeaseEnd {
                id: id(e),
                time_ns: 0,
            });
        }
    }
    out
}

/// A key-bucket entry read back as the event that wrote it.
fn event_of(e: &Entry) -> Event {
    let main = i64::from_be_bytes(e.key[0..8].try_into().unwrap());
    let sub = u64::from_be_bytes(e.key[9..17].try_into().unwrap()) as u32;
    let f = etcdops::proto::fields(&e.value).unwrap();
    let key = etcdops::proto::bytes_field(&f, 1).unwrap().to_vec();
    let change = if e.key.len() == 18 {
        Change::Delete
    } else {
        Change::Put {
            create_revision: etcdops::proto::uint_field(&f, 2) as i64,
            version: etcdops::proto::uint_field(&f, 4) as i64,
            lease: etcdops::proto::uint_field(&f, 6) as i64,
            value: etcdops::proto::bytes_field(&f, 5)
                .unwrap_or_default()
                .to_vec(),
        }
    };
    Event {
        main,
        sub,
        time_ns: 0,
        key,
        change,
    }
}

/// A snapshot saved with etcdctl, without its sha256 trailer (a bbolt file).
fn save_raw(c: &Cluster, path: &Path) {
    c.etcdctl_save(0, path, None);
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(len % 512, 32, "a snapshot with its trailer");
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len - 32).unwrap();
}

fn revision(c: &Cluster) -> i64 {
    let out = c.etcdctl(
        &c.members[0].client_url,
        &["endpoint", "status", "-w", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["Status"]["header"]["revision"].as_i64().unwrap()
}

/// Puts, overwrites, a delete, a prefix delete, a re-put after a delete, multi-op
/// transactions, a key on a new lease, and the base's lease revoked with its key: every way the
/// key and lease buckets change.
fn workload(c: &Cluster, early_lease: i64) {
    let mut tc = c.client(None);
    let rt = &tc.rt;
    let client = &mut tc.client;
    rt.block_on(async {
        client
            .put("/registry/pods/a/one", "v2", None)
            .await
            .unwrap();
        client
            .put("/registry/pods/a/two", "new", None)
            .await
            .unwrap();
        client.delete("/registry/pods/a/gone", None).await.unwrap();
        let prefix = DeleteOptions::new().with_prefix();
        client.delete("/registry/cm/", Some(prefix)).await.unwrap();
        client
            .put("/registry/pods/a/gone", "back", None)
            .await
            .unwrap();
        let txn = Txn::new()
            .when([Compare::version(
                "/registry/pods/a/one",
                CompareOp::Greater,
                0,
            )])
            .and_then([
                TxnOp::put("/registry/pods/b/x", "1", None),
                TxnOp::delete("/registry/pods/a/two", None),
                TxnOp::put("/registry/pods/b/y", "2", None),
            ]);
        client.txn(txn).await.unwrap();
        let lease = client.lease_grant(600, None).await.unwrap().id();
        let opts = PutOptions::new().with_lease(lease);
        client
            .put("/registry/leases/l", "held", Some(opts))
            .await
            .unwrap();
        client.lease_revoke(early_lease).await.unwrap();
        client
            .put("/registry/pods/a/one", "v3", None)
            .await
            .unwrap();
    });
}

#[test]
fn replaying_events_gives_the_later_snapshot_byte_for_byte_and_what_etcd_served() {
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let early_lease = {
        let mut tc = c.client(None);
        let rt = &tc.rt;
        let client = &mut tc.client;
        rt.block_on(async {
            for k in ["/registry/pods/a/one", "/registry/pods/a/gone"] {
                client.put(k, "v1", None).await.unwrap();
            }
            for i in 0..5 {
                let key = format!("/registry/cm/c{i}");
                client.put(key, "x", None).await.unwrap();
            }
            let lease = client.lease_grant(900, None).await.unwrap().id();
            let opts = PutOptions::new().with_lease(lease);
            let key = "/registry/leases/early";
            client.put(key, "e", Some(opts)).await.unwrap();
            lease
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let (base, later) = (dir.path().join("base.db"), dir.path().join("later.db"));
    save_raw(&c, &base);
    let base_rev = revision(&c);
    workload(&c, early_lease);
    let target = revision(&c);
    save_raw(&c, &later);

    // The events and lease records after the base, as a follower records them, through the
    // segment format.
    let events: Vec<Event> = key_bucket(&later)
        .iter()
        .map(event_of)
        .filter(|e| e.main > base_rev)
        .collect();
    assert!(events.len() >= 12, "{}", events.len());
    let leases = lease_records(&base, &later);
    // (Here etcd 3.5.1's later snapshot still held the revoked lease's record, so only the
    // grant shows; the lease bucket is compared with what etcd wrote either way.)
    assert!(
        !leases.is_empty(),
        "the lease granted after the base: {leases:?}"
    );
    let mut w = segment::Writer::new();
    for r in events.iter().cloned().map(Record::Event).chain(leases) {
        w.push(&r);
    }
    let records = segment::decode(&w.finish()).unwrap();
    let decoded: Vec<Event> = records
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(decoded, events);

    let replayed = dir.path().join("replayed.db");
    std::fs::copy(&base, &replayed).unwrap();
    let done = etcdops::revlog::replay::replay(&replayed, records.clone()).unwrap();
    assert_eq!(done.revision, Some(target));
    assert!(
        key_bucket(&replayed) == key_bucket(&later),
        "the key bucket differs"
    );
    let lease_bucket = |p: &Path| bucket(p, b"lease");
    assert!(
        lease_bucket(&replayed) == lease_bucket(&later),
        "the lease bucket differs"
    );
    let check = etcdops(
        &["snapshot", "status", &s(&replayed), "--skip-hash-check"],
        &[],
    );
    assert_eq!(
        check.code, 0,
        "our integrity check on the replayed db: {check:?}"
    );

    // Out of order, or overlapping the base: refused, the file untouched.
    let before = std::fs::read(&base).unwrap();
    let swapped: Vec<Record> = [&decoded[1], &decoded[0]]
        .into_iter()
        .map(|e| Record::Event(e.clone()))
        .collect();
    assert!(etcdops::revlog::replay::replay(&base, swapped).is_err());
    let first = Record::Event(event_of(&key_bucket(&base)[0]));
    assert!(etcdops::revlog::replay::replay(&base, vec![first]).is_err());
    assert_eq!(std::fs::read(&base).unwrap(), before);

    let booted = boot(&replayed, dir.path());
    let at = format!("--rev={target}");
    // An etcd booted on the replayed data serves what the live cluster served at `target`.
    let get = ["get", "", "--prefix", at.as_str(), "-w", "json"];
    assert_eq!(ask(&booted, &get)["kvs"], ask(&c, &get)["kvs"]);
    let hashkv = ["endpoint", "hashkv", at.as_str(), "-w", "json"];
    let hash = |cl: &Cluster| ask(cl, &hashkv)[0]["HashKV"]["hash"].as_u64().unwrap();
    assert_eq!(hash(&booted), hash(&c), "hashkv at {target}");
    // The lease granted after the base is back, and holds its key.
    let granted = ask(&c, &["get", "/registry/leases/l", "-w", "json"])["kvs"][0]["lease"].clone();
    let ttl = ask(
        &booted,
        &[
            "lease",
            "timetolive",
            &format!("{:x}", granted.as_i64().unwrap()),
            "--keys",
            "-w",
            "json",
        ],
    );
    assert_eq!(ttl["granted-ttl"], 600, "{ttl}");
    assert_eq!(
        ttl["keys"][0], "L3JlZ2lzdHJ5L2xlYXNlcy9s",
        "the key /registry/leases/l: {ttl}"
    );
}

/// `snapshot restore` of a bbolt file without its trailer, and an etcd booted on it.
fn boot(db: &Path, dir: &Path) -> Cluster {
    let data = dir.join("replayed.etcd");
    let peer = format!("https://127.0.0.1:{}", free_port());
    let initial = format!("r1={peer}");
    let r = restore_member(db, &data, "r1", &peer, &initial, &["--skip-hash-check"]);
    assert_eq!(r.code, 0, "{r:?}");
    Cluster::boot(Version::V3_5_1, &[("r1".into(), data, peer)])
}

/// What the live cluster served at one revision, recorded when it was the newest.
struct Served {
    revision: i64,
    kvs: serde_json::Value,
    hash: u64,
}

fn ask(c: &Cluster, args: &[&str]) -> serde_json::Value {
    let out = c.etcdctl(&c.members[0].client_url, args);
    assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The keyspace and `hashkv` of the live cluster at its current revision.
fn served_now(c: &Cluster) -> Served {
    let revision = revision(c);
    let at = format!("--rev={revision}");
    let kvs = ask(c, &["get", "", "--prefix", &at, "-w", "json"])["kvs"].clone();
    let hash = ask(c, &["endpoint", "hashkv", &at, "-w", "json"])[0]["HashKV"]["hash"]
        .as_u64()
        .unwrap();
    Served {
        revision,
        kvs,
        hash,
    }
}

/// `snapshot follow DIR/` in the background, its stderr in a file (a long run must never block
/// on a full pipe).
fn follow(c: &Cluster, dest: &Path, log: &Path) -> std::process::Child {
    follow_member(c, 0, dest, log)
}

/// `follow` through member `i` (as the follower of that control plane would).
fn follow_member(c: &Cluster, i: usize, dest: &Path, log: &Path) -> std::process::Child {
    let mut args = vec![
        "snapshot".to_string(),
        "follow".into(),
        format!("{}/", dest.display()),
        "--flush=200ms".into(),
        format!("--endpoints={}", c.members[i].client_url),
        format!("--metrics-file={}", log.with_extension("prom").display()),
    ];
    args.extend(c.tls_args());
    std::process::Command::new(env!("CARGO_BIN_EXE_etcdops"))
        .env_clear()
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// The highest revision a segment in `dest` completes.
fn logged_through(dest: &Path) -> i64 {
    std::fs::read_dir(dest)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let seg = name.strip_suffix(".json")?;
            etcdops::revlog::chain::parse_segment_name(seg).map(|n| n.through)
        })
        .max()
        .unwrap_or(0)
}

fn wait_logged(dest: &Path, revision: i64, log: &Path) {
    let start = std::time::Instant::now();
    while logged_through(dest) < revision {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the log never reached revision {revision}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The gaps `ls` reports between chains.
fn gaps(dest: &Path) -> Vec<serde_json::Value> {
    ls_json(dest)["chains"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.get("gap_before").cloned())
        .collect()
}

/// Wait until the log reaches `revision` with no gap between its chains.
fn wait_carried(dest: &Path, revision: i64, log: &Path) {
    wait_logged(dest, revision, log);
    let start = std::time::Instant::now();
    while !gaps(dest).is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "a chain ends short of the next base: {}\n{}",
            ls_json(dest),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Remove the last segment of the chain of `base` (as if its follower had been stopped
/// before writing it).
fn drop_last_segment(dest: &Path, base: &str) {
    let stem = etcdops::remote::meta::stem_of(base).unwrap();
    let last = std::fs::read_dir(dest)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let n = etcdops::revlog::chain::parse_segment_name(&name)?;
            (n.stem == stem).then_some((n.through, name))
        })
        .max()
        .unwrap();
    std::fs::remove_file(dest.join(format!("{}.json", last.1))).unwrap();
    std::fs::remove_file(dest.join(&last.1)).unwrap();
}

/// Restore `dest` at `point_args` into a new data dir, boot it and return the booted cluster
/// and the restore's result.
fn restore_and_boot(
    version: Version,
    dest: &Path,
    dir: &Path,
    label: &str,
    point_args: &[&str],
) -> (Cluster, crate::common::run::Run) {
    let data = dir.join(format!("{label}.etcd"));
    let peer = format!("https://127.0.0.1:{}", free_port());
    let initial = format!("r1={peer}");
    let source = format!("{}/", dest.display());
    let r = restore_member(Path::new(&source), &data, "r1", &peer, &initial, point_args);
    assert_eq!(r.code, 0, "{r:?}");
    (Cluster::boot(version, &[("r1".into(), data, peer)]), r)
}

#[test]
fn follow_then_restore_to_a_revision_gives_what_etcd_served_then_3_5_1() {
    follow_then_restore(Version::V3_5_1);
}

#[test]
fn follow_then_restore_to_a_revision_gives_what_etcd_served_then_3_5_30() {
    follow_then_restore(Version::V3_5_30);
}

/// A workload under `follow`, then restores to several revisions booted and compared with what
/// the live cluster served at each; three members from the log; metrics; two clusters' logs.
fn follow_then_restore(version: Version) {
    let c = Cluster::start(ClusterOptions::new(version, 1));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backups");
    std::fs::create_dir(&dest).unwrap();
    let log = dir.path().join("follow.log");
    {
        let mut tc = c.client(None);
        let (rt, client) = (&tc.rt, &mut tc.client);
        rt.block_on(async {
            for i in 0..5 {
                client
                    .put(format!("/registry/cm/c{i}"), "x", None)
                    .await
                    .unwrap();
            }
        });
    }
    let mut follower = follow(&c, &dest, &log);
    wait_logged(&dest, revision(&c), &log);

    let mut served = Vec::new();
    let mut tc = c.client(None);
    let (rt, client) = (&tc.rt, &mut tc.client);
    // A transaction's revision, right after a prefix delete, a lease granted and attached, a
    // compaction, a revoked lease, and the last.
    rt.block_on(async {
        client
            .put("/registry/pods/a/one", "v1", None)
            .await
            .unwrap();
        let txn = Txn::new().and_then([
            TxnOp::put("/registry/pods/b/x", "1", None),
            TxnOp::delete("/registry/cm/c0", None),
            TxnOp::put("/registry/pods/b/y", "2", None),
        ]);
        client.txn(txn).await.unwrap();
    });
    served.push(served_now(&c));
    rt.block_on(async {
        let prefix = DeleteOptions::new().with_prefix();
        client.delete("/registry/cm/", Some(prefix)).await.unwrap();
    });
    served.push(served_now(&c));
    let lease = rt.block_on(async {
        let lease = client.lease_grant(600, None).await.unwrap().id();
        let opts = PutOptions::new().with_lease(lease);
        client
            .put("/registry/leases/l", "held", Some(opts))
            .await
            .unwrap();
        client
            .put("/registry/pods/a/one", "v2", None)
            .await
            .unwrap();
        lease
    });
    served.push(served_now(&c));
    // The segments up to here are written before the compaction happens: a restore to these
    // revisions carries no compaction, as the cluster then had none.
    wait_logged(&dest, served[2].revision, &log);
    let compact_at = revision(&c) - 1;
    rt.block_on(async {
        client.compact(compact_at, None).await.unwrap();
        client.put("/registry/pods/a/two", "t", None).await.unwrap();
        let short = client.lease_grant(900, None).await.unwrap().id();
        let opts = PutOptions::new().with_lease(short);
        client
            .put("/registry/leases/s", "s", Some(opts))
            .await
            .unwrap();
        client.lease_revoke(short).await.unwrap();
        client
            .put("/registry/pods/a/gone", "back", None)
            .await
            .unwrap();
    });
    served.push(served_now(&c));
    let last = served.last().unwrap().revision;
    wait_logged(&dest, last, &log);
    send_signal(follower.id(), "TERM");
    let status = follower.wait().unwrap();
    assert!(status.success(), "follow after SIGTERM: {status:?}");

    for (i, s) in served.iter().enumerate() {
        let rev = s.revision.to_string();
        let (booted, r) = restore_and_boot(
            version,
            &dest,
            dir.path(),
            &format!("at{i}"),
            &["--to-revision", &rev],
        );
        let at = format!("--rev={}", s.revision);
        let kvs = ask(&booted, &["get", "", "--prefix", &at, "-w", "json"])["kvs"].clone();
        assert_eq!(kvs, s.kvs, "the keyspace at revision {}", s.revision);
        let hash = ask(&booted, &["endpoint", "hashkv", &at, "-w", "json"])[0]["HashKV"]["hash"]
            .as_u64()
            .unwrap();
        assert_eq!(
            hash, s.hash,
            "hashkv at revision {}: {}",
            s.revision, r.stderr
        );
        let now = ask(&booted, &["endpoint", "status", "-w", "json"]);
        assert_eq!(
            now[0]["Status"]["header"]["revision"], s.revision,
            "the restored cluster's revision"
        );
    }
    // Three members from the log: the other two run the commands the restore prints for them
    // (they carry --to-revision), and the cluster they form serves that revision.
    let target = &served[1];
    let three = ThreeMembers::new();
    let (peers, initial) = (&three.peers, &three.initial);
    let ha = dir.path().join("ha");
    std::fs::create_dir(&ha).unwrap();
    let rev = target.revision.to_string();
    let r = restore_member(
        Path::new(&format!("{}/", dest.display())),
        &ha.join("n1.etcd"),
        "n1",
        &peers[0],
        initial,
        &["--to-revision", &rev],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let others = r.json()["other_members"].as_array().unwrap().clone();
    assert_eq!(others.len(), 2, "{r:?}");
    for o in &others {
        let command = o["command"].as_str().unwrap();
        assert!(
            command.contains(&format!("--to-revision={rev}")),
            "{command}"
        );
        let r = crate::common::run::run_printed(command, &[], &ha);
        assert_eq!(r.code, 0, "{command}\n{r:?}");
    }
    let booted = Cluster::boot(version, &three.in_dir(&ha));
    let at = format!("--rev={rev}");
    let kvs = ask(&booted, &["get", "", "--prefix", &at, "-w", "json"])["kvs"].clone();
    assert_eq!(kvs, target.kvs, "three members restored from the log");
    drop(booted);

    // The lease granted after the base is back with its TTL and its key.
    let (booted, _) = restore_and_boot(c.version, &dest, dir.path(), "latest", &[]);
    let ttl = ask(
        &booted,
        &[
            "lease",
            "timetolive",
            &format!("{lease:x}"),
            "--keys",
            "-w",
            "json",
        ],
    );
    assert_eq!(ttl["granted-ttl"], 600, "{ttl}");
    assert_eq!(ttl["keys"][0], "L3JlZ2lzdHJ5L2xlYXNlcy9s", "{ttl}");
    drop(booted);
    drop(tc);

    // What node-exporter reads: the log's revision and when it was complete, 0644.
    let prom = std::fs::read_to_string(log.with_extension("prom")).unwrap();
    let value = |name: &str| -> f64 {
        prom.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {prom}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("etcdops_follow_revision") as i64, last, "{prom}");
    assert!(value("etcdops_follow_last_segment_timestamp_seconds") > 1.7e9);
    assert!(prom.contains("# TYPE etcdops_follow_lag_seconds gauge"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(log.with_extension("prom"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let saved = dir.path().join("saved");
    std::fs::create_dir(&saved).unwrap();
    let prom_save = dir.path().join("save.prom");
    let mut save = vec![
        "snapshot".to_string(),
        "save".into(),
        format!("{}/", saved.display()),
        format!("--endpoints={}", c.members[0].client_url),
        format!("--metrics-file={}", prom_save.display()),
    ];
    save.extend(c.tls_args());
    let r = etcdops(&args_of(&save), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let text = std::fs::read_to_string(&prom_save).unwrap();
    assert!(
        text.contains(&format!("etcdops_snapshot_last_revision {last}")),
        "{text}"
    );
    // A directory of snapshots without a log: its newest snapshot, and the other members'
    // commands (run as printed) name that very snapshot, not the directory.
    let plain_dir = format!("{}/", saved.display());
    let three = ThreeMembers::new();
    let newest = dir.path().join("newest");
    std::fs::create_dir(&newest).unwrap();
    let r = restore_member(
        Path::new(&plain_dir),
        &newest.join("n1.etcd"),
        "n1",
        &three.peers[0],
        &three.initial,
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("no revision log in"), "{r:?}");
    assert_eq!(r.json()["revision"], last, "{r:?}");
    for o in r.json()["other_members"].as_array().unwrap() {
        let command = o["command"].as_str().unwrap();
        assert!(command.contains(&format!("{plain_dir}etcd-")), "{command}");
        let r = crate::common::run::run_printed(command, &[], &newest);
        assert_eq!(r.code, 0, "{command}\n{r:?}");
        assert!(!r.stderr.contains("no revision log in"), "{r:?}");
    }
    let booted = Cluster::boot(version, &three.in_dir(&newest));
    let now = ask(&booted, &["endpoint", "status", "-w", "json"]);
    assert_eq!(now[0]["Status"]["header"]["revision"], last);
    drop(booted);
    // A revision asked of a place without a log: the error says how to write one; done as
    // told, the same restore works.
    let at = dir.path().join("at.etcd");
    let peer = "https://127.0.0.1:2380";
    let initial = format!("r1={peer}");
    let rev = last.to_string();
    let to_rev = ["--to-revision", rev.as_str()];
    let r = restore_member(Path::new(&plain_dir), &at, "r1", peer, &initial, &to_rev);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "error: revision {last} is not restorable here: no chain (run `etcdops snapshot follow` to write one)"
        )),
        "{r:?}"
    );
    assert!(!at.exists());
    let told = dir.path().join("told.log");
    // (Not in the second of the last save: two saves of a member in one second share a name.)
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut f = follow(&c, &saved, &told);
    wait_logged(&saved, last, &told);
    send_signal(f.id(), "TERM");
    assert!(f.wait().unwrap().success());
    let r = restore_member(Path::new(&plain_dir), &at, "r1", peer, &initial, &to_rev);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["revision"], last, "{r:?}");

    // A second cluster's log in the same place: a restore must be told whose.
    let other = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let log2 = dir.path().join("follow2.log");
    let mut f2 = follow(&other, &dest, &log2);
    let start = std::time::Instant::now();
    while ls_json(&dest)["chains"].as_array().unwrap().len() < 2 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    send_signal(f2.id(), "TERM");
    assert!(f2.wait().unwrap().success());
    let src = format!("{}/", dest.display());
    let data = dir.path().join("which.etcd");
    let peer = "https://127.0.0.1:2380";
    let initial = format!("r1={peer}");
    let r = restore_member(Path::new(&src), &data, "r1", peer, &initial, &["--dry-run"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("give --cluster-id"), "{r:?}");
    let listed = ls_json(&dest);
    let mine = listed["chains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["last_revision"] == last)
        .unwrap()["cluster_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = restore_member(
        Path::new(&src),
        &data,
        "r1",
        peer,
        &initial,
        &["--dry-run", "--cluster-id", &mine],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(&format!("note: revision {last} ")),
        "{r:?}"
    );
}

#[test]
fn followers_of_two_control_planes_share_a_place_and_a_restore_takes_one_node() {
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 3));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("log");
    std::fs::create_dir(&dest).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = background_writes(&c, stop.clone());
    let logs = [dir.path().join("m1.log"), dir.path().join("m2.log")];
    let mut followers: Vec<_> = (0..2)
        .map(|i| follow_member(&c, i, &dest, &logs[i]))
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let last = revision(&c);
    let start = std::time::Instant::now();
    loop {
        let listed = ls_json(&dest);
        let mut nodes: Vec<String> = listed["chains"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|ch| ch["last_revision"] == last)
            .map(|ch| ch["node"].as_str().unwrap().to_string())
            .collect();
        nodes.sort();
        if nodes == ["m1", "m2"] {
            break;
        }
        assert!(start.elapsed().as_secs() < 60, "{listed}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for f in &mut followers {
        send_signal(f.id(), "TERM");
        assert!(f.wait().unwrap().success());
    }
    let v = verify_chain(&dest);
    assert_eq!(v.code, 0, "{v:?}");
    let src = format!("{}/", dest.display());
    let three = ThreeMembers::new();
    let (peers, initial) = (&three.peers, &three.initial);
    let ha = dir.path().join("ha");
    std::fs::create_dir(&ha).unwrap();
    let n1 = ha.join("n1.etcd");
    let r = restore_member(
        Path::new(&src),
        &n1,
        "n1",
        &peers[0],
        initial,
        &["--node", "nosuch"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("no revision log of node nosuch here (there are: m1, m2)"),
        "{r:?}"
    );
    assert!(!n1.exists());
    // put-back takes whose log the same way.
    for (node, code) in [("m1", 0), ("nosuch", 2)] {
        let mut args = vec![
            "snapshot".to_string(),
            "put-back".into(),
            src.clone(),
            "--prefix=/registry/w/".into(),
            format!("--node={node}"),
            "--dry-run".into(),
            format!("--endpoints={}", c.members[0].client_url),
        ];
        args.extend(c.tls_args());
        let r = etcdops(&args_of(&args), &[]);
        assert_eq!(r.code, code, "{r:?}");
    }
    // The newest point of m2's chain; the other members run the commands printed for them.
    let r = restore_member(
        Path::new(&src),
        &n1,
        "n1",
        &peers[0],
        initial,
        &["--node", "m2"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("note: revision {last} from the chain of etcd-m2-")),
        "{r:?}"
    );
    assert_eq!(
        r.json()["sha256"],
        "none: made from the revision log, each segment's sha256 checked"
    );
    for o in r.json()["other_members"].as_array().unwrap() {
        let command = o["command"].as_str().unwrap();
        assert!(
            command.contains("--node=m2") && command.contains(&format!("--to-revision={last}")),
            "{command}"
        );
        let r = crate::common::run::run_printed(command, &[], &ha);
        assert_eq!(r.code, 0, "{command}\n{r:?}");
        assert!(r.stderr.contains("from the chain of etcd-m2-"), "{r:?}");
    }
    let booted = Cluster::boot(c.version, &three.in_dir(&ha));
    let want = ask(&c, &["get", "", "--prefix", "-w", "json"])["kvs"].clone();
    let got = ask(&booted, &["get", "", "--prefix", "-w", "json"])["kvs"].clone();
    assert_eq!(got, want, "three members restored from m2's log");
}

#[test]
fn a_revision_no_change_has_is_refused_and_one_that_snapshot_log_lists_restores() {
    use etcdops::revlog::chain::{self, ChainWriter};
    use etcdops::revlog::segment::{Change, Event, Record};
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("log");
    std::fs::create_dir(&dest).unwrap();
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..3)
        .map(|i| (format!("/registry/a/{i}").into_bytes(), b"x".to_vec()))
        .collect();
    c.client(None).put_all(&kvs, 1);
    let log = dir.path().join("follow.log");
    let mut f = follow(&c, &dest, &log);
    wait_logged(&dest, revision(&c), &log);
    send_signal(f.id(), "TERM");
    assert!(f.wait().unwrap().success());
    // A segment written as a follower writes one (sidecar, hash chain), whose one change is
    // two revisions on: the revision between is in the chain's window but no change has it.
    let through = logged_through(&dest);
    let at = through + 2;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = etcdops::remote::store::Store::Dir(dest.clone());
        let chains = chain::chains(&store).await.unwrap();
        let mut w = ChainWriter::resume(&chains[0], Default::default(), Vec::new()).unwrap();
        let now = etcdops::timestamp::now_ns();
        let change = Change::Put {
            create_revision: at,
            version: 1,
            lease: 0,
            value: b"late".to_vec(),
        };
        let records = vec![
            Record::Event(Event {
                main: at,
                sub: 0,
                time_ns: now,
                key: b"/registry/a/late".to_vec(),
                change,
            }),
            Record::Progress {
                revision: at,
                time_ns: now,
            },
        ];
        w.write(&store, records, at, now).await.unwrap();
    });
    let src = format!("{}/", dest.display());
    let data = dir.path().join("r.etcd");
    let peer = "https://127.0.0.1:2380";
    let initial = format!("r1={peer}");
    let skipped = (through + 1).to_string();
    let r = restore_member(
        Path::new(&src),
        &data,
        "r1",
        peer,
        &initial,
        &["--to-revision", &skipped],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("revision {skipped} is not in the log of"))
            && r.stderr
                .contains("pick one that `etcdops snapshot log` lists"),
        "{r:?}"
    );
    assert!(!data.exists());
    // As told: a revision that `snapshot log` lists.
    let l = etcdops(&["snapshot", "log", &src, "-w", "json"], &[]);
    assert_eq!(l.code, 0, "{l:?}");
    let listed: Vec<i64> = l.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ch| ch["revision"].as_i64().unwrap())
        .collect();
    assert!(!listed.contains(&(through + 1)), "{listed:?}");
    let pick = listed.iter().find(|&&r| r > through).unwrap().to_string();
    let r = restore_member(
        Path::new(&src),
        &data,
        "r1",
        peer,
        &initial,
        &["--to-revision", &pick],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["revision"].to_string(), pick, "{r:?}");
}

/// Puts, overwrites, deletes and transactions from a thread until `stop`.
fn background_writes(
    c: &Cluster,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    let mut tc = c.client(None);
    std::thread::spawn(move || {
        let (rt, client) = (&tc.rt, &mut tc.client);
        let mut n = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            rt.block_on(async {
                let key = format!("/registry/w/k{}", n % 37);
                match n % 5 {
                    0 => drop(client.delete(key, None).await.unwrap()),
                    1 => {
                        let txn = Txn::new().and_then([
                            TxnOp::put(key.clone(), format!("t{n}"), None),
                            TxnOp::put(format!("{key}/sub"), "s", None),
                        ]);
                        drop(client.txn(txn).await.unwrap());
                    }
                    _ => drop(client.put(key, format!("v{n}"), None).await.unwrap()),
                }
            });
            n += 1;
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        n
    })
}

fn verify_chain(dest: &Path) -> crate::common::run::Run {
    etcdops(
        &[
            "snapshot",
            "verify",
            &format!("{}/", dest.display()),
            "--chain",
            "-w",
            "json",
        ],
        &[],
    )
}

fn ls_json(dest: &Path) -> serde_json::Value {
    let r = etcdops(
        &[
            "snapshot",
            "ls",
            &format!("{}/", dest.display()),
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    r.json()
}

#[test]
fn follow_survives_kills_and_compaction_and_says_where_the_gaps_are() {
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("log");
    std::fs::create_dir(&dest).unwrap();
    let log = dir.path().join("follow.log");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = background_writes(&c, stop.clone());

    // SIGKILLed at pseudo-random points, 20 times, while the writes go on.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..20 {
        let mut f = follow(&c, &dest, &log);
        if round == 0 {
            wait_logged(&dest, 1, &log);
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_millis(100 + seed % 600));
        f.kill().unwrap();
        f.wait().unwrap();
    }
    let mut f = follow(&c, &dest, &log);
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("continuing the chain")
    {
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 100, "{writes} writes");
    // The member restarted under the follower: its watch breaks, and it resumes.
    let mut c = c;
    c.kill(0);
    std::thread::sleep(std::time::Duration::from_millis(500));
    c.restart(0);
    let start = std::time::Instant::now();
    while !c
        .etcdctl(&c.members[0].client_url, &["endpoint", "health"])
        .status
        .success()
    {
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    {
        let mut tc = c.client(None);
        let (rt, client) = (&tc.rt, &mut tc.client);
        rt.block_on(async {
            for i in 0..10 {
                client
                    .put(format!("/registry/after/{i}"), "r", None)
                    .await
                    .unwrap();
            }
        });
    }
    let last = revision(&c);
    wait_logged(&dest, last, &log);
    send_signal(f.id(), "TERM");
    assert!(f.wait().unwrap().success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("; resuming from revision"), "{said}");

    // No gap, no duplicate, one chain: the restarts continued it.
    let v = verify_chain(&dest);
    assert_eq!(v.code, 0, "{v:?}");
    let listed = ls_json(&dest);
    assert_eq!(listed["chains"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["chains"][0]["last_revision"], last, "{listed}");
    let (booted, _) = restore_and_boot(c.version, &dest, dir.path(), "latest", &[]);
    let at = format!("--rev={last}");
    let get = ["get", "", "--prefix", at.as_str(), "-w", "json"];
    assert_eq!(ask(&booted, &get)["kvs"], ask(&c, &get)["kvs"]);
    drop(booted);

    // The history of one key, and a restore to the time of one change in it.
    let key = "/registry/w/k7";
    let hist = etcdops(
        &[
            "snapshot",
            "log",
            &format!("{}/", dest.display()),
            key,
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(hist.code, 0, "{hist:?}");
    let changes = hist.json()["changes"].as_array().unwrap().clone();
    assert!(changes.len() > 2, "{changes:?}");
    assert!(changes.iter().all(|c| c["key"] == key));
    let ops: std::collections::BTreeSet<&str> =
        changes.iter().map(|c| c["op"].as_str().unwrap()).collect();
    assert!(ops.contains("PUT") && ops.contains("DELETE"), "{ops:?}");
    let pick = &changes[changes.len() / 2];
    let when = pick["time"].as_str().unwrap();
    let data = dir.path().join("by-time.etcd");
    let r = restore_member(
        Path::new(&format!("{}/", dest.display())),
        &data,
        "r1",
        "https://127.0.0.1:2380",
        "r1=https://127.0.0.1:2380",
        &["--to-time", when, "--dry-run"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let at_time: i64 = r
        .stderr
        .split("note: revision ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(
        at_time >= pick["revision"].as_i64().unwrap(),
        "{at_time} {pick}"
    );

    // Compacted past the log while the follower is stopped: a new chain, the gap said.
    {
        let mut tc = c.client(None);
        let (rt, client) = (&tc.rt, &mut tc.client);
        rt.block_on(async {
            for i in 0..5 {
                client
                    .put(format!("/registry/gap/{i}"), "g", None)
                    .await
                    .unwrap();
            }
            let now = client
                .get("x", None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision();
            client.compact(now, None).await.unwrap();
        });
    }
    let mut f = follow(&c, &dest, &log);
    let after = revision(&c);
    wait_logged(&dest, after, &log);
    std::thread::sleep(std::time::Duration::from_millis(300));
    send_signal(f.id(), "TERM");
    assert!(f.wait().unwrap().success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("compacted up to revision"), "{said}");
    let listed = ls_json(&dest);
    let chains = listed["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 2, "{listed}");
    let gap = chains[1]["gap_before"].as_str().unwrap();
    assert_eq!(gap, format!("revisions {}..{}", last + 1, after - 1));
    let v = verify_chain(&dest);
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains("are in no chain"), "{v:?}");
    let inside = (last + 2).to_string();
    let data = dir.path().join("gap.etcd");
    let src = format!("{}/", dest.display());
    let r = restore_member(
        Path::new(&src),
        &data,
        "r1",
        "https://127.0.0.1:2380",
        "r1=https://127.0.0.1:2380",
        &["--to-revision", &inside],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    assert!(r.stderr.contains("restorable windows are"), "{r:?}");
    assert!(!data.exists());

    // A segment changed after it was written, or gone: a restore that needs it refuses before
    // writing anything, and verify says which.
    let mut segs: Vec<std::path::PathBuf> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(".seg"))
        .collect();
    segs.sort();
    let middle = &segs[segs.len() / 4];
    let mut bytes = std::fs::read(middle).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::write(middle, &bytes).unwrap();
    let target = (last - 1).to_string();
    let r = restore_member(
        Path::new(&src),
        &data,
        "r1",
        "https://127.0.0.1:2380",
        "r1=https://127.0.0.1:2380",
        &["--to-revision", &target],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("does not match its metadata"), "{r:?}");
    assert!(!data.exists());
    let v = verify_chain(&dest);
    assert_eq!(v.code, 1, "{v:?}");
    std::fs::remove_file(middle).unwrap();
    let r = restore_member(
        Path::new(&src),
        &data,
        "r1",
        "https://127.0.0.1:2380",
        "r1=https://127.0.0.1:2380",
        &["--to-revision", &target],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(!data.exists());
    let v = verify_chain(&dest);
    assert_eq!(v.code, 1, "{v:?}");

    // The recovery point as a monitoring check.
    let src_arg = src.as_str();
    let ok = etcdops(&["snapshot", "ls", src_arg, "--max-age", "1h"], &[]);
    assert_eq!(ok.code, 0, "{ok:?}");
    let stale = etcdops(&["snapshot", "ls", src_arg, "--max-age", "1ms"], &[]);
    assert_eq!(stale.code, 1, "{stale:?}");
    assert_eq!(stale.error_lines(), 1, "{stale:?}");
}

/// A value shaped like the apiserver's: the `k8s\0` magic, protobuf bytes, a newline inside
/// and none at the end (what `etcdctl get --print-value-only | etcdctl put` would break).
fn protobuf_value(name: &str) -> Vec<u8> {
    let mut v = b"k8s\x00\x0a\x0b\x0a\x02v1\x12\x05Thing\x12".to_vec();
    v.extend_from_slice(name.as_bytes());
    v.extend_from_slice(b"\n\x00\xff\x1a\x02ok");
    v
}

#[test]
fn follow_to_s3_encrypted_then_put_back_a_deleted_namespace_3_5_30() {
    use crate::common::s3::S3Server;
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_30, 1));
    let tmp = tempfile::tempdir().unwrap();
    let server = S3Server::shared();
    server.bucket("pitr");
    let dest = "s3://pitr/etcd/";
    let (key, recipient) = crate::common::age_identity(tmp.path());
    let env: Vec<(&str, String)> = server.env();
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let with_s3 = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        v.extend(server.args());
        v
    };
    let prod = [
        "/registry/namespaces/prod",
        "/registry/pods/prod/a",
        "/registry/configmaps/prod/b",
        "/registry/secrets/prod/c",
    ];
    let mut tc = c.client(None);
    let (rt, client) = (&tc.rt, &mut tc.client);
    rt.block_on(async {
        for k in prod.iter().chain(["/registry/pods/dev/x"].iter()) {
            client.put(*k, protobuf_value(k), None).await.unwrap();
        }
    });

    let mut args = with_s3(&[
        "snapshot",
        "follow",
        dest,
        "--flush=200ms",
        "--compress=zstd",
        "--encrypt-to",
        &recipient,
        "--endpoints",
        &c.members[0].client_url,
    ]);
    args.extend(c.tls_args());
    let log = tmp.path().join("follow.log");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_etcdops"));
    cmd.env_clear()
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let mut follower = cmd.spawn().unwrap();
    let logged = |rev: i64| {
        let start = std::time::Instant::now();
        loop {
            let r = etcdops(
                &args_of(&with_s3(&["snapshot", "ls", dest, "-w", "json"])),
                &env_ref,
            );
            let last = r.json()["chains"][0]["last_revision"].as_i64().unwrap_or(0);
            if r.code == 0 && last >= rev {
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "{r:?} {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    logged(revision(&c));

    // `kubectl delete namespace prod`, then a configmap of that name created again.
    rt.block_on(async {
        for k in &prod {
            client.delete(*k, None).await.unwrap();
        }
        client
            .put("/registry/configmaps/prod/b", "new", None)
            .await
            .unwrap();
    });
    logged(revision(&c));
    send_signal(follower.id(), "TERM");
    assert!(follower.wait().unwrap().success());

    // Find the delete in the log, and put back what was there just before it.
    let hist = etcdops(
        &args_of(&with_s3(&[
            "snapshot",
            "log",
            dest,
            "/registry/namespaces/prod",
            "--identity",
            &s(&key),
            "-w",
            "json",
        ])),
        &env_ref,
    );
    assert_eq!(hist.code, 0, "{hist:?}");
    let changes = hist.json()["changes"].as_array().unwrap().clone();
    let deleted = changes
        .iter()
        .find(|c| c["op"] == "DELETE")
        .unwrap_or_else(|| panic!("{changes:?}"))["revision"]
        .as_i64()
        .unwrap();
    let before = (deleted - 1).to_string();
    let mut put_back = with_s3(&[
        "snapshot",
        "put-back",
        dest,
        "--namespace",
        "prod",
        "--to-revision",
        &before,
        "--identity",
        &s(&key),
        "--endpoints",
        &c.members[0].client_url,
        "-w",
        "json",
    ]);
    put_back.extend(c.tls_args());
    let mut dry = put_back.clone();
    dry.push("--dry-run".into());
    let r = etcdops(&args_of(&dry), &env_ref);
    assert_eq!(r.code, 0, "{r:?}");
    let planned = r.json();
    assert_eq!(
        planned["restored"].as_array().unwrap().len(),
        3,
        "{planned}"
    );
    assert_eq!(planned["skipped"][0], "/registry/configmaps/prod/b");
    let get =
        |k: &str| -> serde_json::Value { ask(&c, &["get", k, "-w", "json"])["kvs"][0].clone() };
    assert!(
        get("/registry/pods/prod/a").is_null(),
        "a dry run writes nothing"
    );

    let r = etcdops(&args_of(&put_back), &env_ref);
    assert_eq!(r.code, 0, "{r:?}");
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    for k in [
        "/registry/namespaces/prod",
        "/registry/pods/prod/a",
        "/registry/secrets/prod/c",
    ] {
        assert_eq!(
            get(k)["value"],
            b64(&protobuf_value(k)),
            "{k} byte for byte"
        );
    }
    assert_eq!(
        get("/registry/configmaps/prod/b")["value"],
        b64(b"new"),
        "left as it is"
    );
    assert_eq!(
        get("/registry/pods/dev/x")["version"],
        1,
        "another namespace untouched"
    );
    let again = etcdops(&args_of(&put_back), &env_ref);
    assert_eq!(
        again.json()["restored"].as_array().unwrap().len(),
        0,
        "{again:?}"
    );

    // The stock tools open a segment: age -d, then zstd -d, give the bytes its sidecar names.
    let keys = server.keys("pitr", "etcd/");
    let seg = keys
        .iter()
        .find(|k| k.ends_with(".seg.zst.age"))
        .unwrap_or_else(|| panic!("{keys:?}"));
    let (object, sidecar) = (tmp.path().join("seg"), tmp.path().join("seg.json"));
    server.aws_ok(&["s3", "cp", &format!("s3://pitr/{seg}"), &s(&object)]);
    server.aws_ok(&["s3", "cp", &format!("s3://pitr/{seg}.json"), &s(&sidecar)]);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    let plain = tmp.path().join("seg.plain");
    let sh = format!(
        "age -d -i '{}' '{}' | zstd -d -q -o '{}'",
        s(&key),
        s(&object),
        s(&plain)
    );
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(&sh)
        .status()
        .unwrap();
    assert!(ok.success());
    let bytes = std::fs::read(&plain).unwrap();
    assert!(bytes.starts_with(b"EOPSREV\x01"));
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(meta["plain_sha256"], hex);
    drop(tc);
}

fn args_of(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn the_follow_service_runs_as_written_and_base_every_rolls_over_without_a_gap() {
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("log");
    std::fs::create_dir(&dest).unwrap();
    let units = tmp.path().join("units");
    std::fs::create_dir(&units).unwrap();
    let mut args: Vec<String> = ["schedule", "print", "systemd", "follow", "--dir"]
        .map(String::from)
        .to_vec();
    args.push(s(&units));
    args.extend(
        [
            "--",
            &format!("{}/", dest.display()),
            "--flush=200ms",
            "--base-every=2s",
            "--endpoints",
            &c.members[0].client_url,
        ]
        .map(|a| a.to_string()),
    );
    args.extend(c.tls_args());
    let r = etcdops(&args_of(&args), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let service = units.join("etcdops-follow.service");
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&service)
        .output()
        .expect("systemd-analyze (scripts/test-deps.sh installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("etcdops-follow"),
        "{stderr}"
    );
    let unit = std::fs::read_to_string(&service).unwrap();
    assert!(unit.contains("Restart=always") && unit.contains("WantedBy=multi-user.target"));
    assert!(!units.join("etcdops-snapshot.timer").exists(), "no timer");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .to_string();

    // The service's command, as written, under a write load long enough for two new bases.
    let log = tmp.path().join("follow.log");
    let mut f = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec {exec}"))
        .env_clear()
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = background_writes(&c, stop.clone());
    std::thread::sleep(std::time::Duration::from_secs(6));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    // The newest base may have been saved a moment ago: the chain before it is carried up to it.
    wait_carried(&dest, revision(&c), &log);
    send_signal(f.id(), "TERM");
    assert!(f.wait().unwrap().success());
    let listed = ls_json(&dest);
    let chains = listed["chains"].as_array().unwrap().clone();
    assert!(chains.len() >= 2, "{listed}");
    let v = verify_chain(&dest);
    assert_eq!(v.code, 0, "{v:?}");

    // A follower stopped in the middle of a rollover (the new base saved, the old chain not yet
    // carried up to it): the next start carries it first.
    let before = chains[chains.len() - 2]["base"]
        .as_str()
        .unwrap()
        .to_string();
    drop_last_segment(&dest, &before);
    assert!(!gaps(&dest).is_empty(), "{}", ls_json(&dest));
    let log2 = tmp.path().join("follow-2.log");
    let mut f = follow(&c, &dest, &log2);
    wait_carried(&dest, revision(&c), &log2);
    send_signal(f.id(), "TERM");
    assert!(f.wait().unwrap().success());
    let said = std::fs::read_to_string(&log2).unwrap();
    assert!(
        said.contains(&format!("carrying the chain of {before} from revision")),
        "{said}"
    );
    // Stopped longer than --base-every, the service carries its chain up to a new base.
    let newest = ls_json(&dest)["chains"].as_array().unwrap().last().unwrap()["base"].clone();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut f = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec {exec}"))
        .env_clear()
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while ls_json(&dest)["chains"].as_array().unwrap().len() == chains.len() {
        assert!(
            start.elapsed().as_secs() < 60,
            "no new base: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    c.client(None)
        .put_all(&[(b"/registry/w/after-restart".to_vec(), b"x".to_vec())], 1);
    wait_carried(&dest, revision(&c), &log);
    send_signal(f.id(), "TERM");
    assert!(f.wait().unwrap().success());
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains(&format!(
            "carrying the chain of {} from revision",
            newest.as_str().unwrap()
        )),
        "{said}"
    );
    let listed = ls_json(&dest);
    let chains = listed["chains"].as_array().unwrap().clone();
    let v = verify_chain(&dest);
    assert_eq!(v.code, 0, "{v:?}");

    // Retention by time: every base of the last hour (all of them) with every segment.
    let src = format!("{}/", dest.display());
    let p = etcdops(
        &[
            "snapshot",
            "prune",
            &src,
            "--keep-within",
            "1h",
            "--dry-run",
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(p.code, 0, "{p:?}");
    let plan = p.json();
    assert!(plan["segments_deleted"].is_null(), "{plan}");
    assert!(
        plan["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "keep" && s["why"].as_str().unwrap().contains("within")),
        "{plan}"
    );
    // Retention keeps only the newest base, and its segments; the others' go with them.
    let p = etcdops(
        &["snapshot", "prune", &src, "--keep-last", "1", "-w", "json"],
        &[],
    );
    assert_eq!(p.code, 0, "{p:?}");
    assert!(
        !p.json()["segments_deleted"].as_array().unwrap().is_empty(),
        "{p:?}"
    );
    let after = ls_json(&dest);
    assert_eq!(after["chains"].as_array().unwrap().len(), 1, "{after}");
    assert_eq!(
        after["chains"][0]["last_revision"],
        chains.last().unwrap()["last_revision"]
    );
    let v = verify_chain(&dest);
    assert_eq!(v.code, 0, "{v:?}");
    let leftovers = std::fs::read_dir(&dest)
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name().into_string().unwrap();
            n.contains(".log-")
                && !n.starts_with(
                    after["chains"][0]["base"]
                        .as_str()
                        .unwrap()
                        .trim_end_matches(".db"),
                )
        })
        .count();
    assert_eq!(leftovers, 0, "segments of pruned bases are gone");

    // The Deployment: one replica, never two at once, the pod restarted when it stops.
    let r = etcdops(
        &[
            "schedule",
            "print",
            "cronjob",
            "follow",
            "--",
            "s3://bkt/p/",
            "--compress",
            "zstd",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let doc: serde_json::Value = serde_yaml_ng::from_str(&r.stdout).unwrap();
    assert_eq!(doc["kind"], "Deployment");
    assert_eq!(doc["spec"]["replicas"], 1);
    assert_eq!(doc["spec"]["strategy"]["type"], "Recreate");
    let pod = &doc["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["containers"][0]["args"][1], "follow");
    let r = etcdops(
        &[
            "schedule",
            "print",
            "systemd",
            "follow",
            "--every",
            "1h",
            "--",
            "s3://bkt/p/",
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
}
