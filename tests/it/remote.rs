//! Backups off the node, against a real S3 server (SeaweedFS over HTTPS, SigV4 checked) and
//! real etcd: save with zstd + age, list, restore into a data dir real etcd boots; the stock
//! `zstd` and `age` tools open what we write; every bad case exits 2 with one line and leaves
//! nothing visible; retention on the server; the scheduled units checked by their consumers.

use crate::common::s;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::age_identity;
use crate::common::cluster::{free_port, shared, Cluster, ClusterOptions, ThreeMembers, Version};
use crate::common::oracle::run_etcdutl;
use crate::common::run::{etcdops, etcdops_spawn, wait_run, Run};
use crate::common::s3::{S3Server, SECRET_KEY};

/// etcdops with the cluster's TLS flags, the server's S3 flags and credentials.
fn with_s3(server: &S3Server, head: &[&str], extra_env: &[(&str, &str)]) -> Run {
    let mut args: Vec<String> = head.iter().map(|a| a.to_string()).collect();
    args.extend(server.args());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = server.env();
    let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (k, v) in extra_env {
        envs.retain(|(ek, _)| ek != k);
        envs.push((k, v));
    }
    let r = etcdops(&argv, &envs);
    assert!(
        !r.stdout.contains(SECRET_KEY) && !r.stderr.contains(SECRET_KEY),
        "the secret key was printed: {r:?}"
    );
    r
}

fn save_args(c: &Cluster) -> Vec<String> {
    let mut v = vec!["--endpoints".to_string(), c.members[0].client_url.clone()];
    v.extend(c.tls_args());
    v
}

fn ssh_key(dir: &Path, kind: &str) -> (PathBuf, String) {
    let key = dir.join(format!("id_{kind}"));
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", "test", "-f"])
        .arg(&key);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    assert!(cmd
        .status()
        .expect("ssh-keygen (scripts/test-deps.sh installs openssh-client)")
        .success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

fn sha256_hex(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A cluster with some data, and its keyspace.
fn filled_cluster() -> (Cluster, Vec<crate::common::cluster::Kv>) {
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let mut tc = c.client(None);
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..500)
        .map(|i| {
            (
                format!("/registry/pods/ns{}/p{i}", i % 7).into_bytes(),
                vec![i as u8; 300],
            )
        })
        .collect();
    tc.put_all(&kvs, 100);
    let dump = tc.dump();
    (c, dump)
}

/// Restore a data dir from `source` and boot it; the keyspace must equal `dump`.
fn restore_boots(
    server: &S3Server,
    source: &str,
    identity: &Path,
    dump: &[crate::common::cluster::Kv],
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("r1.etcd");
    let peer = format!("https://127.0.0.1:{}", free_port());
    let r = with_s3(
        server,
        &[
            "snapshot",
            "restore",
            source,
            "--identity",
            &s(identity),
            "--data-dir",
            &s(&data),
            "--name",
            "r1",
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("r1={peer}"),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    // Nothing but the data dir is left beside it.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("r1.etcd")]);
    // On etcd 3.5.1, then (a patch upgrade) on 3.5.30.
    for version in Version::BOTH_3_5 {
        let booted = Cluster::boot(version, &[("r1".into(), data.clone(), peer.clone())]);
        let restored = booted.client(None).dump();
        assert!(
            restored == dump,
            "keyspace differs after restoring {source} on {version:?}"
        );
    }
}

#[test]
fn round_trips_through_s3_and_a_directory() {
    let server = S3Server::shared();
    let bucket = server.bucket("roundtrip");
    let (c, dump) = filled_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let (age_key, age_pub) = age_identity(tmp.path());

    // s3:// with zstd + age.
    let mut args = vec![
        "snapshot",
        "save",
        "s3://roundtrip/etcd/prod/",
        "--compress",
        "zstd",
        "--encrypt-to",
        &age_pub,
        "-w",
        "json",
    ];
    let conn = save_args(&c);
    args.extend(conn.iter().map(String::as_str));
    let r = with_s3(server, &args, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let saved = r.json();
    let url = saved["file"].as_str().unwrap().to_string();
    let name = url.rsplit('/').next().unwrap().to_string();
    assert!(
        name.starts_with("etcd-m0-") || name.starts_with("etcd-"),
        "{name}"
    );
    assert!(name.ends_with(".db.zst.age"), "{name}");
    assert_eq!(saved["encrypted"], true);
    let keys = server.keys(&bucket, "etcd/prod/");
    assert_eq!(
        keys,
        vec![
            format!("etcd/prod/{name}"),
            format!("etcd/prod/{name}.json")
        ]
    );
    assert!(server.uploads(&bucket).is_empty());

    let ls = with_s3(
        server,
        &["snapshot", "ls", "s3://roundtrip/etcd/prod/", "-w", "json"],
        &[],
    );
    assert_eq!(ls.code, 0, "{ls:?}");
    let listed = ls.json();
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(listed["snapshots"][0]["verified"], true);
    assert_eq!(listed["snapshots"][0]["encrypted"], true);
    assert_eq!(listed["snapshots"][0]["compressed"], true);

    // The stock tools open the object: zstd -d after age -d gives the plain db of the sidecar.
    let object = tmp.path().join("object");
    let sidecar = tmp.path().join("object.json");
    assert!(server
        .aws(&["s3", "cp", &url, &s(&object)])
        .status
        .success());
    assert!(server
        .aws(&["s3", "cp", &format!("{url}.json"), &s(&sidecar)])
        .status
        .success());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    let plain = tmp.path().join("plain.db");
    let sh = format!(
        "age -d -i '{}' '{}' | zstd -d -q -o '{}'",
        s(&age_key),
        s(&object),
        s(&plain)
    );
    assert!(Command::new("sh")
        .arg("-c")
        .arg(&sh)
        .status()
        .unwrap()
        .success());
    assert_eq!(sha256_hex(&plain), meta["db_sha256"].as_str().unwrap());
    assert_eq!(sha256_hex(&object), meta["object_sha256"].as_str().unwrap());
    let status: serde_json::Value = serde_json::from_str(&run_etcdutl(&[
        "snapshot",
        "status",
        "-w",
        "json",
        &s(&plain),
    ]))
    .unwrap();
    assert!(status["revision"].as_i64().unwrap() >= meta["revision"].as_i64().unwrap());
    // An s3:// save reads its snapshot back before completing the object, as a file save does
    // (#28 item 16): the same revision, hash and key count as etcdutl finds in the object.
    for field in ["revision", "hash", "totalKey"] {
        assert_eq!(saved[field], status[field], "{field}: {saved}");
    }
    // Its read-back copy lives in TMPDIR only while it is read; without room there, the save
    // goes on, says so, and reports the server's revision.
    let spool_dir = tmp.path().join("spool-tmp");
    std::fs::create_dir(&spool_dir).unwrap();
    let mut spooled = vec!["snapshot", "save", "s3://roundtrip/etcd/spool/"];
    spooled.extend(conn.iter().map(String::as_str));
    let r = with_s3(server, &spooled, &[("TMPDIR", &s(&spool_dir))]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        std::fs::read_dir(&spool_dir).unwrap().count(),
        0,
        "TMPDIR is left empty"
    );
    let mut no_room = spooled.clone();
    no_room.push("--compress=zstd");
    let missing = tmp.path().join("no-such-dir");
    let r = with_s3(server, &no_room, &[("TMPDIR", &s(&missing))]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("note: not read back"), "{}", r.stderr);
    assert_eq!(meta["members"][0]["name"], c.members[0].name.as_str());
    assert_eq!(meta["recipients"][0], age_pub.as_str());

    // `save -` with the same options: the pipe carries the encrypted stream, which the stock
    // tools turn back into a snapshot whose trailer verifies.
    let piped = tmp.path().join("piped.db");
    let line = format!(
        "'{}' snapshot save - --compress zstd --encrypt-to '{age_pub}' {} | age -d -i '{}' | zstd -d -q -o '{}'",
        env!("CARGO_BIN_EXE_etcdops"),
        conn.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" "),
        s(&age_key),
        s(&piped)
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = etcdops(&["snapshot", "status", &s(&piped), "-w", "json"], &[]);
    assert_eq!(st.code, 0, "{st:?}");
    assert_eq!(st.json()["totalKey"], status["totalKey"]);

    // status and verify work on the remote object.
    let st = with_s3(
        server,
        &[
            "snapshot",
            "status",
            &url,
            "--identity",
            &s(&age_key),
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(st.code, 0, "{st:?}");
    assert_eq!(st.json()["hash"], status["hash"]);
    let v = with_s3(
        server,
        &["snapshot", "verify", &url, "--identity", &s(&age_key)],
        &[],
    );
    assert_eq!(v.code, 0, "{v:?}");

    restore_boots(server, &url, &age_key, &dump);
    // The offline inspection commands read the remote object the same way.
    let keys = with_s3(
        server,
        &[
            "snapshot",
            "ls",
            &url,
            "--identity",
            &s(&age_key),
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(keys.code, 0, "{keys:?}");
    assert_eq!(keys.json()["count"], dump.len());

    // DIR/ with zstd:5 to ssh-ed25519 and ssh-rsa recipients; --keep prunes the older one.
    let backups = tmp.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let (ed_key, ed_pub) = ssh_key(tmp.path(), "ed25519");
    let (rsa_key, rsa_pub) = ssh_key(tmp.path(), "rsa");
    let dest = format!("{}/", s(&backups));
    let mut args = vec![
        "snapshot",
        "save",
        &dest,
        "--compress",
        "zstd:5",
        "--encrypt-to",
        &ed_pub,
        "--encrypt-to",
        &rsa_pub,
        "-w",
        "json",
    ];
    args.extend(conn.iter().map(String::as_str));
    let r = with_s3(server, &args, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let file = PathBuf::from(r.json()["file"].as_str().unwrap());
    use std::os::unix::fs::PermissionsExt;
    for p in [file.clone(), PathBuf::from(format!("{}.json", s(&file)))] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    for key in [&ed_key, &rsa_key] {
        let plain2 = tmp.path().join("plain2.db");
        let _ = std::fs::remove_file(&plain2);
        let sh = format!(
            "age -d -i '{}' '{}' | zstd -d -q -o '{}'",
            s(key),
            s(&file),
            s(&plain2)
        );
        assert!(
            Command::new("sh")
                .arg("-c")
                .arg(&sh)
                .status()
                .unwrap()
                .success(),
            "stock age with {}",
            key.display()
        );
        let v = with_s3(
            server,
            &["snapshot", "verify", &s(&file), "--identity", &s(key)],
            &[],
        );
        assert_eq!(v.code, 0, "{v:?}");
    }
    let ls = with_s3(server, &["snapshot", "ls", &dest, "-w", "json"], &[]);
    assert_eq!(
        ls.json()["snapshots"].as_array().unwrap().len(),
        1,
        "{ls:?}"
    );
    restore_boots(server, &s(&file), &rsa_key, &dump);
}

#[test]
fn bad_cases_exit_2_with_one_line_and_nothing_visible() {
    let server = S3Server::shared();
    let bucket = server.bucket("badcases");
    let c = shared(Version::V3_5_1, 1);
    let conn = save_args(&c);
    let tmp = tempfile::tempdir().unwrap();
    let (age_key, age_pub) = age_identity(tmp.path());
    let save = |dest: &str, env: &[(&str, &str)], extra: &[String]| {
        let mut args = vec![
            "snapshot",
            "save",
            dest,
            "--compress",
            "zstd",
            "--encrypt-to",
            &age_pub,
        ];
        args.extend(conn.iter().map(String::as_str));
        let mut argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        argv.extend(extra.iter().cloned());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        with_s3(server, &argv, env)
    };
    let one_line = |r: &Run, needle: &str| {
        assert_eq!(r.code, 2, "{r:?}");
        let errors: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{r:?}");
        assert!(errors[0].contains(needle), "wanted {needle:?}: {r:?}");
    };

    let r = save(
        "s3://badcases/p/",
        &[("AWS_SECRET_ACCESS_KEY", "wrong-secret")],
        &[],
    );
    one_line(&r, "refused the credentials");
    let r = with_s3(
        server,
        &["snapshot", "ls", "s3://badcases/p/", "-v"],
        &[("AWS_SECRET_ACCESS_KEY", "wrong-secret")],
    );
    one_line(&r, "refused the credentials");
    let r = save("s3://no-such-bucket/p/", &[], &[]);
    one_line(&r, "does not exist");
    assert!(r.stderr.contains("aws s3 mb s3://no-such-bucket"), "{r:?}");
    // Doing what the hint says makes the same save work.
    assert!(server
        .aws(&["s3", "mb", "s3://no-such-bucket"])
        .status
        .success());
    assert_eq!(save("s3://no-such-bucket/p/", &[], &[]).code, 0);
    let other = crate::common::pki::Pki::generate(&tmp.path().join("other-pki"));
    // The CA comes from AWS_CA_BUNDLE here: a CA that did not sign the server's certificate.
    let mut args = vec!["snapshot", "save", "s3://badcases/p/", "--s3-endpoint"];
    let endpoint = server.endpoint();
    args.push(&endpoint);
    args.extend(conn.iter().map(String::as_str));
    let env = server.env();
    let other_ca = s(&other.ca.cert);
    let mut envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    envs.push(("AWS_CA_BUNDLE", &other_ca));
    let r = etcdops(&args, &envs);
    one_line(&r, "certificate");
    assert!(r.stderr.contains("--s3-endpoint-ca"), "{r:?}");
    let r = save("s3://badcases/p/x.db", &[], &[]);
    one_line(&r, "end it with '/'");
    let r = with_s3(
        server,
        &["snapshot", "ls", "s3://badcases/p/"],
        &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")],
    );
    one_line(&r, "no AWS credentials");
    assert!(server.keys(&bucket, "").is_empty());
    assert!(server.uploads(&bucket).is_empty());

    // A good save, then damage it in the bucket in each way.
    let r = save("s3://badcases/p/", &[], &["-w".into(), "json".into()]);
    assert_eq!(r.code, 0, "{r:?}");
    let url = r.json()["file"].as_str().unwrap().to_string();
    let key = url.trim_start_matches("s3://badcases/").to_string();
    let object = tmp.path().join("object");
    assert!(server
        .aws(&["s3", "cp", &url, &s(&object)])
        .status
        .success());
    let bytes = std::fs::read(&object).unwrap();
    let restore = |source: &str, identity: &Path| {
        let data = tmp.path().join("restored.etcd");
        let r = with_s3(
            server,
            &[
                "snapshot",
                "restore",
                source,
                "--identity",
                &s(identity),
                "--data-dir",
                &s(&data),
            ],
            &[],
        );
        assert!(!data.exists(), "a data dir was left behind: {r:?}");
        let stray: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(stray.is_empty(), "temporaries left: {stray:?}");
        r
    };
    let (wrong_key, _) = {
        let d = tmp.path().join("wrong");
        std::fs::create_dir(&d).unwrap();
        age_identity(&d)
    };
    one_line(&restore(&url, &wrong_key), "none of the --identity keys");

    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let damaged = tmp.path().join("damaged");
    for (what, content) in [
        ("corrupted", flipped),
        ("truncated", bytes[..bytes.len() * 2 / 3].to_vec()),
    ] {
        std::fs::write(&damaged, &content).unwrap();
        assert!(server
            .aws(&["s3", "cp", &s(&damaged), &url])
            .status
            .success());
        let r = restore(&url, &age_key);
        assert_eq!(r.code, 2, "{what}: {r:?}");
        assert_eq!(
            r.stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{what}: {r:?}"
        );
        let v = with_s3(
            server,
            &["snapshot", "verify", &url, "--identity", &s(&age_key)],
            &[],
        );
        assert_eq!(v.code, 1, "verify of a {what} object: {v:?}");
    }
    // An object without its sidecar is not trusted.
    assert!(server
        .aws(&["s3", "cp", &s(&object), &url])
        .status
        .success());
    assert!(server
        .aws(&["s3", "rm", &format!("{url}.json")])
        .status
        .success());
    one_line(&restore(&url, &age_key), "has no metadata object");
    let ls = with_s3(
        server,
        &["snapshot", "ls", "s3://badcases/p/", "-w", "json"],
        &[],
    );
    assert_eq!(ls.json()["snapshots"][0]["verified"], false, "{ls:?}");
    let _ = key;
}

#[test]
fn an_upload_cut_by_a_dead_server_never_appears_and_is_aborted_next_time() {
    let mut server = S3Server::start();
    let bucket = server.bucket("killed");
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let mut tc = c.client(None);
    // ~40 MB of incompressible values; zstd level 19 makes the save take seconds.
    let mut x = 7u64;
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..400)
        .map(|i| {
            let v: Vec<u8> = (0..100_000)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect();
            (format!("/big/{i}").into_bytes(), v)
        })
        .collect();
    tc.put_all(&kvs, 5);
    let conn = save_args(&c);
    let mut args: Vec<String> = [
        "snapshot",
        "save",
        "s3://killed/etcd/",
        "--compress",
        "zstd:19",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(conn.iter().cloned());
    args.extend(server.args());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_etcdops"));
    cmd.env_clear()
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in server.env() {
        cmd.env(k, v);
    }
    let start = std::time::Instant::now();
    let child = cmd.spawn().unwrap();
    // Wait until the upload exists, then kill the server under it.
    while server.uploads(&bucket).is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no upload started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.kill_hard();
    let r = wait_run(child, start, std::time::Duration::from_secs(300));
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(
        r.stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{r:?}"
    );

    server.restart();
    assert!(
        !server
            .keys(&bucket, "etcd/")
            .iter()
            .any(|k| k.ends_with(".db.zst")),
        "an object appeared under the final name"
    );
    let r = with_s3(
        &server,
        &{
            let mut a = vec![
                "snapshot",
                "save",
                "s3://killed/etcd/",
                "--compress",
                "zstd:1",
                "-w",
                "json",
            ];
            a.extend(conn.iter().map(String::as_str));
            a
        },
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        server.uploads(&bucket).is_empty(),
        "the stale upload is still there"
    );
    let _ = etcdops_spawn;
}

#[test]
fn retention_on_the_server_and_in_a_directory() {
    let server = S3Server::shared();
    let bucket = server.bucket("retention");
    let c = shared(Version::V3_5_1, 1);
    let conn = save_args(&c);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("local");
    std::fs::create_dir(&dir).unwrap();
    for dest in ["s3://retention/r/".to_string(), format!("{}/", s(&dir))] {
        let mut args = vec!["snapshot", "save", &dest, "-w", "json"];
        args.extend(conn.iter().map(String::as_str));
        let r = with_s3(server, &args, &[]);
        assert_eq!(r.code, 0, "{r:?}");
        let made = r.json()["file"].as_str().unwrap().to_string();
        let name = made.rsplit('/').next().unwrap().to_string();
        // Copies of the real snapshot under the names of older saves, each with its sidecar.
        let obj = tmp.path().join("obj");
        let side = tmp.path().join("obj.json");
        let fetch = |from: &str, to: &Path| {
            if from.starts_with("s3://") {
                server.aws_ok(&["s3", "cp", from, &s(to)]);
            } else {
                std::fs::copy(from, to).unwrap();
            }
        };
        let put = |from: &Path, to: &str| {
            if to.starts_with("s3://") {
                server.aws_ok(&["s3", "cp", &s(from), to]);
            } else {
                std::fs::copy(from, to).unwrap();
            }
        };
        fetch(&made, &obj);
        fetch(&format!("{made}.json"), &side);
        let base = made.trim_end_matches(&name).to_string();
        let stamps = [
            "20260101T000000Z",
            "20260102T000000Z",
            "20260102T120000Z",
            "20260201T000000Z",
        ];
        // Another node's two saves of one day: a group of its own, so the newest stays.
        let other = ["etcd-m9-20260101T000000Z.db", "etcd-m9-20260101T060000Z.db"];
        let names = stamps
            .iter()
            .map(|stamp| format!("etcd-m0-{stamp}.db"))
            .chain(other.iter().map(|n| n.to_string()));
        // The real snapshot under another generated name, with its sidecar renamed to match.
        let copy_as = |n: &str| {
            let mut meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&side).unwrap()).unwrap();
            meta["name"] = n.into();
            std::fs::write(
                tmp.path().join("m.json"),
                serde_json::to_vec(&meta).unwrap(),
            )
            .unwrap();
            put(&obj, &format!("{base}{n}"));
            put(&tmp.path().join("m.json"), &format!("{base}{n}.json"));
        };
        for n in names {
            copy_as(&n);
        }
        // Not ours: another name, and a generated name without a sidecar.
        put(&obj, &format!("{base}manual-backup.db"));
        put(&obj, &format!("{base}etcd-m0-20250101T000000Z.db"));

        let prune = |dry: bool| {
            let mut a = vec![
                "snapshot",
                "prune",
                &base,
                "--keep-daily",
                "2",
                "--keep-monthly",
                "3",
                "-w",
                "json",
            ];
            if dry {
                a.push("--dry-run");
            }
            with_s3(server, &a, &[])
        };
        let dry = prune(true);
        assert_eq!(dry.code, 0, "{dry:?}");
        let actions: Vec<(String, String)> = dry.json()["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["action"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        // daily 2: today's save and 2026-02-01; monthly 3: today's month, February, January
        // (newest of January: 01-02 12:00). 01-01 and 01-02 00:00 go. The sidecar-less one
        // is skipped, the foreign one not listed.
        let want = vec![
            (
                "etcd-m0-20250101T000000Z.db".to_string(),
                "skip".to_string(),
            ),
            (
                "etcd-m0-20260101T000000Z.db".to_string(),
                "would delete".to_string(),
            ),
            (
                "etcd-m9-20260101T000000Z.db".to_string(),
                "would delete".to_string(),
            ),
            (
                "etcd-m9-20260101T060000Z.db".to_string(),
                "keep".to_string(),
            ),
            (
                "etcd-m0-20260102T000000Z.db".to_string(),
                "would delete".to_string(),
            ),
            (
                "etcd-m0-20260102T120000Z.db".to_string(),
                "keep".to_string(),
            ),
            (
                "etcd-m0-20260201T000000Z.db".to_string(),
                "keep".to_string(),
            ),
            (name.clone(), "keep".to_string()),
        ];
        assert_eq!(actions, want, "{dry:?}");
        let real = prune(false);
        assert_eq!(real.code, 0, "{real:?}");
        // The names `snapshot ls` lists there now.
        let listed = || -> Vec<String> {
            let ls = with_s3(server, &["snapshot", "ls", &base, "-w", "json"], &[]);
            ls.json()["snapshots"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        };
        let left = listed();
        assert_eq!(
            left,
            vec![
                "etcd-m0-20250101T000000Z.db",
                "etcd-m9-20260101T060000Z.db",
                "etcd-m0-20260102T120000Z.db",
                "etcd-m0-20260201T000000Z.db",
                name.as_str()
            ]
        );
        // A save with --keep never deletes what it has just written, even when a clock made
        // another of the group look newer.
        let node = name
            .strip_prefix("etcd-")
            .unwrap()
            .rsplit_once('-')
            .unwrap()
            .0;
        let future = &format!("etcd-{node}-20991231T000000Z.db");
        copy_as(future);
        // Names have a one-second resolution: a save in the same second as the first is refused.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let mut args = vec!["snapshot", "save", &dest, "--keep", "last=1", "-w", "json"];
        args.extend(conn.iter().map(String::as_str));
        let r = with_s3(server, &args, &[]);
        assert_eq!(r.code, 0, "{r:?}");
        let saved = r.json()["file"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        // --keep last=1 deleted the rest of the group (all but the new save and the "newer" one).
        assert!(
            !r.json()["pruned"].as_array().is_none_or(Vec::is_empty),
            "{r:?}"
        );
        let left = listed();
        assert!(left.contains(&saved), "{left:?}");
        assert!(left.contains(future), "{left:?}");
        // In table and simple output too (a timer's journal sees only those): each deletion is
        // a line.
        for format in ["table", "simple"] {
            std::thread::sleep(std::time::Duration::from_millis(1100));
            let before = listed();
            let mut args = vec!["snapshot", "save", &dest, "--keep", "last=1", "-w", format];
            args.extend(conn.iter().map(String::as_str));
            let r = with_s3(server, &args, &[]);
            assert_eq!(r.code, 0, "{r:?}");
            let after = listed();
            let gone: Vec<&String> = before.iter().filter(|n| !after.contains(n)).collect();
            assert!(!gone.is_empty(), "{format}: {r:?}");
            for name in gone {
                let line = r
                    .stdout
                    .lines()
                    .find(|l| l.starts_with("pruned ") && l.ends_with(name.as_str()));
                assert!(line.is_some(), "{format}: {name} not listed: {}", r.stdout);
            }
        }
        if dest.starts_with("s3://") {
            assert!(server
                .keys(&bucket, "r/")
                .contains(&"r/manual-backup.db".to_string()));
            assert!(!server
                .keys(&bucket, "r/")
                .contains(&"r/etcd-m0-20260101T000000Z.db.json".to_string()));
        } else {
            assert!(dir.join("manual-backup.db").exists());
        }
    }
}

/// The CronJob of `schedule print cronjob` output, its comment lines skipped.
fn cronjob_doc(stdout: &str) -> serde_json::Value {
    let yaml: String = stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    serde_yaml_ng::from_str(&yaml).unwrap()
}

/// #28 items 5-9: the save's arguments parsed as `snapshot save` parses them (in any order, a
/// leading `snapshot save` taken as the command), flags before `--` refused rather than
/// dropped, a private object-store CA mounted from the ConfigMap the printed command creates,
/// `--every 1d` accepted and `--every 45m` echoed as typed, the image the release publishes.
#[test]
fn schedules_read_the_save_arguments_as_save_does() {
    let run = |args: &[&str]| etcdops(args, &[]);
    let r = run(&[
        "schedule",
        "print",
        "cronjob",
        "--",
        "--compress",
        "zstd",
        "s3://bkt/p/",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let doc = cronjob_doc(&r.stdout);
    let container = &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["args"],
        serde_json::json!(["snapshot", "save", "--compress", "zstd", "s3://bkt/p/"])
    );
    let image = container["image"].as_str().unwrap();
    assert_eq!(
        image,
        concat!("ghcr.io/etcdops/etcdops:", env!("CARGO_PKG_VERSION"))
    );
    let containerfile =
        std::fs::read_to_string(crate::common::repo().join("Containerfile")).unwrap();
    assert!(
        containerfile.contains("ENTRYPOINT [\"/usr/local/bin/etcdops\"]"),
        "{containerfile}"
    );
    assert!(
        containerfile.contains("ca-certificates.crt"),
        "{containerfile}"
    );
    let release =
        std::fs::read_to_string(crate::common::repo().join(".github/workflows/release.yml"))
            .unwrap();
    assert!(
        release.contains("x86_64")
            && release.contains("aarch64")
            && release.contains("SHA256SUMS")
            && release.contains("ghcr.io/${{ github.repository_owner }}/etcdops:"),
        "{release}"
    );

    let r = run(&[
        "schedule",
        "print",
        "systemd",
        "--",
        "snapshot",
        "save",
        "s3://bkt/p/",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let exec = r
        .stdout
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .unwrap();
    assert!(exec.ends_with(" snapshot save s3://bkt/p/"), "{exec}");

    for (args, needle) in [
        (
            vec![
                "--manifest",
                "/m.yaml",
                "schedule",
                "print",
                "systemd",
                "--",
                "s3://bkt/p/",
            ],
            "--manifest before --",
        ),
        (
            vec![
                "--endpoints",
                "https://10.0.0.1:2379",
                "schedule",
                "print",
                "cronjob",
                "--",
                "s3://bkt/p/",
            ],
            "--endpoints before --",
        ),
        (
            vec![
                "-w",
                "json",
                "schedule",
                "print",
                "systemd",
                "--",
                "s3://bkt/p/",
            ],
            "-w/--write-out",
        ),
        (
            vec![
                "schedule",
                "print",
                "systemd",
                "--",
                "s3://bkt/p/",
                "--bogus",
            ],
            "'--bogus'",
        ),
        (
            vec![
                "schedule",
                "print",
                "systemd",
                "--",
                "s3://bkt/p/",
                "--keep",
                "fortnightly=2",
            ],
            "fortnightly",
        ),
        (
            vec![
                "schedule",
                "print",
                "systemd",
                "--every",
                "45m",
                "--",
                "s3://bkt/p/",
            ],
            "--every 45m:",
        ),
    ] {
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert_eq!(r.error_lines(), 1, "{r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
    // Flags after -- reach the unit, in order.
    let r = run(&[
        "schedule",
        "print",
        "systemd",
        "--every",
        "1d",
        "--",
        "--manifest",
        "/m.yaml",
        "s3://bkt/p/",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("OnCalendar=daily"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("snapshot save --manifest /m.yaml s3://bkt/p/"),
        "{}",
        r.stdout
    );

    // A private CA: the ConfigMap the header says to create is what the pod mounts, and the
    // save's flag names the mounted file.
    let r = run(&[
        "schedule",
        "print",
        "cronjob",
        "--",
        "--s3-endpoint-ca",
        "/root/s3 ca.pem",
        "s3://bkt/p/",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("kubectl -n kube-system create configmap etcdops-s3-ca --from-file=ca.crt='/root/s3 ca.pem'"),
        "{}",
        r.stdout
    );
    let doc = cronjob_doc(&r.stdout);
    let pod = &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let args = &pod["containers"][0]["args"];
    assert_eq!(args[2], "--s3-endpoint-ca");
    assert_eq!(args[3], "/etc/etcdops/s3-ca/ca.crt");
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "s3-ca")
        .unwrap()
        .clone();
    assert_eq!(mount["mountPath"], "/etc/etcdops/s3-ca");
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "s3-ca")
        .unwrap()
        .clone();
    assert_eq!(volume["configMap"]["name"], "etcdops-s3-ca");
}

#[test]
fn scheduled_units_pass_their_consumers_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let r = etcdops(
        &[
            "schedule",
            "print",
            "systemd",
            "--every",
            "1h",
            "--dir",
            &s(tmp.path()),
            "--",
            "s3://backups/etcd/",
            "--compress",
            "zstd",
            "--keep",
            "daily=7,weekly=4",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let service = tmp.path().join("etcdops-snapshot.service");
    let timer = tmp.path().join("etcdops-snapshot.timer");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&service)
        .arg(&timer)
        .output()
        .expect("systemd-analyze (scripts/test-deps.sh installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("etcdops-snapshot"))
        .collect();
    assert!(complaints.is_empty() && out.status.success(), "{stderr}");
    let unit = std::fs::read_to_string(&timer).unwrap();
    assert!(
        unit.contains("Persistent=true")
            && unit.contains("OnCalendar=hourly")
            && unit.contains("RandomizedDelaySec=")
    );
    let svc = std::fs::read_to_string(&service).unwrap();
    assert!(svc.contains("EnvironmentFile=-/etc/etcdops/backup.env"));
    assert!(
        svc.contains("snapshot save s3://backups/etcd/ --compress zstd --keep daily=7,weekly=4")
    );

    let (_, recipient) = crate::common::age_identity(tmp.path());
    let r = etcdops(
        &[
            "schedule",
            "print",
            "cronjob",
            "--every",
            "6h",
            "--image",
            "registry.local/etcdops:1",
            "--",
            "s3://backups/etcd/",
            "--encrypt-to",
            &recipient,
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let doc = cronjob_doc(&r.stdout);
    assert_eq!(doc["apiVersion"], "batch/v1");
    assert_eq!(doc["kind"], "CronJob");
    let spec = &doc["spec"];
    assert_eq!(spec["schedule"], "0 */6 * * *");
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["restartPolicy"], "Never");
    assert!(pod["nodeSelector"]
        .get("node-role.kubernetes.io/control-plane")
        .is_some());
    assert_eq!(
        pod["tolerations"][0]["key"],
        "node-role.kubernetes.io/control-plane"
    );
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "registry.local/etcdops:1");
    assert_eq!(container["command"][0], "/usr/local/bin/etcdops");
    assert_eq!(container["securityContext"]["runAsUser"], 0);
    assert_eq!(container["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(container["args"][0], "snapshot");
    assert_eq!(container["args"][2], "s3://backups/etcd/");
    assert_eq!(
        container["envFrom"][0]["secretRef"]["name"],
        "etcdops-backup-credentials"
    );
    let mounts = container["volumeMounts"].as_array().unwrap();
    let pki = mounts
        .iter()
        .find(|m| m["mountPath"] == "/etc/kubernetes/pki/etcd")
        .unwrap();
    assert_eq!(pki["readOnly"], true);
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(volumes
        .iter()
        .any(|v| v["hostPath"]["path"] == "/etc/kubernetes/pki/etcd"));

    for (args, needle) in [
        (
            vec!["schedule", "print", "cronjob", "--", "/var/backups/"],
            "s3://",
        ),
        (
            vec![
                "schedule",
                "print",
                "systemd",
                "--every",
                "7m",
                "--",
                "s3://bkt/p/",
            ],
            "divides an hour",
        ),
    ] {
        let r = etcdops(&args, &[]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains(needle), "{r:?}");
    }
}

/// A loopback stand-in for the EC2 instance metadata service (IMDSv2) and STS
/// `AssumeRoleWithWebIdentity`, handing out the S3 server's real keys: the chain must fetch
/// them the way it would on EC2 or under IRSA, and the object store must accept them.
const METADATA_STUB: &str = r#"
import http.server, sys, urllib.parse
KEY, SECRET, TOKEN_FILE = sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, body, ctype="text/plain"):
        b = body.encode(); self.send_response(code); self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("x-aws-ec2-metadata-token-ttl-seconds"):
            self.reply(200, "imds-session")
        else:
            self.reply(400, "bad")
    def do_GET(self):
        u = urllib.parse.urlparse(self.path); q = urllib.parse.parse_qs(u.query)
        if u.path.startswith("/latest/"):
            if self.headers.get("x-aws-ec2-metadata-token") != "imds-session":
                return self.reply(401, "no token")
            if u.path == "/latest/meta-data/iam/security-credentials/":
                return self.reply(200, "node-role\n")
            if u.path == "/latest/meta-data/iam/security-credentials/node-role":
                return self.reply(200, '{"Code":"Success","AccessKeyId":"%s","SecretAccessKey":"%s","Token":"","Expiration":"2099-01-01T00:00:00Z"}' % (KEY, SECRET), "application/json")
            return self.reply(404, "")
        if q.get("Action") == ["AssumeRoleWithWebIdentity"]:
            if q.get("WebIdentityToken") != [open(TOKEN_FILE).read().strip()] or q.get("RoleArn") != ["arn:aws:iam::1:role/backup"]:
                return self.reply(403, "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>")
            return self.reply(200, "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken></SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>" % (KEY, SECRET), "text/xml")
        self.reply(404, "")
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

#[test]
fn credentials_from_profiles_web_identity_and_instance_metadata() {
    use crate::common::s3::ACCESS_KEY;
    let server = S3Server::shared();
    server.bucket("creds");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        format!("[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n[backup]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"),
    )
    .unwrap();
    std::fs::write(
        home.join(".aws/config"),
        "[profile backup]\nregion = us-east-1\n",
    )
    .unwrap();
    let home_s = s(&home);
    let no_keys = [("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")];
    let ls = |env: &[(&str, &str)]| {
        let mut all: Vec<(&str, &str)> = no_keys.to_vec();
        all.extend_from_slice(env);
        with_s3(server, &["snapshot", "ls", "s3://creds/", "-v"], &all)
    };

    let r = ls(&[("HOME", &home_s), ("AWS_PROFILE", "backup")]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = ls(&[("HOME", &home_s)]);
    assert_eq!(r.code, 2, "the default profile's keys are wrong: {r:?}");
    assert!(r.stderr.contains("profile \"default\""), "{r:?}");
    let r = ls(&[("HOME", &home_s), ("AWS_PROFILE", "nope")]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("AWS_PROFILE=\"nope\""), "{r:?}");

    let port = free_port().to_string();
    let stub = tmp.path().join("stub.py");
    std::fs::write(&stub, METADATA_STUB).unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "eyJ-projected-service-account-token\n").unwrap();
    let mut child = Command::new("python3")
        .arg(&stub)
        .args([port.as_str(), ACCESS_KEY, SECRET_KEY])
        .arg(&token)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err() {
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let token_s = s(&token);
    let irsa = ls(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_s),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/backup"),
        ("AWS_ENDPOINT_URL_STS", &base),
    ]);
    let wrong_role = ls(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_s),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/other"),
        ("AWS_ENDPOINT_URL_STS", &base),
    ]);
    let imds = ls(&[
        ("AWS_EC2_METADATA_DISABLED", "false"),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &base),
    ]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(irsa.code, 0, "{irsa:?}");
    assert_eq!(wrong_role.code, 2, "{wrong_role:?}");
    assert!(wrong_role.stderr.contains("STS refused"), "{wrong_role:?}");
    assert_eq!(imds.code, 0, "{imds:?}");
}

#[test]
fn the_scheduled_service_runs_its_save_as_written() {
    let server = S3Server::shared();
    server.bucket("sched");
    let c = shared(Version::V3_5_1, 1);
    let tmp = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = ["schedule", "print", "systemd", "--every", "15m", "--dir"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.push(s(tmp.path()));
    args.extend(
        [
            "--",
            "s3://sched/etcd/",
            "--compress",
            "zstd:1",
            "--keep",
            "last=2",
        ]
        .map(String::from),
    );
    args.extend(save_args(&c));
    args.extend(server.args());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = etcdops(&argv, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let unit = std::fs::read_to_string(tmp.path().join("etcdops-snapshot.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .to_string();
    // The EnvironmentFile the unit names, made by the README's own line (its directory moved
    // into the test's): 0600 before a secret is written into it.
    assert!(
        unit.contains("EnvironmentFile=-/etc/etcdops/backup.env"),
        "{unit}"
    );
    let readme = std::fs::read_to_string(crate::common::repo().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("mkdir -p /etc/etcdops && install -m 0600"))
        .expect("the README's env-file line");
    let etc = tmp.path().join("etc-etcdops");
    let made = Command::new("sh")
        .arg("-c")
        .arg(line.replace("/etc/etcdops", &s(&etc)))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .status()
        .unwrap();
    assert!(made.success());
    let env_file = etc.join("backup.env");
    use std::os::unix::fs::PermissionsExt;
    let mode = || std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(), 0o600);
    let template = std::fs::read_to_string(&env_file).unwrap();
    for k in [
        "AWS_ACCESS_KEY_ID=",
        "AWS_SECRET_ACCESS_KEY=",
        "AWS_ENDPOINT_URL=",
    ] {
        assert!(template.contains(k), "{template}");
    }
    // The operator fills in the values; the file keeps its mode.
    let env: String = server
        .env()
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    std::fs::write(&env_file, env).unwrap();
    assert_eq!(mode(), 0o600);
    for _ in 0..3 {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("set -a; . '{}'; set +a; exec {exec}", s(&env_file)))
            .env_clear()
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let ls = with_s3(
        server,
        &["snapshot", "ls", "s3://sched/etcd/", "-w", "json"],
        &[],
    );
    let listed = ls.json()["snapshots"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "--keep last=2 after three runs: {ls:?}");
    assert!(listed
        .iter()
        .all(|x| x["verified"] == true && x["compressed"] == true));
}

#[test]
fn a_three_member_restore_from_s3_runs_the_printed_commands_and_forms_one_cluster() {
    let server = S3Server::shared();
    server.bucket("harestore");
    let c = shared(Version::V3_5_1, 1);
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = age_identity(tmp.path());
    let mut args = vec![
        "snapshot",
        "save",
        "s3://harestore/",
        "--compress",
        "zstd",
        "--encrypt-to",
        &public,
        "-w",
        "json",
    ];
    let conn = save_args(&c);
    args.extend(conn.iter().map(String::as_str));
    let r = with_s3(server, &args, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let url = r.json()["file"].as_str().unwrap().to_string();
    let expected = {
        let mut tc = c.client(None);
        tc.dump()
    };

    let three = ThreeMembers::new();
    let (peers, initial) = (&three.peers, &three.initial);
    let first = tmp.path().join("n1.etcd");
    let r = with_s3(
        server,
        &[
            "snapshot",
            "restore",
            &url,
            "--identity",
            &s(&key),
            "--data-dir",
            &s(&first),
            "--name",
            "n1",
            "--initial-advertise-peer-urls",
            &peers[0],
            "--initial-cluster",
            initial,
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let others = r.json()["other_members"].as_array().unwrap().clone();
    assert_eq!(others.len(), 2, "{r:?}");
    // Each other node runs its line as printed, with only its credentials in the environment.
    let env = server.env();
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for o in &others {
        let command = o["command"].as_str().unwrap();
        assert!(
            command.contains(&url)
                && command.contains("--identity=")
                && command.contains("--s3-endpoint="),
            "{command}"
        );
        let r = crate::common::run::run_printed(command, &envs, tmp.path());
        assert_eq!(r.code, 0, "{command}\n{r:?}");
    }
    let booted = Cluster::boot(Version::V3_5_30, &three.in_dir(tmp.path()));
    let mut tc = booted.client(None);
    assert_eq!(
        tc.dump(),
        expected,
        "the keyspace of the three restored members (on etcd 3.5.30)"
    );
    let members = tc.rt.block_on(tc.client.member_list()).unwrap();
    assert_eq!(members.members().len(), 3);
}

/// Every upload carries a CRC32C checksum that the server checks and keeps, as aws-cli v2 and
/// the AWS SDKs send (S3 Object Lock buckets refuse uploads without one):
/// a multipart snapshot (composite checksum) and its sidecar, into a bucket with Object Lock
/// and a default retention; a prune there hides the old snapshot while the retention keeps
/// its version. `AWS_REQUEST_CHECKSUM_CALCULATION=when_required` sends none; a value that is
/// neither exits 2 with one line.
#[test]
fn uploads_carry_checksums_and_object_lock_buckets_take_them() {
    let server = S3Server::shared();
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let mut tc = c.client(None);
    let kvs: Vec<(Vec<u8>, Vec<u8>)> = (0..120)
        .map(|i| {
            (
                format!("/registry/configmaps/big/c{i}").into_bytes(),
                vec![(i % 251) as u8; 100_000],
            )
        })
        .collect();
    tc.put_all(&kvs, 10);
    let conn = save_args(&c);
    server.aws_ok(&[
        "s3api",
        "create-bucket",
        "--bucket",
        "locked",
        "--object-lock-enabled-for-bucket",
    ]);
    server.aws_ok(&[
        "s3api",
        "put-object-lock-configuration",
        "--bucket",
        "locked",
        "--object-lock-configuration",
        r#"{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1}}}"#,
    ]);
    let head = |key: &str| -> serde_json::Value {
        serde_json::from_str(&server.aws_ok(&[
            "s3api",
            "head-object",
            "--bucket",
            key.split('/').nth(2).unwrap(),
            "--key",
            key.splitn(4, '/').nth(3).unwrap(),
            "--checksum-mode",
            "ENABLED",
        ]))
        .unwrap()
    };
    let save = |dest: &str, env: &[(&str, &str)]| {
        let mut args = vec!["snapshot", "save", dest, "-w", "json"];
        args.extend(conn.iter().map(String::as_str));
        with_s3(server, &args, env)
    };
    let mut saved = Vec::new();
    for _ in 0..2 {
        let r = save("s3://locked/l/", &[]);
        assert_eq!(r.code, 0, "{r:?}");
        let file = r.json()["file"].as_str().unwrap().to_string();
        let object = head(&file);
        assert!(
            object["ContentLength"].as_u64().unwrap() > 5 << 20,
            "{object}"
        );
        let crc = object["ChecksumCRC32C"].as_str().unwrap_or("");
        assert!(crc.ends_with("-3") || crc.ends_with("-4"), "{object}");
        // The sidecar's (one part) is the CRC-32C of its bytes, as computed here.
        let local = tempfile::NamedTempFile::new().unwrap();
        server.aws_ok(&["s3", "cp", &format!("{file}.json"), &s(local.path())]);
        let expected = {
            use base64::Engine;
            let crc = crc32c::crc32c(&std::fs::read(local.path()).unwrap());
            base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
        };
        assert_eq!(
            head(&format!("{file}.json"))["ChecksumCRC32C"].as_str(),
            Some(expected.as_str()),
            "the sidecar"
        );
        assert_eq!(with_s3(server, &["snapshot", "verify", &file], &[]).code, 0);
        saved.push(file);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let r = with_s3(
        server,
        &["snapshot", "prune", "s3://locked/l/", "--keep-last", "1"],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let newest = saved[1].trim_start_matches("s3://locked/");
    assert_eq!(
        server.keys("locked", "l/"),
        vec![newest.to_string(), format!("{newest}.json")]
    );
    let versions = server.aws_ok(&["s3api", "list-object-versions", "--bucket", "locked"]);
    assert!(
        versions.contains(saved[0].trim_start_matches("s3://locked/")),
        "the retention keeps the pruned version: {versions}"
    );

    // Checksums off, as aws-cli's setting of the same name; a bad value is refused.
    server.bucket("unchecked");
    let r = save(
        "s3://unchecked/",
        &[("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let object = head(r.json()["file"].as_str().unwrap());
    assert!(object.get("ChecksumCRC32C").is_none(), "{object}");
    let r = save(
        "s3://unchecked/",
        &[("AWS_REQUEST_CHECKSUM_CALCULATION", "sometimes")],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{r:?}");
    assert!(
        r.stderr.contains("AWS_REQUEST_CHECKSUM_CALCULATION") && r.stderr.contains("when_required"),
        "{}",
        r.stderr
    );
}

/// #28 item 19: two clusters whose members share a name save into one prefix; `ls` tells them
/// apart by cluster ID in every format.
#[test]
fn ls_tells_two_clusters_with_the_same_node_name_apart() {
    let one = shared(Version::V3_5_1, 1);
    let two = Cluster::start(ClusterOptions::new(Version::V3_5_30, 1));
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("{}/", s(dir.path()));
    let mut ids = Vec::new();
    for c in [&*one, &two] {
        let mut argv = vec!["snapshot".to_string(), "save".to_string(), dest.clone()];
        argv.extend(save_args(c));
        argv.extend(["-w".to_string(), "json".to_string()]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let r = etcdops(&argv, &[]);
        assert_eq!(r.code, 0, "{r:?}");
        // Generated names have a one-second resolution.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let status = etcdops(
            &crate::common::run::args(&["status", "-w", "json"], &save_args(c)),
            &[],
        );
        let id = status.json()[0]["Status"]["header"]["cluster_id"]
            .as_u64()
            .unwrap();
        ids.push(format!("{id:x}"));
    }
    assert_ne!(ids[0], ids[1]);
    let r = etcdops(&["snapshot", "ls", &dest, "-w", "json"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let listed: Vec<(String, String)> = r.json()["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"].as_str().unwrap().to_string(),
                e["cluster_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(listed.len(), 2, "{}", r.stdout);
    assert_eq!(listed[0].0, listed[1].0, "the same node name: {listed:?}");
    assert_eq!(
        [listed[0].1.clone(), listed[1].1.clone()],
        [ids[0].clone(), ids[1].clone()]
    );
    for format in ["table", "simple"] {
        let r = etcdops(&["snapshot", "ls", &dest, "-w", format], &[]);
        assert_eq!(r.code, 0, "{r:?}");
        for id in &ids {
            assert!(r.stdout.contains(id.as_str()), "{format}: {}", r.stdout);
        }
    }
}
