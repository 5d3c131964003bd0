//! `cert-renew` on PKI trees made by openssl at test time (kubeadm-shaped RSA with PKCS#1 keys,
//! cfssl-shaped ECDSA with SEC1 keys, Ed25519), with openssl as the oracle: the chain verifies,
//! the extensions are the old ones, the dates are what was asked; refusals change nothing; and
//! a live etcd serves the renewed certificate at the next handshake without a restart.

use crate::common::s;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::cluster::{Cluster, ClusterOptions, Version};
use crate::common::run::etcdops;

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Clone, Copy)]
enum Alg {
    Rsa,
    Ec,
    Ed25519,
}

/// A private key in the encoding the tool of each tree writes.
fn key(path: &Path, alg: Alg) {
    match alg {
        Alg::Rsa => {
            openssl(&["genrsa", "-traditional", "-out", &s(path), "2048"]);
        }
        Alg::Ec => {
            openssl(&[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &s(path),
            ]);
        }
        Alg::Ed25519 => {
            openssl(&["genpkey", "-algorithm", "ed25519", "-out", &s(path)]);
        }
    }
}

fn ca(dir: &Path, cert: &str, keyf: &str, alg: Alg, days: u32) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join(cert), dir.join(keyf));
    key(&k, alg);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &s(&k),
        "-out",
        &s(&c),
        "-days",
        &days.to_string(),
        "-subj",
        "/CN=etcd-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ]);
    (c, k)
}

/// A leaf valid for `days` with the extensions kubeadm gives etcd's certificates.
fn leaf(
    dir: &Path,
    (cert, keyf): (&str, &str),
    ca: &(PathBuf, PathBuf),
    alg: Alg,
    cn: &str,
    eku: &str,
    days: u32,
) -> PathBuf {
    let (c, k) = (dir.join(cert), dir.join(keyf));
    key(&k, alg);
    let csr = dir.join(format!("{cert}.csr"));
    openssl(&[
        "req",
        "-new",
        "-key",
        &s(&k),
        "-out",
        &s(&csr),
        "-subj",
        &format!("/O=system:masters/CN={cn}"),
    ]);
    let ext = dir.join(format!("{cert}.ext"));
    // kubeadm marks keyUsage critical; openssl's own default (the EC trees here) leaves it and
    // basicConstraints non-critical: a renewal keeps each as it was (#28 item 4).
    let usage = match alg {
        Alg::Rsa => "keyUsage=critical,digitalSignature,keyEncipherment",
        _ => "keyUsage=digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE",
    };
    std::fs::write(
        &ext,
        format!("subjectAltName=DNS:localhost,DNS:cp1,IP:127.0.0.1,IP:10.0.0.11\n{usage}\nextendedKeyUsage={eku}\n"),
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca.0),
        "-CAkey",
        &s(&ca.1),
        "-CAcreateserial",
        "-out",
        &s(&c),
        "-days",
        &days.to_string(),
        "-extfile",
        &s(&ext),
    ]);
    std::fs::remove_file(&csr).unwrap();
    std::fs::remove_file(&ext).unwrap();
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o644)).unwrap();
    c
}

/// An EC CA (`ca.crt`, `ca.key`) in `dir` and four server leaves it signed, `c0.crt`…`c3.crt`
/// with their keys, valid 5 days.
fn four_leaves(dir: &Path) -> ((PathBuf, PathBuf), Vec<PathBuf>) {
    let ca = ca(dir, "ca.crt", "ca.key", Alg::Ec, 3650);
    let certs = (0..4)
        .map(|i| {
            leaf(
                dir,
                (&format!("c{i}.crt"), &format!("c{i}.key")),
                &ca,
                Alg::Ec,
                "cp1",
                "serverAuth",
                5,
            )
        })
        .collect();
    (ca, certs)
}

fn extensions(cert: &Path) -> String {
    openssl(&[
        "x509",
        "-in",
        &s(cert),
        "-noout",
        "-ext",
        "subjectAltName,keyUsage,extendedKeyUsage,basicConstraints",
        "-subject",
    ])
}

fn not_after(cert: &Path) -> i64 {
    let out = openssl(&["x509", "-in", &s(cert), "-noout", "-enddate"]);
    let date = out.trim().trim_start_matches("notAfter=");
    let out = Command::new("date")
        .args(["-u", "-d", date, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Renew `certs`, then check everything the issue lists.
fn renew_and_check(ca_cert: &Path, certs: &[PathBuf], scan_dir: &Path) {
    // openssl's serial file is not a certificate; cert-expiry would list it as unreadable.
    for dir in [scan_dir.to_path_buf(), scan_dir.join("etcd")] {
        let _ = std::fs::remove_file(dir.join("ca.srl"));
    }
    let backup = scan_dir.parent().unwrap().join("backup");
    // Certificates owned by someone else keep that owner (the tests run as root).
    let owner = (1234, 1234);
    for c in certs {
        std::os::unix::fs::chown(c, Some(owner.0), Some(owner.1)).unwrap();
    }
    let before: Vec<(String, Vec<u8>)> = certs
        .iter()
        .map(|c| (extensions(c), std::fs::read(c).unwrap()))
        .collect();
    let expiry_before = etcdops(&["cert-expiry", &s(scan_dir), "--warn-days", "30"], &[]);
    assert_eq!(
        expiry_before.code, 1,
        "the leaves expire within 30 days: {expiry_before:?}"
    );
    assert!(
        expiry_before.stderr.contains("cert-renew"),
        "cert-expiry points at cert-renew: {expiry_before:?}"
    );

    let mut args = vec!["cert-renew".to_string()];
    args.extend(certs.iter().map(|c| s(c)));
    args.extend([
        "--backup-dir".to_string(),
        s(&backup),
        "-w".into(),
        "json".into(),
    ]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = etcdops(&argv, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("PRIVATE KEY") && !r.stderr.contains("PRIVATE KEY"));
    for (c, (ext, old)) in certs.iter().zip(&before) {
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile", &s(ca_cert), &s(c)])
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "openssl verify {}: {}",
            c.display(),
            String::from_utf8_lossy(&verify.stdout)
        );
        assert_eq!(&extensions(c), ext, "{}", c.display());
        let days = (not_after(c) - unix_now()) as f64 / 86400.0;
        assert!(
            (364.9..=365.1).contains(&days),
            "{}: {days} days",
            c.display()
        );
        let abs = std::path::absolute(c).unwrap();
        let saved = backup.join(abs.strip_prefix("/").unwrap());
        assert_eq!(
            &std::fs::read(&saved).unwrap(),
            old,
            "backup of {}",
            c.display()
        );
        let meta = std::fs::metadata(c).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644, "{}", c.display());
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (meta.uid(), meta.gid()),
            owner,
            "{}: owner kept",
            c.display()
        );
    }
    let expiry_after = etcdops(&["cert-expiry", &s(scan_dir), "--warn-days", "30"], &[]);
    assert_eq!(expiry_after.code, 0, "{expiry_after:?}");
}

#[test]
fn kubeadm_rsa_tree_is_renewed_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let etcd = pki.join("etcd");
    std::fs::create_dir_all(&etcd).unwrap();
    let ca = ca(&etcd, "ca.crt", "ca.key", Alg::Rsa, 3650);
    let certs = vec![
        leaf(
            &etcd,
            ("server.crt", "server.key"),
            &ca,
            Alg::Rsa,
            "cp1",
            "serverAuth,clientAuth",
            5,
        ),
        leaf(
            &etcd,
            ("peer.crt", "peer.key"),
            &ca,
            Alg::Rsa,
            "cp1",
            "serverAuth,clientAuth",
            5,
        ),
        leaf(
            &etcd,
            ("healthcheck-client.crt", "healthcheck-client.key"),
            &ca,
            Alg::Rsa,
            "kube-etcd-healthcheck-client",
            "clientAuth",
            5,
        ),
        leaf(
            &pki,
            ("apiserver-etcd-client.crt", "apiserver-etcd-client.key"),
            &ca,
            Alg::Rsa,
            "kube-apiserver-etcd-client",
            "clientAuth",
            5,
        ),
    ];
    renew_and_check(&ca.0, &certs, &pki);
}

#[test]
fn cfssl_ecdsa_and_ed25519_trees_are_renewed() {
    for alg in [Alg::Ec, Alg::Ed25519] {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etcd");
        std::fs::create_dir_all(&etc).unwrap();
        let ca = ca(&etc, "ca.pem", "ca-key.pem", alg, 3650);
        let certs = vec![leaf(
            &etc,
            ("etcd.pem", "etcd-key.pem"),
            &ca,
            alg,
            "etcd",
            "serverAuth,clientAuth",
            3,
        )];
        renew_and_check(&ca.0, &certs, &etc);
    }
}

#[test]
fn a_ca_that_ends_sooner_caps_the_leaf_and_bad_cas_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = dir.path().join("etcd");
    std::fs::create_dir_all(&etcd).unwrap();
    let ca = ca(&etcd, "ca.crt", "ca.key", Alg::Ec, 100);
    let server = leaf(
        &etcd,
        ("server.crt", "server.key"),
        &ca,
        Alg::Ec,
        "cp1",
        "serverAuth,clientAuth",
        5,
    );
    let backup = dir.path().join("backup");
    let r = etcdops(
        &[
            "cert-renew",
            &s(&server),
            "--backup-dir",
            &s(&backup),
            "--days",
            "365",
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let row = &r.json()["rows"][0];
    assert_eq!(row["capped"], true, "{r:?}");
    assert_eq!(not_after(&server), not_after(&ca.0));
    assert!(r.stderr.contains("capped at the CA's expiry"), "{r:?}");

    // --dry-run writes nothing and says what would change.
    let before = std::fs::read(&server).unwrap();
    let dry = etcdops(
        &[
            "cert-renew",
            &s(&server),
            "--dry-run",
            "--backup-dir",
            &s(&dir.path().join("b2")),
        ],
        &[],
    );
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains("would renew") && dry.stdout.contains("127.0.0.1"),
        "{dry:?}"
    );
    assert_eq!(std::fs::read(&server).unwrap(), before);
    assert!(!dir.path().join("b2").exists());

    // A CA key that is not the CA's, a missing CA key, an expired CA: exit 2, nothing touched.
    let other = dir.path().join("other.key");
    key(&other, Alg::Ec);
    let r = etcdops(
        &[
            "cert-renew",
            &s(&server),
            "--ca",
            &s(&ca.0),
            "--ca-key",
            &s(&other),
        ],
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("does not belong"), "{r:?}");
    std::fs::rename(&ca.1, dir.path().join("moved.key")).unwrap();
    let r = etcdops(&["cert-renew", &s(&server)], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("no key beside it") || r.stderr.contains("--ca-key"),
        "{r:?}"
    );
    std::fs::rename(dir.path().join("moved.key"), &ca.1).unwrap();
    let far = "2099-01-01T00:00:00Z";
    let r = etcdops(&["cert-renew", &s(&server)], &[("ETCDOPS_NOW", far)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("expired") && r.stderr.contains("out of scope"),
        "{r:?}"
    );
    assert_eq!(std::fs::read(&server).unwrap(), before);
    let r = etcdops(&["cert-renew", &s(&ca.0)], &[]);
    assert_eq!(r.code, 2, "renewing a CA is refused: {r:?}");
}

#[test]
fn a_running_etcd_serves_the_renewed_certificate_without_a_restart() {
    let c = Cluster::start(ClusterOptions::new(Version::V3_5_1, 1));
    let pki = &c.pki;
    let old_serial = openssl(&["x509", "-in", &s(&pki.server.cert), "-noout", "-serial"]);
    // Zero paths on a kubeadm node: the manifest's certificates, the healthcheck client beside
    // them and the apiserver's etcd client; the endpoint and TLS files from the manifest too.
    let manifest = c.dir.path().join("etcd.yaml");
    crate::common::cluster::write_kubeadm_manifest(&c, 0, &manifest);
    let backup = c.dir.path().join("backup");
    let r = etcdops(
        &[
            "cert-renew",
            "--manifest",
            &s(&manifest),
            "--backup-dir",
            &s(&backup),
            "-w",
            "json",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let files: Vec<String> = r.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["file"].as_str().unwrap().to_string())
        .collect();
    for f in [
        &pki.server.cert,
        &pki.peer.cert,
        &pki.healthcheck.cert,
        &pki.apiserver_client.cert,
    ] {
        assert!(
            files.contains(&s(f)),
            "{} not renewed: {files:?}",
            f.display()
        );
    }
    assert!(r.stderr.contains("restart kube-apiserver"), "{r:?}");
    let served = r.json()["served"].as_array().unwrap().clone();
    assert!(
        served
            .iter()
            .any(|l| l.as_str().unwrap().contains("serves the renewed")),
        "{r:?}"
    );
    assert!(
        served
            .iter()
            .any(|l| l.as_str().unwrap().contains("is healthy")),
        "{r:?}"
    );
    let new_serial = openssl(&["x509", "-in", &s(&pki.server.cert), "-noout", "-serial"]);
    assert_ne!(old_serial, new_serial);
    // A fresh handshake from an independent client sees the new serial.
    let url = c.members[0]
        .client_url
        .trim_start_matches("https://")
        .to_string();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("openssl s_client -connect {url} -CAfile '{}' -cert '{}' -key '{}' </dev/null 2>/dev/null | openssl x509 -noout -serial", s(&pki.ca.cert), s(&pki.healthcheck.cert), s(&pki.healthcheck.key)))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), new_serial);
    let mut h = vec![
        "health".to_string(),
        "--endpoints".into(),
        c.members[0].client_url.clone(),
    ];
    h.extend(c.tls_args());
    let hv: Vec<&str> = h.iter().map(String::as_str).collect();
    assert_eq!(etcdops(&hv, &[]).code, 0);
}

fn pubkey_of_cert(cert: &Path) -> String {
    openssl(&["x509", "-in", &s(cert), "-noout", "-pubkey"])
}

fn pubkey_of_key(key: &Path) -> String {
    openssl(&["pkey", "-in", &s(key), "-pubout"])
}

fn key_kind(key: &Path) -> String {
    openssl(&["pkey", "-in", &s(key), "-noout", "-text"])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn new_keys_keep_their_kind_and_a_killed_renewal_leaves_whole_matching_files() {
    for alg in [Alg::Rsa, Alg::Ec, Alg::Ed25519] {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca(dir.path(), "ca.crt", "ca.key", alg, 3650);
        let cert = leaf(
            dir.path(),
            ("server.crt", "server.key"),
            &ca,
            alg,
            "cp1",
            "serverAuth",
            5,
        );
        let key = dir.path().join("server.key");
        let (old_key, kind) = (std::fs::read(&key).unwrap(), key_kind(&key));
        let r = etcdops(
            &[
                "cert-renew",
                &s(&cert),
                "--new-key",
                "--backup-dir",
                &s(&dir.path().join("b")),
            ],
            &[],
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert_ne!(std::fs::read(&key).unwrap(), old_key);
        assert_eq!(key_kind(&key), kind, "same algorithm and size");
        assert_eq!(
            pubkey_of_cert(&cert),
            pubkey_of_key(&key),
            "the new key matches"
        );
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile", &s(&ca.0), &s(&cert)])
            .output()
            .unwrap();
        assert!(verify.status.success());
    }

    // SIGKILL at random points of a renewal of four certificates: every file is whole (the old
    // certificate or the new one), verifies, and matches its key.
    let dir = tempfile::tempdir().unwrap();
    let (ca, certs) = four_leaves(dir.path());
    let mut x = 12345u64;
    for round in 0..20 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        let delay = std::time::Duration::from_micros((x >> 33) % 15_000);
        let mut child = Command::new(env!("CARGO_BIN_EXE_etcdops"))
            .env_clear()
            .arg("cert-renew")
            .args(certs.iter().map(|c| s(c)))
            .args(["--backup-dir", &s(&dir.path().join(format!("b{round}")))])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        for c in &certs {
            let verify = Command::new("openssl")
                .args(["verify", "-CAfile", &s(&ca.0), &s(c)])
                .output()
                .unwrap();
            assert!(
                verify.status.success(),
                "round {round}, {}: {}",
                c.display(),
                String::from_utf8_lossy(&verify.stdout)
            );
            let key = c.with_extension("key");
            assert_eq!(
                pubkey_of_cert(c),
                pubkey_of_key(&key),
                "round {round}, {}",
                c.display()
            );
        }
    }
    // The next run finishes the job and sweeps the temporaries the killed ones left.
    let r = etcdops(
        &[
            "cert-renew",
            &s(&certs[0]),
            &s(&certs[1]),
            &s(&certs[2]),
            &s(&certs[3]),
            "--backup-dir",
            &s(&dir.path().join("final")),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
}

/// The crash-safety matrix's other rows for cert-renew (docs/reliability.md): a full disk, a
/// read-only tree and `ulimit -f` fail with one line and change nothing (every new file is
/// written before the first rename; a backup that cannot be completed is removed); two renewals
/// at once leave every certificate whole and matching its key.
#[test]
fn full_disk_read_only_ulimit_and_two_renewals_at_once() {
    use crate::common::run::{etcdops_spawn_env, in_private_mounts, read_only_mount, wait_run};
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("pki");
    std::fs::create_dir(&tree).unwrap();
    let (ca, _) = four_leaves(&tree);
    let names: Vec<String> = (0..4).map(|i| format!("c{i}.crt")).collect();
    let t = s(&tree);
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let m = s(&mnt);
    let certs = |root: &str| {
        names
            .iter()
            .map(|n| format!("{root}/{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Each case runs in its own mount namespace and reports what changed in the tree there.
    let compare = format!(
        "echo ---; for f in $(ls -A {t}); do cmp -s {t}/$f {m}/$f || echo changed $f; done; ls -A {m} | grep etcdops"
    );
    for (what, setup, bin) in [
        (
            "full disk",
            format!("mount -t tmpfs -o size=64k tmpfs {m} && cp -a {t}/. {m}/ && (dd if=/dev/zero of={m}/fill bs=4k 2>/dev/null; true)"),
            "etcdops".to_string(),
        ),
        (
            "read-only",
            format!("cp -a {t}/. {m}/ && {}", read_only_mount(&m)),
            "etcdops".to_string(),
        ),
        (
            "ulimit -f",
            format!("cp -a {t}/. {m}/ && ulimit -f 1"),
            "etcdops".to_string(),
        ),
    ] {
        let backups = dir.path().join(format!("b-{}", what.replace(' ', "-")));
        let r = in_private_mounts(
            &format!(
                "{setup} || exit 99; {bin} cert-renew {} --backup-dir {}; rc=$?; {compare}; rm -f {m}/fill; exit $rc",
                certs(&m),
                s(&backups)
            ),
            &[],
        );
        assert_eq!(r.code, 2, "{what}: {r:?}");
        assert_eq!(
            r.error_lines(),
            1,
            "{what}: {}",
            r.stderr
        );
        let after = r.stdout.split_once("---\n").map(|x| x.1).unwrap_or("");
        assert!(after.trim().is_empty(), "{what}: {after}");
        assert!(!backups.exists(), "{what}: a partial backup was left");
        // The copies in the plain directory for the next case.
        for e in std::fs::read_dir(&mnt).unwrap().flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }

    // A backup directory that exists already is never written into: exit 2 with the hint,
    // nothing changed; the hinted new directory works.
    let earlier = dir.path().join("earlier");
    std::fs::create_dir(&earlier).unwrap();
    std::fs::write(earlier.join("kept"), b"an earlier backup").unwrap();
    let before: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(tree.join(n)).unwrap())
        .collect();
    let renew_into = |b: &Path| {
        let mut a = vec!["cert-renew".to_string()];
        a.extend(names.iter().map(|n| s(&tree.join(n))));
        a.extend(["--backup-dir".into(), s(b)]);
        etcdops(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    };
    let r = renew_into(&earlier);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("hint: give a new --backup-dir"),
        "{}",
        r.stderr
    );
    let after: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(tree.join(n)).unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(std::fs::read_dir(&earlier).unwrap().count(), 1);
    assert_eq!(renew_into(&dir.path().join("new")).code, 0);

    // Two renewals with new keys at once, several times: one runs, the other finishes first or
    // is refused (the directory is locked); every certificate is whole and pairs with its key.
    for round in 0..5 {
        let run = |b: &str| {
            let mut a = vec!["cert-renew".to_string(), "--new-key".into()];
            a.extend(names.iter().map(|n| s(&tree.join(n))));
            a.extend([
                "--backup-dir".into(),
                s(&dir.path().join(format!("{b}{round}"))),
            ]);
            etcdops_spawn_env(&a, &[])
        };
        let (x, y) = (run("x"), run("y"));
        let now = std::time::Instant::now();
        let limit = std::time::Duration::from_secs(60);
        let (x, y) = (wait_run(x, now, limit), wait_run(y, now, limit));
        assert!(x.code == 0 || y.code == 0, "{x:?} {y:?}");
        for r in [&x, &y] {
            assert!(
                r.code == 0 || r.stderr.contains("locked by another cert-renew"),
                "{r:?}"
            );
        }
        for n in &names {
            let c = tree.join(n);
            assert_eq!(
                pubkey_of_cert(&c),
                pubkey_of_key(&c.with_extension("key")),
                "round {round}, {n}"
            );
        }
    }
    for n in &names {
        let c = tree.join(n);
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile", &s(&ca.0), &s(&c)])
            .output()
            .unwrap();
        assert!(verify.status.success(), "{n}");
        assert_eq!(
            pubkey_of_cert(&c),
            pubkey_of_key(&c.with_extension("key")),
            "{n}"
        );
    }
}

/// A rename that fails after others succeeded: the last certificate is a mount point (rename
/// onto it gives EBUSY), so the keys and certificates renamed before it must come back from the
/// backup. Exit 2 with one line naming the file and the backup; every file as it was; no
/// temporary left.
#[test]
fn a_failed_rename_puts_every_replaced_file_back() {
    use crate::common::run::in_private_mounts;
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("pki");
    std::fs::create_dir(&tree).unwrap();
    four_leaves(&tree);
    let names: Vec<String> = (0..4).map(|i| format!("c{i}.crt")).collect();
    let (t, m) = (s(&tree), s(&dir.path().join("mnt")));
    std::fs::create_dir(dir.path().join("mnt")).unwrap();
    let backups = s(&dir.path().join("backup"));
    let certs: Vec<String> = names.iter().map(|n| format!("{m}/{n}")).collect();
    let r = in_private_mounts(
        &format!(
            "cp -a {t}/. {m}/ && mount --bind {m}/c3.crt {m}/c3.crt || exit 99; \
             etcdops cert-renew --new-key {} --backup-dir {backups}; rc=$?; \
             echo ---; for f in $(ls -A {t}); do cmp -s {t}/$f {m}/$f || echo changed $f; done; \
             ls -A {m} | grep etcdops; umount {m}/c3.crt; exit $rc",
            certs.join(" ")
        ),
        &[],
    );
    assert_ne!(r.code, 99, "the setup needs mount privileges (root): {r:?}");
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.error_lines(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("c3.crt")
            && r.stderr.contains("every file is as it was")
            && r.stderr.contains(&backups),
        "{}",
        r.stderr
    );
    // c0–c2 and their keys, and c3's key, were replaced and put back.
    let after = r.stdout.split_once("---\n").map(|x| x.1).unwrap_or("?");
    assert!(after.trim().is_empty(), "{after}");
    // The backup the message names holds the old files.
    assert!(
        std::fs::read_dir(&backups).unwrap().next().is_some(),
        "the backup is kept"
    );
}

/// SIGTERM at pseudo-random points of a renewal with new keys: a key and its certificate are
/// renamed inside one critical section, so every run ends with each pair matching (old or
/// new), no temporary beside them, and exit 0 or 2 with one line.
#[test]
fn a_terminated_renewal_never_splits_a_key_from_its_certificate() {
    use crate::common::run::{etcdops_spawn_env, signal_at_random_points};
    let dir = tempfile::tempdir().unwrap();
    let (_, certs) = four_leaves(dir.path());
    let args = |b: String| {
        let mut a = vec!["cert-renew".to_string(), "--new-key".into()];
        a.extend(certs.iter().map(|c| s(c)));
        a.extend(["--backup-dir".into(), b]);
        a
    };
    let span = (0..3)
        .map(|i| {
            let start = std::time::Instant::now();
            let a = args(s(&dir.path().join(format!("warm{i}"))));
            let r = etcdops(&a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
            assert_eq!(r.code, 0, "{r:?}");
            start.elapsed().as_micros() as u64
        })
        .min()
        .unwrap();
    // The certificates as each round found them.
    let before = std::cell::RefCell::new(Vec::new());
    let backup = |round: u64| dir.path().join(format!("b{round}"));
    let interrupted = signal_at_random_points(
        99,
        std::time::Duration::from_micros(span),
        20,
        "TERM",
        |round| {
            *before.borrow_mut() = certs.iter().map(|c| std::fs::read(c).unwrap()).collect();
            etcdops_spawn_env(&args(s(&backup(round))), &[])
        },
        |round, r| {
            match r.code {
                0 => {}
                2 => {
                    assert_eq!(r.error_lines(), 1, "round {round}: {r:?}");
                    assert!(r.stderr.contains("SIGTERM"), "round {round}: {r:?}");
                }
                // Signalled before its handler was installed, before it wrote anything.
                code => assert_eq!(code, -1, "round {round}: {r:?}"),
            }
            for c in &certs {
                assert_eq!(
                    pubkey_of_cert(c),
                    pubkey_of_key(&c.with_extension("key")),
                    "round {round}, {}",
                    c.display()
                );
            }
            let left = crate::common::temporaries(dir.path());
            assert!(left.is_empty(), "round {round}: {left:?} {r:?}");
            // A backup exists exactly when something was replaced.
            let after: Vec<Vec<u8>> = certs.iter().map(|c| std::fs::read(c).unwrap()).collect();
            assert_eq!(
                backup(round).exists(),
                after != *before.borrow(),
                "round {round}: {r:?}"
            );
        },
    );
    assert!(
        interrupted >= 5,
        "only {interrupted} of 20 runs interrupted"
    );
}
