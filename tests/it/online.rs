//! health, status and members against real etcd 3.5.1 and 3.4.23 with client TLS on loopback.

use std::time::Duration;

use crate::common::cluster::{free_port, write_kubeadm_manifest, Cluster, ClusterOptions, Version};
use crate::common::pki::Pki;
use crate::common::run::{args, etcdops, Run};
use serde_json::Value;

fn rows(run: &Run) -> Vec<Value> {
    run.json()
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON array: {}", run.stdout))
        .clone()
}

fn three_members(version: Version) {
    let mut c = Cluster::start(ClusterOptions::new(version, 3));
    let tls = c.tls_args();
    let eps = c.endpoints_arg();

    // Every endpoint healthy.
    let r = etcdops(
        &args(&["health", "-w", "json", "--endpoints", &eps], &tls),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let health = rows(&r);
    assert_eq!(health.len(), 3, "{r:?}");
    for (row, ep) in health.iter().zip(c.endpoints()) {
        assert_eq!(row["endpoint"], ep.as_str());
        assert_eq!(row["health"], true, "{row}");
        assert!(row.get("error").is_none(), "{row}");
        assert!(row["took"].as_str().unwrap().ends_with('s'), "{row}");
    }

    // --cluster from one endpoint finds all three.
    let first = c.endpoints()[0].clone();
    let r = etcdops(
        &args(
            &["health", "--cluster", "-w", "json", "--endpoints", &first],
            &tls,
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let mut found: Vec<String> = rows(&r)
        .iter()
        .map(|row| row["endpoint"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    let mut want = c.endpoints();
    want.sort();
    assert_eq!(found, want);

    // etcdctl spellings and other formats.
    let r = etcdops(
        &args(
            &["endpoint", "health", "-w", "simple", "--endpoints", &eps],
            &tls,
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 3);
    assert!(r
        .stdout
        .lines()
        .all(|l| l.contains("is healthy: successfully committed proposal")));
    let r = etcdops(&args(&["health", "--endpoints", &eps], &tls), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("ENDPOINT") && r.stdout.contains("| HEALTH |"),
        "{}",
        r.stdout
    );

    // status: one leader, same cluster, right version.
    let r = etcdops(
        &args(&["status", "-w", "json", "--endpoints", &eps], &tls),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let status = rows(&r);
    assert_eq!(status.len(), 3);
    assert_eq!(
        status.iter().filter(|s| s["is_leader"] == true).count(),
        1,
        "{status:?}"
    );
    let leader = status[0]["leader"].clone();
    let mut ids = Vec::new();
    for s in &status {
        assert_eq!(s["version"], version.expected_version());
        assert_eq!(s["cluster_id"], status[0]["cluster_id"]);
        assert_eq!(s["leader"], leader);
        assert!(s["db_size"].as_i64().unwrap() > 0);
        assert!(s["raft_index"].as_u64().unwrap() > 0);
        let id = s["id"].as_str().unwrap();
        assert_eq!(
            u64::from_str_radix(id, 16).unwrap(),
            s["member_id"].as_u64().unwrap()
        );
        ids.push(id.to_string());
    }
    let r = etcdops(
        &args(&["endpoint", "status", "--endpoints", &eps], &tls),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    for header in [
        "RAFT APPLIED INDEX",
        "IS LEADER",
        "DB SIZE",
        "IN USE",
        "ERRORS",
    ] {
        assert!(r.stdout.contains(header), "{header} missing:\n{}", r.stdout);
    }

    // members: every member, IDs as hex matching status.
    let r = etcdops(
        &args(&["members", "-w", "json", "--endpoints", &eps], &tls),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let doc = r.json();
    let members = doc["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let mut names: Vec<&str> = members
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["m1", "m2", "m3"]);
    for m in members {
        assert!(ids.contains(&m["id"].as_str().unwrap().to_string()), "{m}");
        assert_eq!(m["status"], "started");
        assert_eq!(m["is_learner"], false);
        assert_eq!(m["client_urls"].as_array().unwrap().len(), 1);
    }
    let r = etcdops(
        &args(
            &["member", "list", "-w", "simple", "--endpoints", &eps],
            &tls,
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 3);

    // One follower down (killing the leader would add an election to the test): still three
    // rows, that one unhealthy, exit 1, no hang.
    let follower = status.iter().position(|s| s["is_leader"] == false).unwrap();
    let down = status[follower]["endpoint"].as_str().unwrap().to_string();
    let victim = c.endpoints().iter().position(|e| *e == down).unwrap();
    c.kill(victim);
    let r = etcdops(
        &args(&["health", "-w", "json", "--endpoints", &eps], &tls),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.elapsed < Duration::from_secs(10), "took {:?}", r.elapsed);
    let health = rows(&r);
    assert_eq!(health.len(), 3);
    for row in &health {
        let is_down = row["endpoint"] == down.as_str();
        assert_eq!(row["health"], !is_down, "{row}");
        if is_down {
            assert_eq!(row["error_kind"], "connect", "{row}");
            assert!(!row["error"].as_str().unwrap().is_empty());
        }
    }
    assert!(
        r.stderr.contains("error: unhealthy cluster: 1 of 3"),
        "{}",
        r.stderr
    );
    let r = etcdops(&args(&["health", "--endpoints", &eps], &tls), &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains(&down),
        "table lists the dead endpoint:\n{}",
        r.stdout
    );

    let r = etcdops(
        &args(&["status", "-w", "json", "--endpoints", &eps], &tls),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let status = rows(&r);
    assert_eq!(status.len(), 3);
    let dead = status
        .iter()
        .find(|s| s["endpoint"] == down.as_str())
        .unwrap();
    assert!(
        dead["error"].as_str().unwrap().contains("connect error"),
        "{dead}"
    );

    // members asks the first endpoint that answers.
    let reversed = c
        .endpoints()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(",");
    let r = etcdops(
        &args(&["members", "-w", "json", "--endpoints", &reversed], &tls),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn three_members_v3_5_1() {
    three_members(Version::V3_5_1);
}

#[test]
fn three_members_v3_4_23() {
    three_members(Version::V3_4_23);
}

#[test]
fn tls_and_credential_failures_are_one_clear_line() {
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let ep = c.endpoints_arg();
    let other = Pki::generate(&c.dir.path().join("other-pki"));
    let p = &c.pki;
    let s = |p: &std::path::Path| p.display().to_string();

    // A CA that did not sign the server: health reports a TLS row and exits 1 ...
    let r = etcdops(
        &[
            "health",
            "-w",
            "json",
            "--endpoints",
            &ep,
            "--cacert",
            &s(&other.ca.cert),
            "--cert",
            &s(&p.healthcheck.cert),
            "--key",
            &s(&p.healthcheck.key),
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let row = &rows(&r)[0];
    assert_eq!(row["error_kind"], "tls", "{row}");
    assert!(
        row["error"].as_str().unwrap().contains(&s(&other.ca.cert)),
        "names the CA file: {row}"
    );
    // ... and members, which cannot do its job, exits 2 with one line.
    let r = etcdops(
        &[
            "members",
            "--endpoints",
            &ep,
            "--cacert",
            &s(&other.ca.cert),
            "--cert",
            &s(&p.healthcheck.cert),
            "--key",
            &s(&p.healthcheck.key),
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: ") && r.stderr.contains("tls error"),
        "{}",
        r.stderr
    );
    assert!(r.elapsed < Duration::from_secs(5));

    // A missing client certificate file.
    let missing = c.dir.path().join("nope.crt");
    let r = etcdops(
        &[
            "health",
            "--endpoints",
            &ep,
            "--cacert",
            &s(&p.ca.cert),
            "--cert",
            &s(&missing),
            "--key",
            &s(&p.healthcheck.key),
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&s(&missing)) && r.stderr.contains("--cert"),
        "{}",
        r.stderr
    );

    // An unreadable one (a directory) and one that is not PEM.
    let r = etcdops(
        &[
            "health",
            "--endpoints",
            &ep,
            "--cacert",
            &s(&p.ca.cert),
            "--cert",
            &s(c.dir.path()),
            "--key",
            &s(&p.healthcheck.key),
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains(&s(c.dir.path())), "{}", r.stderr);
    let junk = c.dir.path().join("junk.crt");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let r = etcdops(&["status", "--endpoints", &ep, "--cacert", &s(&junk)], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&s(&junk)) && r.stderr.contains("no PEM certificate"),
        "{}",
        r.stderr
    );

    // A key that does not belong to the certificate.
    let r = etcdops(
        &[
            "health",
            "--endpoints",
            &ep,
            "--cacert",
            &s(&p.ca.cert),
            "--cert",
            &s(&p.healthcheck.cert),
            "--key",
            &s(&p.server.key),
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("does not match"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&s(&p.server.key)) && r.stderr.contains(&s(&p.healthcheck.cert)),
        "{}",
        r.stderr
    );

    // No client certificate, but the server requires one.
    let r = etcdops(
        &[
            "health",
            "-w",
            "json",
            "--endpoints",
            &ep,
            "--cacert",
            &s(&p.ca.cert),
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(rows(&r)[0]["error_kind"], "tls", "{}", r.stdout);
    assert!(r.elapsed < Duration::from_secs(8), "took {:?}", r.elapsed);

    // A client certificate from another CA.
    let r = etcdops(
        &[
            "health",
            "-w",
            "json",
            "--endpoints",
            &ep,
            "--cacert",
            &s(&p.ca.cert),
            "--cert",
            &s(&other.healthcheck.cert),
            "--key",
            &s(&other.healthcheck.key),
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(rows(&r)[0]["error_kind"], "tls", "{}", r.stdout);

    // Skip-verify accepts the unknown server, the client certificate still authenticates us.
    let r = etcdops(
        &[
            "health",
            "--insecure-skip-tls-verify",
            "--endpoints",
            &ep,
            "--cert",
            &s(&p.healthcheck.cert),
            "--key",
            &s(&p.healthcheck.key),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");

    // Nothing listening: members exits 2 within the dial timeout; health makes it a row.
    let dead = format!("https://127.0.0.1:{}", free_port());
    let r = etcdops(
        &args(
            &["members", "--dial-timeout", "1s", "--endpoints", &dead],
            &c.tls_args(),
        ),
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&dead) && r.stderr.contains("connect error"),
        "{}",
        r.stderr
    );
    assert!(r.elapsed < Duration::from_secs(4));
    let r = etcdops(
        &args(
            &["health", "-w", "json", "--endpoints", &dead],
            &c.tls_args(),
        ),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(rows(&r)[0]["error_kind"], "connect");
}

#[test]
fn active_nospace_alarm_is_unhealthy() {
    let c = Cluster::start(ClusterOptions {
        extra_args: vec!["--quota-backend-bytes=1048576".to_string()],
        ..ClusterOptions::new(Version::V3_5_1, 1)
    });
    let ep = c.endpoints_arg();
    let value = "x".repeat(100 * 1024);
    let mut raised = false;
    for i in 0..200 {
        let out = c.etcdctl(&ep, &["put", &format!("/fill/{i}"), &value]);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("database space exceeded"),
                "unexpected put failure: {err}"
            );
            raised = true;
            break;
        }
    }
    assert!(raised, "quota never exceeded");
    let r = etcdops(
        &args(&["health", "-w", "json", "--endpoints", &ep], &c.tls_args()),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let row = &rows(&r)[0];
    assert_eq!(row["health"], false);
    assert_eq!(row["error_kind"], "alarm");
    assert!(
        row["error"]
            .as_str()
            .unwrap()
            .contains("Active Alarm(s): NOSPACE"),
        "{row}"
    );
    let r = etcdops(
        &args(&["status", "-w", "json", "--endpoints", &ep], &c.tls_args()),
        &[],
    );
    assert!(
        r.stdout.contains("NOSPACE"),
        "status shows the alarm in errors: {}",
        r.stdout
    );
}

#[test]
fn zero_flags_from_manifest_and_etcdctl_environment() {
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let manifest = c.dir.path().join("etcd.yaml");
    write_kubeadm_manifest(&c, 0, &manifest);
    let m = manifest.display().to_string();
    let ep = c.endpoints()[0].clone();

    // --manifest alone is enough: endpoint, CA and the healthcheck-client pair come from it.
    let r = etcdops(&["health", "-w", "json", "--manifest", &m], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(rows(&r)[0]["endpoint"], ep.as_str());

    // ETCDOPS_MANIFEST does the same; -v says where each setting came from.
    let r = etcdops(
        &["members", "-v", "-w", "json"],
        &[("ETCDOPS_MANIFEST", &m)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("endpoints: {ep} (from manifest, line "))
            && r.stderr.contains(&format!(" of {m})")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("healthcheck-client.crt (from manifest"),
        "{}",
        r.stderr
    );

    // ETCDCTL_* environment, as etcdctl users export it.
    let p = &c.pki;
    let ca = p.ca.cert.display().to_string();
    let cert = p.apiserver_client.cert.display().to_string();
    let key = p.apiserver_client.key.display().to_string();
    let env = [
        ("ETCDCTL_API", "3"),
        ("ETCDCTL_ENDPOINTS", ep.as_str()),
        ("ETCDCTL_CACERT", ca.as_str()),
        ("ETCDCTL_CERT", cert.as_str()),
        ("ETCDCTL_KEY", key.as_str()),
        ("ETCDCTL_WRITE_OUT", "json"),
        ("ETCDCTL_DIAL_TIMEOUT", "3s"),
    ];
    let r = etcdops(&["status", "-v"], &env);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(rows(&r)[0]["endpoint"], ep.as_str());
    assert!(
        r.stderr.contains("from environment ETCDCTL_CERT"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("dial-timeout: 3s (from environment ETCDCTL_DIAL_TIMEOUT)"),
        "{}",
        r.stderr
    );

    // A flag beats the environment, which beats the manifest.
    let dead = format!("https://127.0.0.1:{}", free_port());
    let mut env_dead = env.to_vec();
    env_dead[1] = ("ETCDCTL_ENDPOINTS", dead.as_str());
    let r = etcdops(&["health", "--endpoints", &ep], &env_dead);
    assert_eq!(r.code, 0, "{r:?}");
    let r = etcdops(&["health", "--manifest", &m], &env_dead);
    assert_eq!(
        r.code, 1,
        "environment endpoint should win over the manifest: {r:?}"
    );

    // A manifest that names a missing certificate: exit 2, the line names file and manifest.
    let broken = c.dir.path().join("broken.yaml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace(&p.ca.cert.display().to_string(), "/nonexistent/ca.crt");
    std::fs::write(&broken, text).unwrap();
    let r = etcdops(
        &["health", "--manifest", &broken.display().to_string()],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("/nonexistent/ca.crt") && r.stderr.contains("broken.yaml"),
        "{}",
        r.stderr
    );
}
