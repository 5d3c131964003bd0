//! health, status and members against real etcd 3.5.1 and 3.4.23 with client TLS on loopback.

use crate::common::s;
use std::path::PathBuf;
use std::time::Duration;

use crate::common::cluster::{
    free_port, shared, write_kubeadm_manifest, Cluster, ClusterOptions, Lease, Version,
};
use crate::common::pki::Pki;
use crate::common::run::{args, etcdops, Run};
use serde_json::Value;

fn rows(run: &Run) -> Vec<Value> {
    run.json()
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON array: {}", run.stdout))
        .clone()
}

// A healthy 3-member cluster of each version, shared by the cases that only read from it; the
// one that kills a follower has a cluster of its own.
macro_rules! three_members {
    ($module:ident, $follower_down:ident, $version:expr) => {
        #[test]
        fn $follower_down() {
            one_follower_down_keeps_its_row_exits_1_and_does_not_hang($version);
        }

        mod $module {
            use super::*;

            #[test]
            fn health_reports_every_endpoint_healthy() {
                super::health_reports_every_endpoint_healthy(&shared($version, 3));
            }

            #[test]
            fn health_cluster_from_one_endpoint_finds_all_three() {
                super::health_cluster_from_one_endpoint_finds_all_three(&shared($version, 3));
            }

            #[test]
            fn etcdctl_spellings_and_other_formats() {
                super::etcdctl_spellings_and_other_formats(&shared($version, 3));
            }

            #[test]
            fn status_one_leader_same_cluster_right_version() {
                super::status_one_leader_same_cluster_right_version(&shared($version, 3), $version);
            }

            #[test]
            fn endpoint_status_table_has_every_column() {
                super::endpoint_status_table_has_every_column(&shared($version, 3));
            }

            #[test]
            fn members_lists_every_member_with_the_ids_of_status() {
                super::members_lists_every_member_with_the_ids_of_status(&shared($version, 3));
            }
        }
    };
}

three_members!(
    three_members_v3_5_1,
    one_follower_down_v3_5_1,
    Version::V3_5_1
);
three_members!(
    three_members_v3_4_23,
    one_follower_down_v3_4_23,
    Version::V3_4_23
);

/// `status -w json` rows of every endpoint of `c`.
fn status_rows(c: &Cluster) -> (Run, Vec<Value>) {
    let r = etcdops(
        &args(
            &["status", "-w", "json", "--endpoints", &c.endpoints_arg()],
            &c.tls_args(),
        ),
        &[],
    );
    let rows = rows(&r);
    (r, rows)
}

fn health_reports_every_endpoint_healthy(c: &Cluster) {
    let r = etcdops(
        &args(
            &["health", "-w", "json", "--endpoints", &c.endpoints_arg()],
            &c.tls_args(),
        ),
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
}

fn health_cluster_from_one_endpoint_finds_all_three(c: &Cluster) {
    let first = c.endpoints()[0].clone();
    let r = etcdops(
        &args(
            &["health", "--cluster", "-w", "json", "--endpoints", &first],
            &c.tls_args(),
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
}

fn etcdctl_spellings_and_other_formats(c: &Cluster) {
    let tls = c.tls_args();
    let eps = c.endpoints_arg();
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
}

fn status_one_leader_same_cluster_right_version(c: &Cluster, version: Version) {
    let (r, status) = status_rows(c);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(status.len(), 3);
    // etcdctl's document: `Status` with the response header; our additions beside it.
    assert_eq!(
        status.iter().filter(|s| s["isLeader"] == true).count(),
        1,
        "{status:?}"
    );
    let leader = status[0]["Status"]["leader"].clone();
    for row in &status {
        let s = &row["Status"];
        assert_eq!(s["version"], version.expected_version());
        assert_eq!(
            s["header"]["cluster_id"],
            status[0]["Status"]["header"]["cluster_id"]
        );
        assert_eq!(s["leader"], leader);
        assert!(s["dbSize"].as_i64().unwrap() > 0);
        assert!(s["raftIndex"].as_u64().unwrap() > 0);
        let id = row["memberIDHex"].as_str().unwrap();
        assert_eq!(
            u64::from_str_radix(id, 16).unwrap(),
            s["header"]["member_id"].as_u64().unwrap()
        );
    }
}

fn endpoint_status_table_has_every_column(c: &Cluster) {
    let r = etcdops(
        &args(
            &["endpoint", "status", "--endpoints", &c.endpoints_arg()],
            &c.tls_args(),
        ),
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
}

fn members_lists_every_member_with_the_ids_of_status(c: &Cluster) {
    let tls = c.tls_args();
    let eps = c.endpoints_arg();
    let (_, status) = status_rows(c);
    let ids: Vec<u64> = status
        .iter()
        .map(|s| s["Status"]["header"]["member_id"].as_u64().unwrap())
        .collect();
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
        assert!(ids.contains(&m["ID"].as_u64().unwrap()), "{m}");
        assert_eq!(m["status"], "started");
        assert!(
            m.get("isLearner").is_none(),
            "omitted when false, as etcdctl: {m}"
        );
        assert_eq!(m["clientURLs"].as_array().unwrap().len(), 1);
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
}

/// One follower down (killing the leader would add an election to the test): still three
/// rows, that one unhealthy, exit 1, no hang. A cluster of its own: it kills a member.
fn one_follower_down_keeps_its_row_exits_1_and_does_not_hang(version: Version) {
    let mut c = Cluster::start(ClusterOptions::new(version, 3));
    let tls = c.tls_args();
    let eps = c.endpoints_arg();
    let (r, status) = status_rows(&c);
    assert_eq!(r.code, 0, "{r:?}");
    let follower = status.iter().position(|s| s["isLeader"] == false).unwrap();
    let down = status[follower]["Endpoint"].as_str().unwrap().to_string();
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

    let (r, status) = status_rows(&c);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(status.len(), 3);
    let dead = status
        .iter()
        .find(|s| s["Endpoint"] == down.as_str())
        .unwrap();
    assert!(
        dead["Error"].as_str().unwrap().contains("connect error"),
        "{dead}"
    );
    assert!(dead.get("Status").is_none(), "{dead}");

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

/// TLS and credential failures are one clear line, on the shared one-member cluster (each case
/// writes its own files into its own temp dir).
mod tls_and_credential_failures {
    use super::*;

    fn single() -> Lease {
        shared(Version::V3_5_1, 1)
    }

    /// A CA that did not sign the server: health reports a TLS row and exits 1 ...
    #[test]
    fn wrong_ca_is_a_tls_row_in_health() {
        let c = single();
        let dir = tempfile::tempdir().unwrap();
        let other = Pki::generate(&dir.path().join("other-pki"));
        let p = &c.pki;
        let r = etcdops(
            &[
                "health",
                "-w",
                "json",
                "--endpoints",
                &c.endpoints_arg(),
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
    }

    /// ... and members, which cannot do its job, exits 2 with one line.
    #[test]
    fn wrong_ca_is_one_line_exit_2_in_members() {
        let c = single();
        let dir = tempfile::tempdir().unwrap();
        let other = Pki::generate(&dir.path().join("other-pki"));
        let p = &c.pki;
        let r = etcdops(
            &[
                "members",
                "--endpoints",
                &c.endpoints_arg(),
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
    }

    #[test]
    fn missing_client_certificate_file() {
        let c = single();
        let dir = tempfile::tempdir().unwrap();
        let p = &c.pki;
        let missing = dir.path().join("nope.crt");
        let r = etcdops(
            &[
                "health",
                "--endpoints",
                &c.endpoints_arg(),
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
    }

    /// An unreadable certificate (a directory) and one that is not PEM.
    #[test]
    fn unreadable_and_non_pem_certificates() {
        let c = single();
        let dir = tempfile::tempdir().unwrap();
        let ep = c.endpoints_arg();
        let p = &c.pki;
        let r = etcdops(
            &[
                "health",
                "--endpoints",
                &ep,
                "--cacert",
                &s(&p.ca.cert),
                "--cert",
                &s(dir.path()),
                "--key",
                &s(&p.healthcheck.key),
            ],
            &[],
        );
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains(&s(dir.path())), "{}", r.stderr);
        let junk = dir.path().join("junk.crt");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let r = etcdops(&["status", "--endpoints", &ep, "--cacert", &s(&junk)], &[]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(
            r.stderr.contains(&s(&junk)) && r.stderr.contains("no PEM certificate"),
            "{}",
            r.stderr
        );
    }

    #[test]
    fn key_that_does_not_belong_to_the_certificate() {
        let c = single();
        let p = &c.pki;
        let r = etcdops(
            &[
                "health",
                "--endpoints",
                &c.endpoints_arg(),
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
    }

    #[test]
    fn no_client_certificate_but_the_server_requires_one() {
        let c = single();
        let r = etcdops(
            &[
                "health",
                "-w",
                "json",
                "--endpoints",
                &c.endpoints_arg(),
                "--cacert",
                &s(&c.pki.ca.cert),
            ],
            &[],
        );
        assert_eq!(r.code, 1, "{r:?}");
        assert_eq!(rows(&r)[0]["error_kind"], "tls", "{}", r.stdout);
        assert!(r.elapsed < Duration::from_secs(8), "took {:?}", r.elapsed);
    }

    #[test]
    fn client_certificate_from_another_ca() {
        let c = single();
        let dir = tempfile::tempdir().unwrap();
        let other = Pki::generate(&dir.path().join("other-pki"));
        let r = etcdops(
            &[
                "health",
                "-w",
                "json",
                "--endpoints",
                &c.endpoints_arg(),
                "--cacert",
                &s(&c.pki.ca.cert),
                "--cert",
                &s(&other.healthcheck.cert),
                "--key",
                &s(&other.healthcheck.key),
            ],
            &[],
        );
        assert_eq!(r.code, 1, "{r:?}");
        assert_eq!(rows(&r)[0]["error_kind"], "tls", "{}", r.stdout);
        // The hint names the certificate that was rejected and what to check.
        assert!(
            rows(&r)[0]["error"]
                .as_str()
                .unwrap()
                .contains("the server rejected the client certificate"),
            "{}",
            r.stdout
        );
    }

    /// Skip-verify accepts the unknown server, the client certificate still authenticates us.
    #[test]
    fn skip_verify_still_authenticates_with_the_client_certificate() {
        let c = single();
        let p = &c.pki;
        let r = etcdops(
            &[
                "health",
                "--insecure-skip-tls-verify",
                "--endpoints",
                &c.endpoints_arg(),
                "--cert",
                &s(&p.healthcheck.cert),
                "--key",
                &s(&p.healthcheck.key),
            ],
            &[],
        );
        assert_eq!(r.code, 0, "{r:?}");
        // Every time, on stderr.
        assert!(
            r.stderr.contains("warning: flag --insecure-skip-tls-verify: the servers' certificates are not checked"),
            "{}",
            r.stderr
        );
    }

    /// Nothing listening: members exits 2 within the dial timeout; health makes it a row.
    #[test]
    fn nothing_listening_is_exit_2_in_members_and_a_row_in_health() {
        let c = single();
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

/// Zero flags: settings from a kubeadm manifest, `ETCDOPS_MANIFEST` and the `ETCDCTL_*`
/// environment, on the shared one-member cluster (each case writes its manifest into its own
/// temp dir).
mod zero_flags {
    use super::*;

    /// The shared one-member cluster, a temp dir, and a kubeadm manifest in it.
    fn setup() -> (Lease, tempfile::TempDir, PathBuf) {
        let c = shared(Version::V3_5_1, 1);
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("etcd.yaml");
        write_kubeadm_manifest(&c, 0, &manifest);
        (c, dir, manifest)
    }

    /// `ETCDCTL_*` environment, as etcdctl users export it (apiserver-etcd-client pair).
    fn etcdctl_env(c: &Cluster) -> Vec<(&'static str, String)> {
        let p = &c.pki;
        vec![
            ("ETCDCTL_API", "3".to_string()),
            ("ETCDCTL_ENDPOINTS", c.endpoints()[0].clone()),
            ("ETCDCTL_CACERT", p.ca.cert.display().to_string()),
            (
                "ETCDCTL_CERT",
                p.apiserver_client.cert.display().to_string(),
            ),
            ("ETCDCTL_KEY", p.apiserver_client.key.display().to_string()),
            ("ETCDCTL_WRITE_OUT", "json".to_string()),
            ("ETCDCTL_DIAL_TIMEOUT", "3s".to_string()),
        ]
    }

    fn refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
        env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// --manifest alone is enough: endpoint, CA and the healthcheck-client pair come from it.
    #[test]
    fn manifest_flag_alone_is_enough() {
        let (c, _dir, manifest) = setup();
        let m = manifest.display().to_string();
        let r = etcdops(&["health", "-w", "json", "--manifest", &m], &[]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(rows(&r)[0]["endpoint"], c.endpoints()[0].as_str());
    }

    /// ETCDOPS_MANIFEST does the same; -v says where each setting came from.
    #[test]
    fn etcdops_manifest_environment_and_where_each_setting_came_from() {
        let (c, _dir, manifest) = setup();
        let m = manifest.display().to_string();
        let ep = c.endpoints()[0].clone();
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
    }

    #[test]
    fn etcdctl_environment() {
        let c = shared(Version::V3_5_1, 1);
        let env = etcdctl_env(&c);
        let r = etcdops(&["status", "-v"], &refs(&env));
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(rows(&r)[0]["Endpoint"], c.endpoints()[0].as_str());
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
    }

    /// A flag beats the environment, which beats the manifest.
    #[test]
    fn flag_beats_environment_beats_manifest() {
        let (c, _dir, manifest) = setup();
        let m = manifest.display().to_string();
        let ep = c.endpoints()[0].clone();
        let dead = format!("https://127.0.0.1:{}", free_port());
        let mut env_dead = etcdctl_env(&c);
        env_dead[1] = ("ETCDCTL_ENDPOINTS", dead);
        let r = etcdops(&["health", "--endpoints", &ep], &refs(&env_dead));
        assert_eq!(r.code, 0, "{r:?}");
        let r = etcdops(&["health", "--manifest", &m], &refs(&env_dead));
        assert_eq!(
            r.code, 1,
            "environment endpoint should win over the manifest: {r:?}"
        );
    }

    /// #28 item 11: ETCDOPS_MANIFEST naming a missing file: one error line and a hint naming
    /// where the path came from and what replaces it; doing what the hint says works.
    #[test]
    fn manifest_variable_naming_a_missing_file() {
        let c = shared(Version::V3_5_1, 1);
        let missing = [("ETCDOPS_MANIFEST", "/nonexistent/etcd.yaml".to_string())];
        let r = etcdops(&["health"], &refs(&missing));
        assert_eq!(r.code, 2, "{r:?}");
        assert_eq!(r.error_lines(), 1, "{r:?}");
        let hint = r.stderr.lines().find(|l| l.starts_with("hint: ")).unwrap();
        assert!(
            hint.contains("ETCDOPS_MANIFEST")
                && hint.contains("--endpoints")
                && hint.contains("ETCDCTL_CACERT"),
            "{hint}"
        );
        let mut env = etcdctl_env(&c);
        env.extend(missing);
        let r = etcdops(&["health"], &refs(&env));
        assert_eq!(r.code, 0, "{r:?}");
        let r = etcdops(&["health", "--manifest", "/nonexistent/etcd.yaml"], &[]);
        assert!(
            r.stderr
                .contains("hint: --manifest names a manifest that is not there"),
            "{r:?}"
        );
    }

    /// A manifest that names a missing certificate: exit 2, the line names file and manifest.
    #[test]
    fn manifest_naming_a_missing_certificate() {
        let (c, dir, manifest) = setup();
        let broken = dir.path().join("broken.yaml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap()
            .replace(&c.pki.ca.cert.display().to_string(), "/nonexistent/ca.crt");
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
}

/// Whole transcripts (command, exit code, stdout, stderr) of health, status and members: the
/// main path on the shared one-member cluster, and the main failures.
mod transcripts {
    use super::*;
    use crate::common::run::{assert_transcript, Transcript};

    /// `COMMAND --endpoints EP` plus the cluster's TLS flags, redacted.
    fn live(command: &[&str], endpoints: &str, c: &Cluster) -> Transcript {
        let tls = c.tls_args();
        let mut argv = command.to_vec();
        argv.extend(["--endpoints", endpoints]);
        Transcript::run(&args(&argv, &tls), &[])
            .redact(c.dir.path(), "[CLUSTER]")
            .ids()
    }

    /// The cluster's flags with a CA that did not sign its server.
    fn wrong_ca(command: &str, c: &Cluster) -> Transcript {
        let dir = tempfile::tempdir().unwrap();
        let other = Pki::generate(&dir.path().join("other-pki"));
        let p = &c.pki;
        let argv = [
            command.to_string(),
            "--endpoints".to_string(),
            c.endpoints_arg(),
            "--cacert".to_string(),
            other.ca.cert.display().to_string(),
            "--cert".to_string(),
            p.healthcheck.cert.display().to_string(),
            "--key".to_string(),
            p.healthcheck.key.display().to_string(),
        ];
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        Transcript::run(&refs, &[])
            .redact(dir.path(), "[OTHER]")
            .redact(c.dir.path(), "[CLUSTER]")
            .ids()
    }

    fn dead() -> String {
        format!("https://127.0.0.1:{}", free_port())
    }

    #[test]
    fn health_ok() {
        let c = shared(Version::V3_5_1, 1);
        assert_transcript!("health_ok", live(&["health"], &c.endpoints_arg(), &c));
    }

    #[test]
    fn health_unreachable_endpoint() {
        let c = shared(Version::V3_5_1, 1);
        assert_transcript!(
            "health_unreachable_endpoint",
            live(&["health", "--dial-timeout", "1s"], &dead(), &c)
        );
    }

    #[test]
    fn health_wrong_ca() {
        let c = shared(Version::V3_5_1, 1);
        assert_transcript!("health_wrong_ca", wrong_ca("health", &c));
    }

    #[test]
    fn status_ok() {
        let c = shared(Version::V3_5_1, 1);
        // Sizes and raft numbers are the live cluster's own.
        let t = live(&["status"], &c.endpoints_arg(), &c)
            .mask(r"\b\d+(\.\d+)? [kMG]?B\b", "[SIZE]")
            .mask(
                r"\| (true|false) \| (true|false) \| \d+ \| \d+ \| \d+ \|",
                "| $1 | $2 | [TERM] | [INDEX] | [APPLIED] |",
            );
        assert_transcript!("status_ok", t);
    }

    #[test]
    fn status_unreachable_endpoint() {
        let c = shared(Version::V3_5_1, 1);
        assert_transcript!(
            "status_unreachable_endpoint",
            live(&["status", "--dial-timeout", "1s"], &dead(), &c)
        );
    }

    #[test]
    fn members_ok() {
        let c = shared(Version::V3_5_1, 1);
        assert_transcript!("members_ok", live(&["members"], &c.endpoints_arg(), &c));
    }

    #[test]
    fn members_unreachable_endpoint() {
        let c = shared(Version::V3_5_1, 1);
        assert_transcript!(
            "members_unreachable_endpoint",
            live(&["members", "--dial-timeout", "1s"], &dead(), &c)
        );
    }

    #[test]
    fn members_wrong_ca() {
        let c = shared(Version::V3_5_1, 1);
        assert_transcript!("members_wrong_ca", wrong_ca("members", &c));
    }
}
