//! Looking inside snapshots offline (`snapshot ls SOURCE`, `get`, `diff`, `verify --boot`),
//! against snapshots real etcd wrote in this run and the live server as the oracle: what
//! etcdops reads from the file must be what etcdctl read from the server at save time.

use crate::common::s;
use std::process::Command;

use serde_json::Value;

use crate::common::cluster::{Cluster, ClusterOptions, Version};
use crate::common::oracle::{etcdctl, etcdctl_json};
use crate::common::run::etcdops;

/// etcdctl's kvs, each reduced to the fields both tools print.
fn kvs(doc: &Value) -> Vec<Value> {
    doc["kvs"].as_array().cloned().unwrap_or_default()
}

struct History {
    cluster: Cluster,
    /// (revision, etcdctl's `get "" --prefix -w json` at it)
    before_compaction: i64,
    old_rev: i64,
    old_doc: Value,
    latest_doc: Value,
    snapshot: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn put(c: &Cluster, args: &[&str]) {
    let out = c.etcdctl(&c.members[0].client_url, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn revision(c: &Cluster) -> i64 {
    let v = etcdctl_json(
        c,
        &etcdctl(),
        &c.members[0].client_url,
        &["endpoint", "status", "-w", "json"],
    );
    v[0]["Status"]["header"]["revision"].as_i64().unwrap()
}

/// Puts, updates, deletes, a lease, a compaction, binary values; then a save.
fn history(version: Version) -> History {
    let c = Cluster::start(ClusterOptions::new(version, 1));
    for i in 0..30 {
        put(
            &c,
            &[
                "put",
                &format!("/registry/pods/ns{}/p{i}", i % 3),
                &format!("v{i}"),
            ],
        );
    }
    put(&c, &["put", "/registry/namespaces/ns0", "ns"]);
    put(&c, &["put", "/plain/key", "x"]);
    let before_compaction = revision(&c);
    for i in 0..10 {
        put(
            &c,
            &["put", &format!("/registry/pods/ns0/p{}", i * 3), "updated"],
        );
    }
    put(&c, &["del", "/registry/pods/ns1/p1"]);
    put(&c, &["del", "/registry/pods/ns2", "--prefix"]);
    let compact_at = revision(&c);
    put(&c, &["compact", &compact_at.to_string()]);
    let lease = c.etcdctl(&c.members[0].client_url, &["lease", "grant", "600"]);
    let lease_id = String::from_utf8_lossy(&lease.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    put(
        &c,
        &[
            "put",
            "/registry/events/ns0/e1",
            "leased",
            &format!("--lease={lease_id}"),
        ],
    );
    // A binary value with NUL, 0xff and newlines, through the v3 API.
    let mut tc = c.client(None);
    tc.put_all(
        &[(b"/bin/value".to_vec(), vec![0, 0xff, b'\n', 7, b'\n', 0x80])],
        1,
    );
    drop(tc);
    put(&c, &["put", "/registry/pods/ns0/p3", "again"]);
    let old_rev = revision(&c);
    put(&c, &["put", "/registry/pods/ns0/p4", "later"]);
    put(&c, &["del", "/plain/key"]);
    let url = c.members[0].client_url.clone();
    let old_doc = etcdctl_json(
        &c,
        &etcdctl(),
        &url,
        &[
            "get",
            "",
            "--prefix",
            "--rev",
            &old_rev.to_string(),
            "-w",
            "json",
        ],
    );
    let latest_doc = etcdctl_json(&c, &etcdctl(), &url, &["get", "", "--prefix", "-w", "json"]);
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("snap.db");
    c.etcdctl_save(0, &snapshot, None);
    let _ = before_compaction;
    History {
        cluster: c,
        before_compaction,
        old_rev,
        old_doc,
        latest_doc,
        snapshot,
        _dir: dir,
    }
}

#[test]
fn keys_values_and_revisions_match_etcdctl_on_the_live_server_3_5_1() {
    keys_values_and_revisions_match_etcdctl_on_the_live_server(Version::V3_5_1);
}

#[test]
fn keys_values_and_revisions_match_etcdctl_on_the_live_server_3_5_30() {
    keys_values_and_revisions_match_etcdctl_on_the_live_server(Version::V3_5_30);
}

fn keys_values_and_revisions_match_etcdctl_on_the_live_server(version: Version) {
    let h = history(version);
    let snap = s(&h.snapshot);
    let ours = etcdops(&["snapshot", "ls", &snap, "--values", "-w", "json"], &[]);
    assert_eq!(ours.code, 0, "{ours:?}");
    let ours = ours.json();
    assert_eq!(kvs(&ours), kvs(&h.latest_doc));
    assert_eq!(ours["count"], h.latest_doc["count"]);
    assert_eq!(
        ours["header"]["revision"],
        h.latest_doc["header"]["revision"]
    );

    let old = etcdops(
        &[
            "snapshot",
            "ls",
            &snap,
            "--values",
            "--rev",
            &h.old_rev.to_string(),
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(old.code, 0, "{old:?}");
    assert_eq!(kvs(&old.json()), kvs(&h.old_doc));

    // Below the compaction, and past the end: refused with one line.
    for (rev, needle) in [(h.before_compaction, "compacted"), (1_000_000, "future")] {
        let r = etcdops(&["snapshot", "ls", &snap, "--rev", &rev.to_string()], &[]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains(needle), "{r:?}");
    }

    // get --print-value-only: byte for byte what etcdctl prints, binary value included.
    for key in [
        "/bin/value",
        "/registry/pods/ns0/p3",
        "/registry/events/ns0/e1",
    ] {
        let theirs = h.cluster.etcdctl(
            &h.cluster.members[0].client_url,
            &["get", key, "--print-value-only"],
        );
        let ours = Command::new(env!("CARGO_BIN_EXE_etcdops"))
            .env_clear()
            .args(["snapshot", "get", &snap, key, "--print-value-only"])
            .output()
            .unwrap();
        assert!(ours.status.success());
        assert_eq!(ours.stdout, theirs.stdout, "{key}");
    }
    let missing = etcdops(&["snapshot", "get", &snap, "/nope"], &[]);
    assert_eq!(missing.code, 1, "{missing:?}");

    // --summary counts equal a count of the same keys.
    let sum = etcdops(&["snapshot", "ls", &snap, "--summary", "-w", "json"], &[]).json();
    let pods = sum["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "pods")
        .unwrap();
    let live_pods = kvs(&h.latest_doc)
        .iter()
        .filter(|kv| {
            let k = base64_decode(kv["key"].as_str().unwrap());
            k.starts_with(b"/registry/pods/")
        })
        .count();
    assert_eq!(pods["keys"], live_pods as u64);
    let ns0 = sum["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["namespace"] == "ns0")
        .unwrap();
    let live_ns0 = kvs(&h.latest_doc)
        .iter()
        .filter(|kv| {
            let k = String::from_utf8(base64_decode(kv["key"].as_str().unwrap())).unwrap();
            k.starts_with("/registry/")
                && k.split('/').nth(3) == Some("ns0")
                && k.split('/').count() == 5
        })
        .count();
    assert_eq!(ns0["keys"], live_ns0 as u64);

    // verify --boot with a real etcd: it serves the snapshot's revision and key count, and
    // says which etcd it booted. (Its own TMPDIR: other tests boot at the same time.)
    let etcd = version.etcd();
    let private = tempfile::tempdir().unwrap();
    let private_s = s(private.path());
    let v = etcdops(
        &[
            "snapshot",
            "verify",
            &snap,
            "--boot",
            "--etcd",
            &s(&etcd),
            "-w",
            "json",
        ],
        &[("TMPDIR", &private_s)],
    );
    assert_eq!(v.code, 0, "{v:?}");
    let checks = v.json()["checks"].as_array().unwrap().clone();
    let boot = checks.iter().find(|c| c["check"] == "boot").unwrap();
    assert_eq!(boot["ok"], true, "{v:?}");
    assert!(
        boot["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("revision {}", h.latest_doc["header"]["revision"])),
        "{v:?}"
    );
    assert!(
        boot["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("etcd {} (", version.expected_version())),
        "{v:?}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(private.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .contains("etcdops-verify-boot.etcdops")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let no_etcd = etcdops(
        &[
            "snapshot",
            "verify",
            &snap,
            "--boot",
            "--etcd",
            "/nonexistent/etcd",
        ],
        &[],
    );
    assert_eq!(no_etcd.code, 1, "{no_etcd:?}");
    assert!(no_etcd.stderr.contains("boot"), "{no_etcd:?}");

    // An etcd that exits at once, and an interrupted boot: exit 1, nothing left in TMPDIR.
    let tmp = tempfile::tempdir().unwrap();
    let tmp_s = s(tmp.path());
    let failing = etcdops(
        &[
            "snapshot",
            "verify",
            &snap,
            "--boot",
            "--etcd",
            "/bin/false",
        ],
        &[("TMPDIR", &tmp_s)],
    );
    assert_eq!(failing.code, 1, "{failing:?}");
    assert!(failing.stderr.contains("boot"), "{failing:?}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    let etcd_s = s(&etcd);
    let boot = || {
        crate::common::run::etcdops_spawn_env(
            &["snapshot", "verify", &snap, "--boot", "--etcd", &etcd_s],
            &[("TMPDIR", &tmp_s)],
        )
    };
    let mut child = boot();
    let start = std::time::Instant::now();
    while std::fs::read_dir(tmp.path()).unwrap().count() == 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the boot never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    crate::common::run::send_signal(child.id(), "INT");
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "an interrupted boot is a failed check"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the boot left files behind"
    );

    // Interrupted once its etcd runs: the etcd is stopped, nothing is left in TMPDIR.
    for signal in ["INT", "TERM"] {
        let child = boot();
        let start = std::time::Instant::now();
        let etcd_pid = boot_etcd_pid(child.id());
        crate::common::run::send_signal(child.id(), signal);
        let r = crate::common::run::wait_run(child, start, std::time::Duration::from_secs(60));
        assert_eq!(r.code, 1, "{signal}: {r:?}");
        assert!(
            r.stdout.contains(&format!("SIG{signal}"))
                || r.stderr.contains(&format!("SIG{signal}")),
            "{signal}: the check names the signal: {r:?}"
        );
        assert!(
            !running(etcd_pid),
            "{signal}: the boot's etcd (PID {etcd_pid}) still runs"
        );
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{signal}: the boot left files behind"
        );
    }

    // SIGKILLed once its etcd runs: the etcd dies with it (it would otherwise serve the
    // restored keyspace, unauthenticated, for ever), and the next run sweeps what it left.
    let mut child = boot();
    let etcd_pid = boot_etcd_pid(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = std::time::Instant::now();
    while running(etcd_pid) {
        assert!(
            killed.elapsed() < std::time::Duration::from_secs(5),
            "the boot's etcd (PID {etcd_pid}) outlived its SIGKILLed parent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let again = etcdops(
        &["snapshot", "verify", &snap, "--boot", "--etcd", &etcd_s],
        &[("TMPDIR", &tmp_s)],
    );
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the killed boot's files were not swept"
    );
}

/// The PID of the etcd that `verify --boot` (PID `parent`) started, once it runs.
fn boot_etcd_pid(parent: u32) -> u32 {
    let start = std::time::Instant::now();
    loop {
        if let Some(pid) = child_named(parent, "etcd") {
            return pid;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "etcd never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The boot's etcd: a child process of `parent` whose command name is `name` and which was
/// started with `--name=verify` (not the `etcd --version` probe before it).
fn child_named(parent: u32, name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid: u32 = rest.split(' ').nth(1)?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let booting = cmdline.split(|b| *b == 0).any(|a| a == b"--name=verify");
        (ppid == parent && comm == name && booting).then_some(pid)
    })
}

/// The process exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn diff_of_two_saves_lists_exactly_the_changes_between_them() {
    for version in Version::BOTH_3_5 {
        diff_of_two_saves(version);
    }
}

fn diff_of_two_saves(version: Version) {
    let c = Cluster::start(ClusterOptions::new(version, 1));
    for i in 0..20 {
        put(&c, &["put", &format!("/registry/configmaps/a/c{i}"), "v"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    c.etcdctl_save(0, &old, None);
    put(&c, &["put", "/registry/configmaps/a/c1", "changed"]);
    put(&c, &["put", "/registry/configmaps/a/c2", "v"]); // same value, new mod revision
    put(&c, &["del", "/registry/configmaps/a/c3"]);
    put(&c, &["put", "/registry/secrets/a/s1", "new"]);
    let new = dir.path().join("new.db");
    c.etcdctl_save(0, &new, None);
    let r = etcdops(&["snapshot", "diff", &s(&old), &s(&new), "-w", "json"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let d = r.json();
    let lines: Vec<(String, String)> = d["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["change"].as_str().unwrap().to_string(),
                l["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "changed".to_string(),
                "/registry/configmaps/a/c1".to_string()
            ),
            (
                "changed".to_string(),
                "/registry/configmaps/a/c2".to_string()
            ),
            (
                "removed".to_string(),
                "/registry/configmaps/a/c3".to_string()
            ),
            ("added".to_string(), "/registry/secrets/a/s1".to_string()),
        ]
    );
    let sum = etcdops(
        &[
            "snapshot",
            "diff",
            &s(&old),
            &s(&new),
            "--summary",
            "-w",
            "json",
        ],
        &[],
    )
    .json();
    let cm = sum["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "configmaps")
        .unwrap();
    assert_eq!(
        (
            cm["added"].as_u64(),
            cm["removed"].as_u64(),
            cm["changed"].as_u64()
        ),
        (Some(0), Some(1), Some(2))
    );
}

/// The offline readers on one fresh cluster of each release: its empty keyspace first, then
/// hostile keys, then Kubernetes objects (each check adds only its own keys).
#[test]
fn empty_keyspace_hostile_keys_and_decode_3_5_1() {
    empty_keyspace_hostile_keys_and_decode(Version::V3_5_1);
}

#[test]
fn empty_keyspace_hostile_keys_and_decode_3_5_30() {
    empty_keyspace_hostile_keys_and_decode(Version::V3_5_30);
}

fn empty_keyspace_hostile_keys_and_decode(version: Version) {
    let c = Cluster::start(ClusterOptions::new(version, 1));
    an_empty_keyspace_is_at_revision_1(&c, version);
    hostile_keys_and_values_never_reach_the_terminal_raw(&c);
    decode_shows_kubernetes_objects(&c);
}

fn decode_shows_kubernetes_objects(c: &Cluster) {
    use etcdops::proto::Message;
    // A Pod as the apiserver stores it: `k8s\0` + runtime.Unknown{typeMeta, raw}.
    let meta = Message::new().bytes(1, b"nginx").bytes(3, b"web");
    let raw = Message::new().message(1, &meta).finish();
    let type_meta = Message::new().bytes(1, b"v1").bytes(2, b"Pod");
    let unknown = Message::new()
        .message(1, &type_meta)
        .bytes(2, &raw)
        .finish();
    let mut value = b"k8s\0".to_vec();
    value.extend_from_slice(&unknown);
    let json = br#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1","namespace":"web"},"spec":{"size":3}}"#;
    let mut tc = c.client(None);
    tc.put_all(
        &[
            (b"/registry/pods/web/nginx".to_vec(), value),
            (
                b"/registry/example.com/widgets/web/w1".to_vec(),
                json.to_vec(),
            ),
            (
                b"/registry/secrets/web/s".to_vec(),
                b"k8s:enc:aescbc:v1:key1:\x01\x02\x03".to_vec(),
            ),
        ],
        3,
    );
    drop(tc);
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("k8s.db");
    c.etcdctl_save(0, &snap, None);
    let get = |key: &str| {
        etcdops(
            &[
                "snapshot",
                "get",
                &s(&snap),
                key,
                "--decode",
                "-w",
                "simple",
            ],
            &[],
        )
    };
    let pod = get("/registry/pods/web/nginx");
    assert_eq!(pod.code, 0, "{pod:?}");
    assert!(
        pod.stdout.contains("Pod") && pod.stdout.contains("web/nginx") && pod.stdout.contains("v1"),
        "{pod:?}"
    );
    let widget = get("/registry/example.com/widgets/web/w1");
    assert!(widget.stdout.contains("\"size\": 3"), "{widget:?}");
    let secret = get("/registry/secrets/web/s");
    assert!(
        secret.stdout.contains("aescbc") && secret.stdout.contains("key1"),
        "{secret:?}"
    );
    // --decode means the same in every format (#28 item 16): the table's VALUE column and JSON's
    // "decoded" are the summary; JSON values also come back as the object itself.
    for (key, word) in [
        ("/registry/pods/web/nginx", "Pod"),
        ("/registry/example.com/widgets/web/w1", "Widget"),
        ("/registry/secrets/web/s", "aescbc"),
    ] {
        let run = |format: &str| {
            etcdops(
                &["snapshot", "get", &s(&snap), key, "--decode", "-w", format],
                &[],
            )
        };
        let (table, json) = (run("table"), run("json"));
        let doc = json.json();
        let decoded = doc["kvs"][0]["decoded"].as_str().unwrap().to_string();
        assert!(decoded.contains(word), "{key}: {decoded}");
        assert!(
            table.stdout.contains(&decoded),
            "{key}: {} vs {decoded}",
            table.stdout
        );
        assert!(
            doc["kvs"][0]["value"].is_string(),
            "etcdctl's value stays: {}",
            json.stdout
        );
    }
    let widget = etcdops(
        &[
            "snapshot",
            "get",
            &s(&snap),
            "/registry/example.com/widgets/web/w1",
            "--decode",
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(widget.json()["kvs"][0]["object"]["spec"]["size"], 3);
}

/// Keys and values with escape sequences and newlines: `ls`, `get` and `diff` never print them
/// raw in table or simple output (JSON escapes them as JSON does). `get --print-value-only`
/// prints the value's bytes as etcdctl does: that is its contract.
fn hostile_keys_and_values_never_reach_the_terminal_raw(c: &Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.db"), dir.path().join("new.db"));
    put(c, &["put", "/plain", "x"]);
    c.etcdctl_save(0, &old, None);
    let key = "/evil\u{1b}]0;pwned\u{7}\nforged line";
    put(c, &["put", key, "v\u{1b}[2J\nforged value"]);
    c.etcdctl_save(0, &new, None);
    let (old, new) = (s(&old), s(&new));
    for format in ["table", "simple"] {
        for args in [
            vec!["snapshot", "ls", new.as_str(), "--values"],
            vec!["snapshot", "get", new.as_str(), key],
            vec!["snapshot", "diff", old.as_str(), new.as_str()],
        ] {
            let mut a = args.clone();
            a.extend(["-w", format]);
            let r = etcdops(&a, &[]);
            assert_eq!(r.code, 0, "{args:?}: {r:?}");
            // No control byte but the rows' own newlines, on stdout or stderr.
            for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
                assert!(
                    !text.chars().any(|c| c.is_control() && c != '\n'),
                    "{args:?} {format}: a raw control character on {name}: {text:?}"
                );
            }
            assert!(
                !r.stdout.contains("\nforged"),
                "{args:?} {format}: a forged line in {:?}",
                r.stdout
            );
            // The escaped form is shown instead.
            assert!(
                r.stdout.contains("evil\\u{1b}]0;pwned\\u{7}\\nforged"),
                "{args:?} {format}: {:?}",
                r.stdout
            );
        }
    }
}

/// #28 item 14: a snapshot of an empty keyspace is at revision 1, as etcd serves it (its store
/// starts there), in `ls`'s header, and `verify --boot` agrees with the etcd it boots.
fn an_empty_keyspace_is_at_revision_1(c: &Cluster, version: Version) {
    let live = etcdctl_json(
        c,
        &etcdctl(),
        &c.members[0].client_url,
        &["get", "", "--prefix", "-w", "json"],
    );
    let served = live["header"]["revision"].as_i64().unwrap();
    assert_eq!(served, 1);
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("empty.db");
    c.etcdctl_save(0, &snap, None);
    let r = etcdops(&["snapshot", "ls", &s(&snap), "-w", "json"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.json()["header"]["revision"].as_i64(),
        Some(served),
        "{}",
        r.stdout
    );
    assert!(kvs(&r.json()).is_empty(), "{}", r.stdout);
    let etcd = version.etcd();
    let r = etcdops(
        &[
            "snapshot",
            "verify",
            &s(&snap),
            "--boot",
            "--etcd",
            &s(&etcd),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("served revision 1 with 0 keys"),
        "{}",
        r.stdout
    );
}
