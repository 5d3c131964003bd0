//! Drop-in for etcdctl scripts and habits: etcdctl's JSON documents compared key by key with
//! real etcdctl 3.5.1 and 3.4.23, the scripts the guides copy, the lines the guides look for,
//! escaping in every format, and each hint triggered for real.

use crate::common::s;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::cluster::{shared, write_kubeadm_manifest, Version};
use crate::common::oracle::{assert_superset, etcdctl, etcdctl_json};
use crate::common::run::{args, etcdops, Run};

fn etcdctl_for(version: Version) -> std::path::PathBuf {
    match version {
        Version::V3_5_1 => etcdctl(),
        other => other.binary("etcdctl"),
    }
}

fn json_documents_match_etcdctl(version: Version) {
    let c = shared(version, 3);
    let ctl = etcdctl_for(version);
    let tls = c.tls_args();
    let one = c.endpoints()[0].clone();
    let all = c.endpoints_arg();

    // endpoint status: one row per endpoint, in the same order.
    let theirs = etcdctl_json(&c, &ctl, &all, &["endpoint", "status", "-w", "json"]);
    let r = etcdops(
        &args(&["status", "-w", "json", "--endpoints", &all], &tls),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let ours = r.json();
    // The raft index moves with every linearizable read the other tests make.
    let volatile = [
        "raftIndex",
        "raftAppliedIndex",
        "revision",
        "raft_term",
        "raftTerm",
        "dbSize",
        "dbSizeInUse",
    ];
    assert_superset(&theirs, &ours, "status", &volatile);
    for row in ours.as_array().unwrap() {
        let id = row["Status"]["header"]["member_id"].as_u64().unwrap();
        assert_eq!(row["memberIDHex"], format!("{id:x}"));
    }

    // member list, decimal and --hex (with etcdctl's `clientURLS` then).
    // etcdctl 3.4 ignores --hex in member list's JSON; 3.5's spelling is the one we follow.
    let hex_forms: &[bool] = if version == Version::V3_5_1 {
        &[false, true]
    } else {
        &[false]
    };
    for &hex in hex_forms {
        let mut argv = vec!["member", "list", "-w", "json"];
        if hex {
            argv.push("--hex");
        }
        let theirs = etcdctl_json(&c, &ctl, &one, &argv);
        let mut mine = vec!["members", "-w", "json", "--endpoints", &one];
        if hex {
            mine.push("--hex");
        }
        let r = etcdops(&args(&mine, &tls), &[]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_superset(&theirs, &r.json(), "members", &["raft_term"]);
    }

    // endpoint health: the same keys and types (took differs).
    let theirs = etcdctl_json(&c, &ctl, &all, &["endpoint", "health", "-w", "json"]);
    let r = etcdops(
        &args(&["health", "-w", "json", "--endpoints", &all], &tls),
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let mut t = theirs.as_array().unwrap().clone();
    let mut o = r.json().as_array().unwrap().clone();
    // etcdctl lists rows in completion order.
    t.sort_by_key(|v| v["endpoint"].as_str().unwrap().to_string());
    o.sort_by_key(|v| v["endpoint"].as_str().unwrap().to_string());
    assert_superset(&Value::Array(t), &Value::Array(o), "health", &["took"]);

    // The scripts the guides copy run unchanged, and print what they print with etcdctl.
    for script in [
        "import sys,json; print(json.load(sys.stdin)[0]['Status']['header']['cluster_id'])",
        "import sys,json; [print(e['Status']['version']) for e in json.load(sys.stdin)]",
        "import sys,json; [print(e['Status']['dbSize'] > 0) for e in json.load(sys.stdin)]",
    ] {
        let run = |doc: &str| {
            let mut py = Command::new("python3")
                .args(["-c", script])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            py.stdin.take().unwrap().write_all(doc.as_bytes()).unwrap();
            let out = py.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let r = etcdops(
            &args(&["status", "-w", "json", "--endpoints", &all], &tls),
            &[],
        );
        let theirs = etcdctl_json(&c, &ctl, &all, &["endpoint", "status", "-w", "json"]);
        assert_eq!(run(&r.stdout), run(&theirs.to_string()), "{script}");
    }
}

#[test]
fn json_documents_match_etcdctl_3_5_1() {
    json_documents_match_etcdctl(Version::V3_5_1);
}

#[test]
fn json_documents_match_etcdctl_3_4_23() {
    json_documents_match_etcdctl(Version::V3_4_23);
}

/// A row etcdctl would drop is `{"Endpoint", "Error", "ErrorKind"}`, without `Status`.
#[test]
fn unreachable_rows_are_marked_for_scripts_to_skip() {
    let c = shared(Version::V3_5_1, 3);
    let tls = c.tls_args();
    let eps = format!("{},https://127.0.0.1:1", c.endpoints()[0]);
    let r = etcdops(
        &args(
            &[
                "status",
                "-w",
                "json",
                "--dial-timeout",
                "1s",
                "--endpoints",
                &eps,
            ],
            &tls,
        ),
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let rows = r.json();
    let dead = &rows[1];
    assert_eq!(dead["Endpoint"], "https://127.0.0.1:1");
    assert!(
        dead.get("Status").is_none() && dead["Error"].is_string(),
        "{dead}"
    );
    assert_eq!(dead["ErrorKind"], "connect");
}

#[test]
fn snapshot_saved_line_and_escaped_simple_output() {
    let c = shared(Version::V3_5_1, 1);
    let tls = c.tls_args();
    let ep = c.endpoints_arg();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    for format in ["table", "simple"] {
        let r = etcdops(
            &args(
                &[
                    "snapshot",
                    "save",
                    &s(&file),
                    "-w",
                    format,
                    "--endpoints",
                    &ep,
                ],
                &tls,
            ),
            &[],
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(
            r.stdout.lines().next(),
            Some(format!("Snapshot saved at {}", file.display()).as_str()),
            "{format}: {}",
            r.stdout
        );
    }
    // A certificate subject with an escape sequence and a newline: never raw on the terminal.
    let pki = crate::common::pki::Pki::generate(&dir.path().join("pki"));
    let hostile = pki.issue(
        dir.path(),
        "hostile",
        "evil\u{1b}]0;pwned\u{7}\nforged line",
        true,
        false,
    );
    for format in ["table", "simple", "json"] {
        let r = etcdops(&["cert-expiry", "-w", format, &s(&hostile.cert)], &[]);
        assert!(r.code <= 1, "{r:?}");
        assert!(
            !r.stdout.contains('\u{1b}'),
            "{format}: raw ESC in {:?}",
            r.stdout
        );
        assert!(
            !r.stdout.contains("\nforged line"),
            "{format}: {:?}",
            r.stdout
        );
    }
}

#[test]
fn each_hint_is_given_where_it_fixes_the_error() {
    let c = shared(Version::V3_5_1, 1);
    let ep = c.endpoints()[0].clone();
    let ca = s(&c.pki.ca.cert);
    let hostport = ep.trim_start_matches("https://").to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        // No client certificate for a server that wants one.
        (
            vec![
                "--endpoints".into(),
                ep.clone(),
                "--cacert".into(),
                ca.clone(),
            ],
            "requires a client certificate: pass --cert and --key",
        ),
        // Plaintext to a TLS port.
        (
            vec!["--endpoints".into(), format!("http://{hostport}")],
            "may expect TLS: use https://",
        ),
        // A CA that did not sign the server's certificate.
        (
            vec![
                "--endpoints".into(),
                ep.clone(),
                "--cacert".into(),
                "/etc/ssl/certs/ca-certificates.crt".into(),
            ],
            "not trusted by CA file /etc/ssl/certs/ca-certificates.crt",
        ),
    ];
    for (argv, needle) in cases {
        let mut full = vec!["health".to_string(), "-w".into(), "simple".into()];
        full.extend(argv);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let r = etcdops(&refs, &[]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stdout.contains(needle), "{needle}: {}", r.stdout);
    }

    // TLS to a port that speaks plaintext.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten().take(4) {
            let mut buf = [0u8; 512];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    let r = etcdops(
        &[
            "health",
            "-w",
            "simple",
            "--endpoints",
            &format!("https://127.0.0.1:{port}"),
            "--cacert",
            &ca,
        ],
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("does not speak TLS: use http://127.0.0.1"),
        "{}",
        r.stdout
    );

    // Nothing configured and nothing answering: where the manifest was looked for.
    let r = etcdops(&["health", "--dial-timeout", "1ns"], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("hint: no --endpoints, ETCDCTL_ENDPOINTS or etcd manifest was found (looked for /etc/kubernetes/manifests/etcd.yaml)")
            && r.stderr.contains("--manifest PATH"),
        "{}",
        r.stderr
    );

    // A bare restore on a node that has a manifest.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("etcd.yaml");
    write_kubeadm_manifest(&c, 0, &manifest);
    let example = crate::common::repo().join("examples/k8s-small.db");
    let r = etcdops(
        &[
            "snapshot",
            "restore",
            &s(&example),
            "--data-dir",
            &s(&dir.path().join("x.etcd")),
            "--dry-run",
        ],
        &[("ETCDOPS_MANIFEST", &s(&manifest))],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("hint: this node has an etcd manifest")
            && r.stderr.contains("--from-manifest"),
        "{}",
        r.stderr
    );

    // -v names where kubeadm's healthcheck-client pair came from.
    let r = etcdops(&["health", "-v", "--manifest", &s(&manifest)], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("healthcheck-client pair beside --trusted-ca-file (line "),
        "{}",
        r.stderr
    );
}

/// A run's widest line, in characters.
fn widest(r: &Run) -> usize {
    r.stdout
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
}

#[test]
fn cert_expiry_reads_like_kubeadm_and_fits_120_columns() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::common::pki::Pki::generate(&dir.path().join("pki"));
    // The same CA copied elsewhere in the tree: listed once, with where else it is.
    let copy = dir.path().join("pki/etcd-ca-copy.crt");
    std::fs::copy(&pki.ca.cert, &copy).unwrap();
    let tree = s(&dir.path().join("pki"));
    let r = etcdops(&["cert-expiry", &tree], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(widest(&r) <= 120, "{} columns:\n{}", widest(&r), r.stdout);
    for name in [
        "etcd-server",
        "etcd-peer",
        "etcd-healthcheck-client",
        "apiserver-etcd-client",
    ] {
        assert!(r.stdout.contains(name), "{name}:\n{}", r.stdout);
    }
    assert!(
        !r.stdout.contains(&tree),
        "no full paths without --wide:\n{}",
        r.stdout
    );
    let wide = etcdops(&["cert-expiry", "--wide", &tree], &[]);
    assert!(wide.stdout.contains(&tree), "{}", wide.stdout);
    let json = etcdops(&["cert-expiry", "-w", "json", &tree], &[]).json();
    let cas: Vec<&Value> = json
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["is_ca"] == true)
        .collect();
    assert_eq!(cas.len(), 1, "{cas:?}");
    assert_eq!(cas[0]["also_at"].as_array().unwrap().len(), 1, "{}", cas[0]);
    let server = json
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "etcd-server")
        .unwrap();
    assert_eq!(server["ca"], "etcd-ca");
    assert!(
        server["residual"].as_str().unwrap().ends_with('d')
            || server["residual"].as_str().unwrap().ends_with('y')
    );

    // A manifest naming a file that is not there: a missing row, exit 1 — but only when the
    // manifest is asked for (paths given alone are all that is scanned).
    let c_dir = tempfile::tempdir().unwrap();
    let manifest = c_dir.path().join("etcd.yaml");
    std::fs::write(
        &manifest,
        std::fs::read_to_string(
            crate::common::repo().join("tests/fixtures/manifests/kubeadm-1.31.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let only = etcdops(
        &["cert-expiry", &tree],
        &[("ETCDOPS_MANIFEST", &s(&manifest))],
    );
    assert_eq!(only.code, 0, "{only:?}");
    assert!(!only.stdout.contains("missing"), "{}", only.stdout);
    // (--endpoints: never dial the fixture's own addresses.)
    let with = etcdops(
        &[
            "cert-expiry",
            "--manifest",
            &s(&manifest),
            "--endpoints",
            "https://127.0.0.1:1",
            "--dial-timeout",
            "1s",
            &tree,
        ],
        &[],
    );
    assert_eq!(with.code, 1, "{with:?}");
    assert!(with.stdout.contains("missing"), "{}", with.stdout);
    let without = etcdops(
        &["cert-expiry", "--no-manifest", &tree],
        &[("ETCDOPS_MANIFEST", &s(&manifest))],
    );
    assert_eq!(without.code, 0, "{without:?}");
}

#[test]
fn cfssl_style_keys_pair_with_their_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::common::pki::Pki::generate(&dir.path().join("gen"));
    let etc = dir.path().join("etc-etcd");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::copy(&pki.ca.cert, etc.join("ca.pem")).unwrap();
    std::fs::copy(&pki.ca.key, etc.join("ca-key.pem")).unwrap();
    std::fs::copy(&pki.server.cert, etc.join("etcd.pem")).unwrap();
    std::fs::copy(&pki.server.key, etc.join("etcd-key.pem")).unwrap();
    let r = etcdops(&["cert-expiry", "-w", "json", &s(&etc)], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    // The wrong key beside it: a key mismatch, named in STATUS.
    std::fs::copy(&pki.peer.key, etc.join("etcd-key.pem")).unwrap();
    let r = etcdops(&["cert-expiry", &s(&etc)], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("key mismatch"), "{}", r.stdout);
}

/// Every key of a JSON document, nested ones included.
fn json_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                out.push(k.clone());
                json_keys(child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| json_keys(c, out)),
        _ => {}
    }
}

/// #28 item 16: etcdops's own JSON documents are snake_case throughout, but for the four
/// numbers they share with `etcdutl snapshot status`, which keep etcdutl's names
/// (docs/cli.md, "JSON field names").
#[test]
fn own_json_documents_are_snake_case() {
    let dir = tempfile::tempdir().unwrap();
    let example = crate::common::repo().join("examples/k8s-small.db");
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let data = dir.path().join("restored");
    let pki = dir.path().join("pki");
    crate::common::pki::Pki::generate(&pki);
    let (ex, bk, dd, pk) = (s(&example), format!("{}/", s(&backups)), s(&data), s(&pki));
    let documents = [
        vec![
            "snapshot",
            "restore",
            ex.as_str(),
            "--data-dir",
            dd.as_str(),
            "--dry-run",
        ],
        vec!["snapshot", "verify", ex.as_str()],
        vec!["snapshot", "diff", ex.as_str(), ex.as_str()],
        vec!["snapshot", "ls", bk.as_str()],
        vec![
            "snapshot",
            "prune",
            bk.as_str(),
            "--keep-last",
            "1",
            "--dry-run",
        ],
        vec!["cert-expiry", pk.as_str()],
    ];
    let etcdutl = ["hash", "revision", "totalKey", "totalSize"];
    for argv in documents {
        let mut a = argv.clone();
        a.extend(["-w", "json"]);
        let r = etcdops(&a, &[("ETCDOPS_NOW", "2026-12-07T00:00:00Z")]);
        assert!(r.code == 0 || r.code == 1, "{argv:?}: {r:?}");
        let mut keys = Vec::new();
        json_keys(&r.json(), &mut keys);
        assert!(!keys.is_empty(), "{argv:?}: {}", r.stdout);
        let bad: Vec<&String> = keys
            .iter()
            .filter(|k| !etcdutl.contains(&k.as_str()))
            .filter(|k| k.chars().any(|c| c.is_ascii_uppercase() || c == '-'))
            .collect();
        assert!(bad.is_empty(), "{argv:?}: not snake_case: {bad:?}");
    }
}
