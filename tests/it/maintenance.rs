//! Keeping the cluster running, against real etcd: NOSPACE filled for real and recovered in one
//! command, defragmentation one member at a time with the leader last (read from the members'
//! own logs), quorum protection, consistency checks, and `health --wait` after a restart.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::cluster::{Cluster, ClusterOptions, Version};
use crate::common::oracle::{assert_superset, etcdctl_json};
use crate::common::run::{args, etcdops, run_printed, Run};

fn run(c: &Cluster, argv: &[&str]) -> Run {
    let tls = c.tls_args();
    let mut all = argv.to_vec();
    let eps = c.endpoints_arg();
    all.extend(["--endpoints", eps.as_str()]);
    etcdops(&args(&all, &tls), &[])
}

fn status(c: &Cluster) -> Vec<Value> {
    let r = run(c, &["status", "-w", "json"]);
    r.json().as_array().unwrap().clone()
}

fn leader_endpoint(c: &Cluster) -> String {
    status(c)
        .iter()
        .find(|r| r["isLeader"] == true)
        .map(|r| r["Endpoint"].as_str().unwrap().to_string())
        .unwrap()
}

/// Overwrite one key until the quota is hit: the history fills the database.
fn fill_to_nospace(c: &Cluster) {
    let mut tc = c.client(None);
    let value = vec![b'x'; 512 * 1024];
    let mut filled = false;
    for _ in 0..200 {
        match tc.rt.block_on(tc.client.put("/fill", value.clone(), None)) {
            Ok(_) => {}
            Err(e) => {
                assert!(e.to_string().contains("database space exceeded"), "{e}");
                filled = true;
                break;
            }
        }
    }
    assert!(filled, "the quota was never reached");
    drop(tc);
}

/// (start, end) of each defragmentation in member `i`'s log, as etcd timestamps them.
fn defrag_spans(c: &Cluster, i: usize) -> Vec<(String, String)> {
    let log = std::fs::read_to_string(&c.members[i].log).unwrap();
    let mut spans = Vec::new();
    let mut start = None;
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let ts = v["ts"].as_str().unwrap_or_default().to_string();
        match v["msg"].as_str() {
            Some("defragmenting") => start = Some(ts),
            Some("finished defragmenting directory") => {
                if let Some(s) = start.take() {
                    spans.push((s, ts));
                }
            }
            _ => {}
        }
    }
    spans
}

#[test]
fn nospace_is_recovered_in_one_command_3_5_1() {
    nospace_is_recovered_in_one_command(Version::V3_5_1);
}

#[test]
fn nospace_is_recovered_in_one_command_3_5_30() {
    nospace_is_recovered_in_one_command(Version::V3_5_30);
}

fn nospace_is_recovered_in_one_command(version: Version) {
    let mut opts = ClusterOptions::new(version, 3);
    opts.extra_args = vec!["--quota-backend-bytes=16777216".into()];
    let c = Cluster::start(opts);
    fill_to_nospace(&c);
    let before: i64 = status(&c)
        .iter()
        .map(|r| r["Status"]["dbSize"].as_i64().unwrap())
        .max()
        .unwrap();

    let h = run(&c, &["health"]);
    assert_eq!(h.code, 1, "{h:?}");
    assert!(h.stdout.contains("NOSPACE"), "{}", h.stdout);
    assert!(
        h.stderr
            .contains("hint: the database reached its quota (NOSPACE)"),
        "{}",
        h.stderr
    );
    let alarms = run(&c, &["alarm", "list", "-w", "simple"]);
    assert!(alarms.stdout.contains("alarm:NOSPACE"), "{alarms:?}");

    // The plan first: the etcdctl commands, nothing changed.
    let dry = run(&c, &["recover-space", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    for needle in ["compact ", "--physical", "defrag", "alarm disarm"] {
        assert!(dry.stdout.contains(needle), "{needle}: {}", dry.stdout);
    }
    assert!(run(&c, &["alarm", "list", "-w", "simple"])
        .stdout
        .contains("NOSPACE"));

    let r = run(&c, &["recover-space", "-w", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    assert!(
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["ok"] == true),
        "{report}"
    );
    assert!(report["freed"].as_i64().unwrap() > 0, "{report}");
    let after: i64 = status(&c)
        .iter()
        .map(|r| r["Status"]["dbSize"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(after < before, "{after} < {before}");
    let h = run(&c, &["health"]);
    assert_eq!(h.code, 0, "{h:?}");
    let mut tc = c.client(None);
    tc.rt.block_on(tc.client.put("/after", "ok", None)).unwrap();

    // Right after the compaction the cluster stands at the compacted revision: the check
    // still compares every member.
    let k = run(&c, &["check", "consistency", "--cluster", "-w", "json"]);
    assert_eq!(k.code, 0, "{k:?}");
    let rows = k.json();
    let hashes: Vec<u64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["HashKV"]["hash"].as_u64().unwrap())
        .collect();
    assert_eq!(hashes.len(), 3);
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
}

#[test]
fn defrag_goes_one_member_at_a_time_with_the_leader_last_3_5_1() {
    defrag_goes_one_member_at_a_time_with_the_leader_last(Version::V3_5_1);
}

#[test]
fn defrag_goes_one_member_at_a_time_with_the_leader_last_3_5_30() {
    defrag_goes_one_member_at_a_time_with_the_leader_last(Version::V3_5_30);
}

fn defrag_goes_one_member_at_a_time_with_the_leader_last(version: Version) {
    let mut c = Cluster::start(ClusterOptions::new(version, 3));
    let leader = leader_endpoint(&c);
    let r = run(&c, &["defrag", "--cluster", "-w", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rows = r.json();
    let order: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["endpoint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order.last(), Some(&leader), "{order:?}");
    // From the members' own logs: three defragmentations that never overlap, the leader's last.
    let mut spans: Vec<(String, String, String)> = (0..3)
        .flat_map(|i| {
            let ep = c.members[i].client_url.clone();
            defrag_spans(&c, i)
                .into_iter()
                .map(move |(s, e)| (s, e, ep.clone()))
        })
        .collect();
    spans.sort();
    assert_eq!(spans.len(), 3, "{spans:?}");
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping defragmentations: {w:?}");
    }
    assert_eq!(spans[2].2, leader, "{spans:?}");

    // A member already down: refused (quorum), unless --force, which skips and reports it.
    let follower = (0..3).find(|&i| c.members[i].client_url != leader).unwrap();
    c.kill(follower);
    let r = run(&c, &["defrag", "--cluster", "--dial-timeout", "1s"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("quorum"), "{}", r.stderr);
    // The refusal names the member that is down (#28 item 13), and only it.
    let down = &c.members[follower].client_url;
    assert!(
        r.stderr.contains(&format!("down ({down} (")),
        "{}",
        r.stderr
    );
    for (i, m) in c.members.iter().enumerate() {
        assert!(
            i == follower || !r.stderr.contains(&m.client_url),
            "{}",
            r.stderr
        );
    }
    // recover-space refuses the same, its dry run too (it planned the defragmentation before).
    for dry in [true, false] {
        let mut argv = vec!["recover-space", "--dial-timeout", "1s"];
        if dry {
            argv.push("--dry-run");
        }
        let r = run(&c, &argv);
        assert_eq!(r.code, 2, "dry run {dry}: {r:?}");
        assert!(r.stderr.contains("refusing to defragment"), "{}", r.stderr);
    }
    let r = run(
        &c,
        &[
            "defrag",
            "--cluster",
            "--force",
            "--dial-timeout",
            "1s",
            "-w",
            "json",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let doc = r.json();
    let skipped: Vec<&Value> = doc
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["error"].is_null())
        .collect();
    assert_eq!(skipped.len(), 1, "{}", r.stdout);
    assert!(
        skipped[0]["error"].as_str().unwrap().contains("skipped"),
        "{}",
        r.stdout
    );
}

#[test]
fn health_wait_returns_when_a_restarted_member_is_back_3_5_1() {
    health_wait_returns_when_a_restarted_member_is_back(Version::V3_5_1);
}

#[test]
fn health_wait_returns_when_a_restarted_member_is_back_3_5_30() {
    health_wait_returns_when_a_restarted_member_is_back(Version::V3_5_30);
}

fn health_wait_returns_when_a_restarted_member_is_back(version: Version) {
    let mut c = Cluster::start(ClusterOptions::new(version, 3));
    c.kill(2);
    let start = Instant::now();
    let (tls, eps) = (c.tls_args(), c.endpoints_arg());
    let waiting = std::thread::spawn(move || {
        etcdops(
            &args(&["health", "--wait", "40s", "--endpoints", &eps], &tls),
            &[],
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    // The restart happens while `health --wait` polls.
    c.restart(2);
    let r = waiting.join().unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(35),
        "{:?}",
        start.elapsed()
    );
    // --expect-revision: a revision no member serves yet is waited for, then given up on.
    let r = run(
        &c,
        &["health", "--wait", "3s", "--expect-revision", "999999"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("not yet 999999"), "{}", r.stdout);
    c.kill(2);
    let start = Instant::now();
    let r = run(&c, &["health", "--wait", "3s", "--dial-timeout", "1s"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(
        r.stderr.contains("still unhealthy after waiting 3s"),
        "{}",
        r.stderr
    );
}

#[test]
fn compact_defrag_and_alarms_on_3_4_23() {
    let c = Cluster::start(ClusterOptions::new(Version::V3_4_23, 1));
    let mut tc = c.client(None);
    for i in 0..20 {
        tc.rt
            .block_on(tc.client.put("/k", format!("v{i}"), None))
            .unwrap();
    }
    drop(tc);
    let a = run(&c, &["alarm", "list", "-w", "json"]);
    assert_eq!(a.code, 0, "{a:?}");
    assert!(a.json().get("alarms").is_none(), "{}", a.stdout);
    let k = run(&c, &["compaction", "-w", "simple"]);
    assert_eq!(k.code, 0, "{k:?}");
    assert!(k.stdout.starts_with("compacted revision "), "{}", k.stdout);
    let d = run(&c, &["defrag", "-w", "simple"]);
    assert_eq!(d.code, 0, "{d:?}");
    assert!(
        d.stdout.starts_with("Finished defragmenting etcd member["),
        "{}",
        d.stdout
    );
    let h = run(&c, &["endpoint", "hashkv", "-w", "json"]);
    assert_eq!(h.code, 0, "{h:?}");
    assert!(
        h.json()[0]["HashKV"]["hash"].as_u64().is_some(),
        "{}",
        h.stdout
    );
    // etcdctl's documents, key by key (3.4.23's etcdctl is Debian's).
    let ctl = std::path::Path::new("/usr/bin/etcdctl");
    let eps = c.endpoints_arg();
    let theirs = etcdctl_json(&c, ctl, &eps, &["alarm", "list", "-w", "json"]);
    let ours = run(&c, &["alarm", "list", "-w", "json"]).json();
    assert_superset(&theirs, &ours, "alarm", &["raft_term", "revision"]);
    let theirs = etcdctl_json(&c, ctl, &eps, &["endpoint", "hashkv", "-w", "json"]);
    let ours = run(&c, &["endpoint", "hashkv", "-w", "json"]).json();
    assert_superset(&theirs, &ours, "hashkv", &["raft_term", "revision"]);
}

#[test]
fn the_printed_etcdctl_recipe_works_as_printed_3_5_1() {
    the_printed_etcdctl_recipe_works_as_printed(Version::V3_5_1);
}

#[test]
fn the_printed_etcdctl_recipe_works_as_printed_3_5_30() {
    the_printed_etcdctl_recipe_works_as_printed(Version::V3_5_30);
}

/// The etcdctl commands `recover-space --dry-run` prints, run exactly as printed (with the
/// cluster's own etcdctl first on PATH), recover a NOSPACE cluster.
fn the_printed_etcdctl_recipe_works_as_printed(version: Version) {
    let mut opts = ClusterOptions::new(version, 1);
    opts.extra_args = vec!["--quota-backend-bytes=16777216".into()];
    let c = Cluster::start(opts);
    fill_to_nospace(&c);
    let dry = run(&c, &["recover-space", "--dry-run", "-w", "json"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    let ctl_dir = version
        .binary("etcdctl")
        .parent()
        .unwrap()
        .display()
        .to_string();
    for step in dry.json()["steps"].as_array().unwrap() {
        let printed = step["etcdctl"].as_str().unwrap();
        let r = run_printed(
            &format!("PATH={ctl_dir}:$PATH; {printed}"),
            &[],
            c.dir.path(),
        );
        assert_eq!(r.code, 0, "{printed}: {r:?}");
    }
    let h = run(&c, &["health"]);
    assert_eq!(h.code, 0, "{h:?}");
}

/// `health --cluster` answers for every member of the list. All three members stopped, two
/// started again while it waits: the member list is read once they answer, and the third is a
/// row that stays unhealthy (it printed one row and exit 0 before). Once the third is back,
/// exit 0 with three rows. A member added but not started is an `unstarted` row, exit 1.
#[test]
fn health_cluster_covers_every_member_of_the_list_3_5_1() {
    health_cluster_covers_every_member_of_the_list(Version::V3_5_1);
}

#[test]
fn health_cluster_covers_every_member_of_the_list_3_5_30() {
    health_cluster_covers_every_member_of_the_list(Version::V3_5_30);
}

fn health_cluster_covers_every_member_of_the_list(version: Version) {
    let mut c = Cluster::start(ClusterOptions::new(version, 3));
    for i in 0..3 {
        c.kill(i);
    }
    let (tls, first) = (c.tls_args(), c.members[0].client_url.clone());
    let waiting = std::thread::spawn(move || {
        etcdops(
            &args(
                &[
                    "health",
                    "--cluster",
                    "--wait",
                    "15s",
                    "--dial-timeout",
                    "1s",
                    "-w",
                    "json",
                    "--endpoints",
                    &first,
                ],
                &tls,
            ),
            &[],
        )
    });
    std::thread::sleep(Duration::from_secs(3));
    c.restart(0);
    c.restart(1);
    let r = waiting.join().unwrap();
    assert_eq!(r.code, 1, "{r:?}");
    let rows = r.json().as_array().unwrap().clone();
    assert_eq!(rows.len(), 3, "{}", r.stdout);
    let down = &c.members[2].client_url;
    assert!(
        rows.iter()
            .any(|row| row["endpoint"] == down.as_str() && row["health"] == false),
        "{}",
        r.stdout
    );
    c.restart(2);
    let r = run(&c, &["health", "--cluster", "--wait", "30s", "-w", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json().as_array().unwrap().len(), 3, "{}", r.stdout);

    // A member added and never started ("unhealthy cluster" until the restarted members
    // have been connected for a while: etcd's reconfiguration check).
    let start = Instant::now();
    loop {
        let added = c.etcdctl(
            &c.endpoints_arg(),
            &["member", "add", "cp4", "--peer-urls=https://127.0.0.1:1"],
        );
        if added.status.success() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{added:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let r = run(&c, &["health", "--cluster", "-w", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let rows = r.json().as_array().unwrap().clone();
    assert_eq!(rows.len(), 4, "{}", r.stdout);
    let unstarted = rows
        .iter()
        .find(|row| row["error_kind"] == "unstarted")
        .unwrap();
    assert!(
        unstarted["endpoint"]
            .as_str()
            .unwrap()
            .contains("https://127.0.0.1:1"),
        "{unstarted}"
    );
}
