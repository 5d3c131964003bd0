//! `cert-expiry` on certificates generated at test time with chosen validity (a fixed "now"
//! through ETCDOPS_NOW), with `openssl x509 -enddate` as the oracle for every date, and against a
//! live etcd that serves a certificate different from the file on disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::cluster::{shared, Cluster, Version};
use crate::common::run::{etcdops, Run};
use crate::common::INSTALL_HINT;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ED25519,
};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

const NOW: &str = "2030-01-01T00:00:00Z";

fn now() -> OffsetDateTime {
    OffsetDateTime::parse(NOW, &time::format_description::well_known::Rfc3339).unwrap()
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str, days: i64) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now() - Duration::days(1);
    p.not_after = now() + Duration::days(days);
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

/// An RSA key from openssl (ring cannot generate RSA keys).
fn rsa_key(dir: &Path) -> KeyPair {
    let path = dir.join("rsa-gen.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&path)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "openssl genpkey failed: {INSTALL_HINT}");
    let pem = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    KeyPair::from_pem(&pem).unwrap()
}

fn leaf(ca: &Ca, cn: &str, key: &KeyPair, from_days: i64, to_days: i64) -> rcgen::Certificate {
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = now() + Duration::days(from_days);
    p.not_after = now() + Duration::days(to_days);
    p.signed_by(key, &ca.cert, &ca.key).unwrap()
}

fn write(dir: &Path, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn run(paths: &[&Path], extra: &[&str]) -> Run {
    let mut args = vec!["cert-expiry", "-w", "json"];
    args.extend(extra);
    let owned: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    args.extend(owned.iter().map(String::as_str));
    etcdops(&args, &[("ETCDOPS_NOW", NOW)])
}

fn findings(r: &Run) -> Vec<Value> {
    r.json().as_array().unwrap().clone()
}

/// The row of the certificate found at a path ending in `suffix` (a CA found in several places
/// is one row, which lists the others in `also_at`).
fn by_path<'a>(rows: &'a [Value], suffix: &str) -> &'a Value {
    let at = |v: &Value| v.as_str().is_some_and(|p| p.ends_with(suffix));
    rows.iter()
        .find(|r| at(&r["path"]) || r["also_at"].as_array().is_some_and(|a| a.iter().any(at)))
        .unwrap_or_else(|| panic!("no row for {suffix} in {rows:#?}"))
}

/// `notAfter` as openssl prints it, converted to RFC 3339.
fn openssl_not_after(path: &Path, der: bool) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-enddate", "-noout", "-in"]).arg(path);
    if der {
        cmd.args(["-inform", "DER"]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "openssl on {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let value = text.trim().trim_start_matches("notAfter=");
    let fmt = time::format_description::parse_borrowed::<2>(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT",
    )
    .unwrap();
    let t = time::PrimitiveDateTime::parse(value, &fmt)
        .unwrap()
        .assume_utc();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn every_kind_of_certificate_and_wiring_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("pki");
    std::fs::create_dir_all(d.join("etcd")).unwrap();
    let root = ca("kubernetes", 3650);
    write(&d, "ca.crt", root.cert.pem());
    write(&d, "ca.key", root.key.serialize_pem());

    let k_exp = KeyPair::generate().unwrap();
    let expired = leaf(&root, "expired", &k_exp, -400, -1);
    write(&d, "expired.crt", expired.pem());
    write(&d, "expired.key", k_exp.serialize_pem());

    let k_soon = KeyPair::generate().unwrap();
    write(&d, "soon.crt", leaf(&root, "soon", &k_soon, -355, 10).pem());
    write(&d, "soon.key", k_soon.serialize_pem());

    let k_rsa = rsa_key(tmp.path());
    write(
        &d,
        "rsa.crt",
        leaf(&root, "rsa-year", &k_rsa, -1, 365).pem(),
    );
    write(&d, "rsa.key", k_rsa.serialize_pem());

    let k_ed = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    write(&d, "ed.crt", leaf(&root, "ed-year", &k_ed, -1, 365).pem());

    let k_future = KeyPair::generate().unwrap();
    write(
        &d,
        "future.crt",
        leaf(&root, "future", &k_future, 5, 400).pem(),
    );

    // A bundle of two, and a DER file.
    let k_b = KeyPair::generate().unwrap();
    let b1 = leaf(&root, "bundle-one", &k_b, -1, 200);
    let b2 = leaf(&root, "bundle-two", &k_b, -1, 300);
    write(&d, "bundle.pem", format!("{}{}", b1.pem(), b2.pem()));
    let k_der = KeyPair::generate().unwrap();
    write(
        &d,
        "der.cer",
        leaf(&root, "der-cert", &k_der, -1, 180).der(),
    );

    // Wiring: a key that is not the certificate's; a leaf whose CA is not in the tree; a leaf
    // naming our CA but signed by another key of the same name; a leaf outliving its CA.
    let k_m = KeyPair::generate().unwrap();
    write(
        &d,
        "mismatch.crt",
        leaf(&root, "mismatch", &k_m, -1, 300).pem(),
    );
    write(
        &d,
        "mismatch.key",
        KeyPair::generate().unwrap().serialize_pem(),
    );
    let stranger = ca("someone-else", 3650);
    write(
        &d,
        "orphan.crt",
        leaf(&stranger, "orphan", &KeyPair::generate().unwrap(), -1, 300).pem(),
    );
    let impostor = ca("kubernetes", 3650);
    write(
        &d,
        "forged.crt",
        leaf(&impostor, "forged", &KeyPair::generate().unwrap(), -1, 300).pem(),
    );
    let short_ca = ca("short-ca", 100);
    write(&d, "etcd/ca.crt", short_ca.cert.pem());
    write(
        &d,
        "etcd/long.crt",
        leaf(
            &short_ca,
            "long-lived",
            &KeyPair::generate().unwrap(),
            -1,
            300,
        )
        .pem(),
    );

    // Key-only files, a serial file and junk not named like a certificate: left out silently;
    // junk named like one: one error row.
    write(&d, "sa.key", KeyPair::generate().unwrap().serialize_pem());
    write(&d, "sa.pub", KeyPair::generate().unwrap().public_key_pem());
    write(&d, "README", "not a certificate\n");
    write(&d, "ca.srl", "4A3F0C2B9E8D7F61\n");
    write(&d, "broken.crt", "not a certificate\n");
    write(
        &d,
        "random.bin",
        (0..300u32)
            .map(|i| (i * 7 % 256) as u8)
            .collect::<Vec<u8>>(),
    );

    // Kubeconfigs: embedded data, and file references relative to the kubeconfig.
    let k_admin = KeyPair::generate().unwrap();
    let admin = leaf(&root, "kubernetes-admin", &k_admin, -1, 365);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let conf = tmp.path().join("admin.conf");
    std::fs::write(
        &conf,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: https://10.0.0.1:6443\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&root.cert.pem()),
            b64(&admin.pem()),
            b64(&k_admin.serialize_pem())
        ),
    )
    .unwrap();
    let k_sched = KeyPair::generate().unwrap();
    write(
        tmp.path(),
        "sched.crt",
        leaf(&root, "system:kube-scheduler", &k_sched, -1, 20).pem(),
    );
    write(tmp.path(), "sched.key", k_sched.serialize_pem());
    let sched_conf = tmp.path().join("scheduler.conf");
    std::fs::write(
        &sched_conf,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    certificate-authority: pki/ca.crt\nusers:\n- name: s\n  user:\n    client-certificate: sched.crt\n    client-key: sched.key\n",
    )
    .unwrap();

    let r = run(&[&d, &conf, &sched_conf], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    let rows = findings(&r);
    let status = |suffix: &str| {
        by_path(&rows, suffix)["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let problems = |suffix: &str| by_path(&rows, suffix)["problems"].to_string();
    assert_eq!(status("pki/ca.crt"), "ok");
    assert_eq!(by_path(&rows, "pki/ca.crt")["is_ca"], true);
    assert_eq!(status("expired.crt"), "expired");
    assert_eq!(by_path(&rows, "expired.crt")["days_left"], -1);
    assert_eq!(status("soon.crt"), "warning");
    assert_eq!(by_path(&rows, "soon.crt")["days_left"], 10);
    assert_eq!(by_path(&rows, "soon.crt")["residual"], "10d");
    assert_eq!(status("rsa.crt"), "ok");
    assert_eq!(by_path(&rows, "rsa.crt")["key"], "RSA 2048");
    assert_eq!(by_path(&rows, "soon.crt")["key"], "ECDSA P-256");
    assert_eq!(by_path(&rows, "/ed.crt")["key"], "Ed25519");
    assert_eq!(status("future.crt"), "not-yet-valid");
    assert_eq!(by_path(&rows, "bundle.pem[0]")["subject"], "bundle-one");
    assert_eq!(by_path(&rows, "bundle.pem[1]")["subject"], "bundle-two");
    assert_eq!(by_path(&rows, "der.cer")["subject"], "der-cert");
    assert_eq!(by_path(&rows, "rsa.crt")["sans"][0], "localhost");
    assert!(
        problems("mismatch.crt").contains("does not match"),
        "{}",
        problems("mismatch.crt")
    );
    // In date but miswired: the JSON status says what the table's column says, never "ok".
    assert_eq!(status("mismatch.crt"), "key-mismatch");
    let mismatch = d.join("mismatch.crt");
    let table = etcdops(
        &["cert-expiry", mismatch.to_str().unwrap()],
        &[("ETCDOPS_NOW", NOW)],
    );
    let line = table
        .stdout
        .lines()
        .find(|l| l.contains("mismatch"))
        .unwrap();
    assert!(line.contains("key mismatch"), "{}", table.stdout);
    // Every stderr line is a whole line.
    assert!(
        r.stderr.ends_with('\n') && table.stderr.ends_with('\n'),
        "{r:?}"
    );
    assert_eq!(problems("rsa.crt"), "[]");
    assert_eq!(problems("soon.crt"), "[]");
    assert!(problems("orphan.crt").contains("issuer not found"));
    assert!(problems("forged.crt").contains("signature does not verify"));
    assert!(problems("long.crt").contains("outlives its CA"));
    assert_eq!(status("admin.conf#ca"), "ok");
    assert_eq!(
        by_path(&rows, "admin.conf#client")["subject"],
        "kubernetes-admin"
    );
    assert_eq!(problems("admin.conf#client"), "[]");
    assert_eq!(status("scheduler.conf#client"), "warning");
    assert_eq!(problems("scheduler.conf#client"), "[]");
    // Junk named like a certificate: one error row; keys, public keys, ca.srl, README and
    // random bytes not named like a certificate: nothing.
    let errors: Vec<&Value> = rows.iter().filter(|r| r.get("error").is_some()).collect();
    let error_paths: Vec<&str> = errors.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(errors.len(), 1, "{error_paths:?}");
    assert!(error_paths[0].ends_with("broken.crt"), "{error_paths:?}");
    let sa: Vec<&Value> = rows
        .iter()
        .filter(|r| r["path"].as_str().unwrap().contains("/sa."))
        .collect();
    assert!(sa.is_empty(), "{sa:?}");
    // CAs first, then leaves, each soonest first.
    let certs: Vec<&Value> = rows.iter().filter(|r| r.get("error").is_none()).collect();
    let first_leaf = certs.iter().position(|r| r["is_ca"] == false).unwrap();
    assert!(certs[first_leaf..].iter().all(|r| r["is_ca"] == false));
    let leaf_dates: Vec<&str> = certs[first_leaf..]
        .iter()
        .map(|r| r["not_after"].as_str().unwrap())
        .collect();
    let mut sorted = leaf_dates.clone();
    sorted.sort();
    assert_eq!(leaf_dates, sorted);

    // Every not-after agrees with openssl.
    for (file, der) in [
        ("pki/ca.crt", false),
        ("expired.crt", false),
        ("soon.crt", false),
        ("rsa.crt", false),
        ("/ed.crt", false),
        ("future.crt", false),
        ("der.cer", true),
        ("mismatch.crt", false),
        ("etcd/long.crt", false),
    ] {
        let ours = by_path(&rows, file)["not_after"]
            .as_str()
            .unwrap()
            .to_string();
        let path = d.join(file.trim_start_matches('/').trim_start_matches("pki/"));
        assert_eq!(ours, openssl_not_after(&path, der), "{file}");
    }

    // Exit code per case.
    let code = |p: &Path, extra: &[&str]| run(&[p], extra).code;
    assert_eq!(code(&d.join("rsa.crt"), &[]), 0);
    assert_eq!(code(&d.join("expired.crt"), &[]), 1);
    assert_eq!(code(&d.join("soon.crt"), &[]), 1);
    assert_eq!(code(&d.join("soon.crt"), &["--warn-days", "5"]), 0);
    assert_eq!(code(&d.join("future.crt"), &[]), 1);
    assert_eq!(code(&d.join("mismatch.crt"), &[]), 1);
    assert_eq!(code(&d.join("README"), &[]), 2);
    let missing = run(&[&d.join("nope.crt")], &[]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("nope.crt"), "{}", missing.stderr);

    // Table and simple render every row.
    let t = etcdops(
        &["cert-expiry", &d.display().to_string()],
        &[("ETCDOPS_NOW", NOW)],
    );
    assert_eq!(t.code, 1);
    assert!(
        t.stdout.contains("RESIDUAL TIME") && t.stdout.contains("not yet valid"),
        "{}",
        t.stdout
    );
    let s = etcdops(
        &["cert-expiry", "-w", "simple", &d.display().to_string()],
        &[("ETCDOPS_NOW", NOW)],
    );
    assert!(
        s.stdout
            .lines()
            .any(|l| l.starts_with("expired, ") && l.ends_with(", expired")),
        "{}",
        s.stdout
    );
}

/// `cert-expiry` with `--endpoints`: the certificate a live etcd serves compared with the
/// file on disk, on the shared one-member cluster (read only; copies go to the test's own dir).
mod live_endpoint {
    use super::*;

    /// `cert-expiry -w json --endpoints EP <TLS flags> DIR` against the shared cluster.
    fn run_on(c: &Cluster, dir: &Path) -> Run {
        let mut a: Vec<String> = vec![
            "cert-expiry".into(),
            "-w".into(),
            "json".into(),
            "--endpoints".into(),
            c.endpoints_arg(),
        ];
        a.extend(c.tls_args());
        a.push(dir.display().to_string());
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        etcdops(&refs, &[])
    }

    /// The tree etcd runs from: the served certificate is the file on disk.
    #[test]
    fn served_certificate_is_the_file_on_disk() {
        let c = shared(Version::V3_5_1, 1);
        let r = run_on(&c, &c.pki.dir);
        assert_eq!(r.code, 0, "{r:?}");
        let rows = findings(&r);
        let served = by_path(&rows, "(served)");
        assert_eq!(served["subject"], "etcd-server");
        assert_eq!(served["problems"].to_string(), "[]", "{served}");
    }

    /// A tree whose server.crt was renewed, while etcd still serves the old one (etcd re-reads
    /// its own files on every handshake, so the stale one must come from another place).
    #[test]
    fn renewed_file_differs_from_the_served_certificate() {
        let c = shared(Version::V3_5_1, 1);
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join("renewed-pki");
        std::fs::create_dir_all(copy.join("etcd")).unwrap();
        for f in ["etcd/ca.crt", "etcd/ca.key"] {
            std::fs::copy(c.pki.dir.join(f), copy.join(f)).unwrap();
        }
        c.pki
            .issue(&copy.join("etcd"), "server", "etcd-server", true, true);
        let r = run_on(&c, &copy);
        assert_eq!(r.code, 1, "{r:?}");
        let rows = findings(&r);
        let served = by_path(&rows, "(served)");
        assert!(
            served["problems"]
                .to_string()
                .contains("serves a different certificate"),
            "{served}"
        );
        assert!(
            served["problems"]
                .to_string()
                .contains("renewed-pki/etcd/server.crt"),
            "{served}"
        );
    }
}

/// Whole transcripts of `cert-expiry` (at the fixed NOW): a healthy tree, a tree with an
/// expired and an expiring certificate, a missing file.
mod transcripts {
    use super::*;
    use crate::common::run::{assert_transcript, Transcript};

    /// A CA for ten years and a leaf for a year, in `<dir>/pki`.
    fn healthy(dir: &Path) -> PathBuf {
        let d = dir.join("pki");
        std::fs::create_dir_all(&d).unwrap();
        let root = ca("kubernetes", 3650);
        write(&d, "ca.crt", root.cert.pem());
        let key = KeyPair::generate().unwrap();
        write(&d, "server.crt", leaf(&root, "server", &key, -1, 365).pem());
        write(&d, "server.key", key.serialize_pem());
        d
    }

    fn expiry(paths: &[&Path], dir: &Path) -> Transcript {
        let owned: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let mut argv = vec!["cert-expiry"];
        argv.extend(owned.iter().map(String::as_str));
        Transcript::run(&argv, &[("ETCDOPS_NOW", NOW)]).redact(dir, "[DIR]")
    }

    #[test]
    fn ok() {
        let tmp = tempfile::tempdir().unwrap();
        let d = healthy(tmp.path());
        assert_transcript!("ok", expiry(&[&d], tmp.path()));
    }

    #[test]
    fn expired_and_expiring() {
        let tmp = tempfile::tempdir().unwrap();
        let d = healthy(tmp.path());
        let root = ca("etcd-ca", 3650);
        write(&d, "etcd-ca.crt", root.cert.pem());
        let key = KeyPair::generate().unwrap();
        write(
            &d,
            "expired.crt",
            leaf(&root, "expired", &key, -400, -1).pem(),
        );
        write(&d, "soon.crt", leaf(&root, "soon", &key, -355, 10).pem());
        assert_transcript!("expired_and_expiring", expiry(&[&d], tmp.path()));
    }

    #[test]
    fn missing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let t = expiry(&[&tmp.path().join("nope.crt")], tmp.path());
        assert_transcript!("missing_file", t);
    }
}
