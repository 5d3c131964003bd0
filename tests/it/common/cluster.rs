//! Real etcd clusters for the tests: members with client and peer TLS (kubeadm style) on free
//! loopback ports, kubeadm's way of growing a cluster, static-pod manifests, and a client for
//! writing test data.
//!
//! Every etcd process belongs to a [`Cluster`], which kills exactly its own children (by the
//! PIDs it spawned) when dropped, also when a test panics. A [`shared`] cluster is dropped
//! after the last test of the run that uses it; should the process end first (killed, say), a
//! reaper process kills its members by PID and removes its temp dir.

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::oracle::etcdctl;
use super::pki::Pki;
use super::{repo, INSTALL_HINT};

/// An etcd release the tests can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3_5_1,
    /// Debian sid's, unpacked into `.cache/etcd-3.5.30`: stores member names and promotions
    /// (3.5.20+), removes zombie members (3.5.26+), and its etcdutl bumps revisions.
    V3_5_30,
    V3_4_23,
}

impl Version {
    /// The 3.5 releases every suite that boots etcd runs on.
    pub const BOTH_3_5: [Version; 2] = [Version::V3_5_1, Version::V3_5_30];

    pub fn etcd(self) -> PathBuf {
        self.binary("etcd")
    }

    /// The etcdutl to compare with: this release's (3.4.23 has none: 3.5.1's restores its
    /// snapshots as etcdctl 3.4 does).
    pub fn etcdutl(self) -> PathBuf {
        match self {
            Version::V3_4_23 => Version::V3_5_1.binary("etcdutl"),
            other => other.binary("etcdutl"),
        }
    }

    /// `etcd`, `etcdctl` or `etcdutl` of this release (3.4.23 has no etcdutl).
    pub fn binary(self, name: &str) -> PathBuf {
        let path = match self {
            Version::V3_5_1 => repo().join(".cache/etcd-3.5.1").join(name),
            Version::V3_5_30 => repo().join(".cache/etcd-3.5.30").join(name),
            Version::V3_4_23 => PathBuf::from("/usr/bin").join(name),
        };
        assert!(
            path.is_file(),
            "etcd {self:?} not found at {}: {INSTALL_HINT}",
            path.display()
        );
        path
    }

    pub fn expected_version(self) -> &'static str {
        match self {
            Version::V3_5_1 => "3.5.1",
            Version::V3_5_30 => "3.5.30",
            Version::V3_4_23 => "3.4.23",
        }
    }

    /// What `etcd --version` of this binary says, as (minor, patch): expectations that depend
    /// on the release are keyed on it, not on the enum.
    pub fn reported(self) -> (u32, u32) {
        let out = Command::new(self.etcd()).arg("--version").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let v = text
            .lines()
            .find_map(|l| l.strip_prefix("etcd Version: "))
            .unwrap_or_else(|| panic!("etcd --version: {text}"));
        let mut parts = v
            .trim()
            .split('.')
            .skip(1)
            .map(|p| p.parse::<u32>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    }

    /// etcd 3.5.20+ stores member names and promotions in the `members` bucket.
    pub fn stores_promotions(self) -> bool {
        self.reported() >= (5, 20)
    }
}

/// Three members n1, n2, n3 to restore a cluster into, each with a free peer URL on loopback.
pub struct ThreeMembers {
    pub peers: Vec<String>,
    /// `--initial-cluster` naming the three.
    pub initial: String,
}

impl ThreeMembers {
    pub fn new() -> ThreeMembers {
        let peers: Vec<String> = (0..3)
            .map(|_| format!("https://127.0.0.1:{}", free_port()))
            .collect();
        let initial = (0..3)
            .map(|i| format!("n{}={}", i + 1, peers[i]))
            .collect::<Vec<_>>()
            .join(",");
        ThreeMembers { peers, initial }
    }

    /// Each member's `(name, DIR/NAME.etcd, peer URL)`, as [`Cluster::boot`] takes them.
    pub fn in_dir(&self, dir: &Path) -> Vec<(String, PathBuf, String)> {
        (0..3)
            .map(|i| {
                let name = format!("n{}", i + 1);
                let data = dir.join(format!("{name}.etcd"));
                (name, data, self.peers[i].clone())
            })
            .collect()
    }
}

/// A free TCP port on 127.0.0.1. Ports handed out in this process are never handed out twice.
pub fn free_port() -> u16 {
    static USED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("binding a loopback port");
        let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
}

/// One etcd member of a [`Cluster`].
pub struct Member {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// Options for [`Cluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub version: Version,
    pub members: usize,
    pub extra_args: Vec<String>,
}

impl ClusterOptions {
    pub fn new(version: Version, members: usize) -> ClusterOptions {
        ClusterOptions {
            version,
            members,
            extra_args: Vec::new(),
        }
    }
}

/// A running etcd cluster with client and peer TLS (kubeadm style), its PKI and temp dir.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub members: Vec<Member>,
    pub version: Version,
}

impl Cluster {
    pub fn start(opts: ClusterOptions) -> Cluster {
        let mut cluster = Cluster::starting(opts);
        cluster.wait_healthy(Duration::from_secs(60));
        cluster
    }

    /// As [`Cluster::start`], without waiting until the members are healthy.
    fn starting(opts: ClusterOptions) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (0..opts.members)
            .map(|i| {
                let name = format!("m{}", i + 1);
                Member {
                    client_url: format!("https://127.0.0.1:{}", free_port()),
                    peer_url: format!("https://127.0.0.1:{}", free_port()),
                    data_dir: dir.path().join(format!("{name}.etcd")),
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    child: None,
                }
            })
            .collect();
        Cluster::launch(opts, dir, members)
    }

    /// Start etcd on data dirs made by a restore: `(name, data_dir, peer_url)` per member, with
    /// the peer URLs the restore was given.
    pub fn boot(version: Version, restored: &[(String, PathBuf, String)]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let members = restored
            .iter()
            .map(|(name, data_dir, peer_url)| Member {
                client_url: format!("https://127.0.0.1:{}", free_port()),
                peer_url: peer_url.clone(),
                data_dir: data_dir.clone(),
                log: dir.path().join(format!("{name}.log")),
                name: name.clone(),
                child: None,
            })
            .collect();
        let mut cluster =
            Cluster::launch(ClusterOptions::new(version, restored.len()), dir, members);
        cluster.wait_healthy(Duration::from_secs(60));
        cluster
    }

    /// Spawn every member; the caller waits until they are healthy.
    fn launch(opts: ClusterOptions, dir: tempfile::TempDir, members: Vec<Member>) -> Cluster {
        let etcd = opts.version.etcd();
        let pki = Pki::generate(&dir.path().join("pki"));
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            dir,
            pki,
            members: Vec::new(),
            version: opts.version,
        };
        cluster.members = members;
        for i in 0..cluster.members.len() {
            let args = cluster.member_args(&cluster.members[i], &initial_cluster, &opts.extra_args);
            cluster.spawn(i, &etcd, &args);
        }
        cluster
    }

    /// etcd's command line for one member, as kubeadm writes it.
    pub fn member_args(&self, m: &Member, initial_cluster: &str, extra: &[String]) -> Vec<String> {
        let p = &self.pki;
        let mut args = vec![
            format!("--name={}", m.name),
            format!("--data-dir={}", m.data_dir.display()),
            format!("--listen-client-urls={}", m.client_url),
            format!("--advertise-client-urls={}", m.client_url),
            format!("--listen-peer-urls={}", m.peer_url),
            format!("--initial-advertise-peer-urls={}", m.peer_url),
            format!("--initial-cluster={initial_cluster}"),
            "--initial-cluster-state=new".to_string(),
            "--initial-cluster-token=etcdops-test".to_string(),
            format!("--cert-file={}", p.server.cert.display()),
            format!("--key-file={}", p.server.key.display()),
            format!("--trusted-ca-file={}", p.ca.cert.display()),
            "--client-cert-auth=true".to_string(),
            format!("--peer-cert-file={}", p.peer.cert.display()),
            format!("--peer-key-file={}", p.peer.key.display()),
            format!("--peer-trusted-ca-file={}", p.ca.cert.display()),
            "--peer-client-cert-auth=true".to_string(),
            "--snapshot-count=10000".to_string(),
            "--logger=zap".to_string(),
        ];
        args.extend(extra.iter().cloned());
        args
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    pub fn endpoints_arg(&self) -> String {
        self.endpoints().join(",")
    }

    /// `--endpoints --cacert --cert --key` for the healthcheck-client pair.
    pub fn tls_args(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", self.pki.ca.cert.display()),
            format!("--cert={}", self.pki.healthcheck.cert.display()),
            format!("--key={}", self.pki.healthcheck.key.display()),
        ]
    }

    /// Run etcdctl 3.5.1 against the given endpoints with client TLS.
    pub fn etcdctl(&self, endpoints: &str, args: &[&str]) -> Output {
        Command::new(etcdctl())
            .env_clear()
            .arg(format!("--endpoints={endpoints}"))
            .args(self.tls_args())
            .args(args)
            .output()
            .expect("running etcdctl")
    }

    fn wait_healthy(&mut self, limit: Duration) {
        let start = Instant::now();
        for i in 0..self.members.len() {
            loop {
                if let Some(child) = self.members[i].child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "etcd member {} exited early ({status}):\n{}",
                            self.members[i].name,
                            self.log_tail(i)
                        );
                    }
                }
                let url = self.members[i].client_url.clone();
                let out = self.etcdctl(&url, &["endpoint", "health", "--command-timeout=2s"]);
                if out.status.success() {
                    break;
                }
                if start.elapsed() > limit {
                    panic!(
                        "etcd member {} not healthy after {limit:?}:\n{}",
                        self.members[i].name,
                        self.log_tail(i)
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    pub fn log_tail(&self, i: usize) -> String {
        let text = fs::read_to_string(&self.members[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Kill one member (SIGKILL) and wait for it to be gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The modules whose every test uses a shared cluster, per cluster. A shared cluster is stopped
/// (in this process: killed, waited for, its temp dir removed) as soon as the last of these
/// tests that this run includes has finished; a test that is not listed still works (the
/// cluster is started again if it was stopped), but [`shared`] fails it so the list stays
/// right.
const SINGLE_3_5_1_USERS: &[&str] = &[
    "hostile::",
    "crash::",
    "cert_expiry::live_endpoint::",
    "conventions::each_hint_is_given_where_it_fixes_the_error",
    "conventions::snapshot_saved_line_and_escaped_simple_output",
    "online::tls_and_credential_failures::",
    "online::transcripts::",
    "online::zero_flags::",
    "remote::bad_cases_exit_2_with_one_line_and_nothing_visible",
    "remote::retention_on_the_server_and_in_a_directory",
    "remote::ls_tells_two_clusters_with_the_same_node_name_apart",
    "remote::the_scheduled_service_runs_its_save_as_written",
    "remote::a_three_member_restore_from_s3_runs_the_printed_commands_and_forms_one_cluster",
    "snapshot_save::connection_failures::",
    "snapshot_save::transcripts::",
];
const THREE_3_5_1_USERS: &[&str] = &[
    "conventions::json_documents_match_etcdctl_3_5_1",
    "conventions::unreachable_rows_are_marked_for_scripts_to_skip",
    "online::three_members_v3_5_1::",
];
const THREE_3_4_23_USERS: &[&str] = &[
    "conventions::json_documents_match_etcdctl_3_4_23",
    "online::three_members_v3_4_23::",
];

/// A healthy cluster shared by the tests that only read from it: started by the first of them
/// that asks, stopped after the last of them this run includes. A test that writes data, kills
/// or stops a member, or writes into the cluster's temp dir starts its own cluster.
///
/// Shared clusters: one member of 3.5.1, three members of 3.5.1, three members of 3.4.23.
pub fn shared(version: Version, members: usize) -> Lease {
    static SINGLE_3_5_1: Slot = Slot::new(Version::V3_5_1, 1, SINGLE_3_5_1_USERS);
    static THREE_3_5_1: Slot = Slot::new(Version::V3_5_1, 3, THREE_3_5_1_USERS);
    static THREE_3_4_23: Slot = Slot::new(Version::V3_4_23, 3, THREE_3_4_23_USERS);
    let slot = match (version, members) {
        (Version::V3_5_1, 1) => &SINGLE_3_5_1,
        (Version::V3_5_1, 3) => &THREE_3_5_1,
        (Version::V3_4_23, 3) => &THREE_3_4_23,
        _ => panic!("no shared cluster of {members} {version:?} member(s)"),
    };
    let test = std::thread::current().name().unwrap_or("").to_string();
    assert!(
        slot.users.iter().any(|m| test.starts_with(m)),
        "{test} uses the shared {members}-member {version:?} cluster: list its module in \
         tests/it/common/cluster.rs"
    );
    slot.acquire()
}

/// A test's hold on a shared cluster; the cluster stays up while any lease is held.
pub struct Lease {
    slot: &'static Slot,
    cluster: Option<Arc<Cluster>>,
}

impl Deref for Lease {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        self.cluster.as_ref().expect("a live lease")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.cluster.take());
        self.slot.release();
    }
}

struct Slot {
    version: Version,
    members: usize,
    users: &'static [&'static str],
    state: Mutex<SlotState>,
}

struct SlotState {
    live: Option<Live>,
    leases: usize,
    finished: usize,
}

/// A running shared cluster and its reaper.
struct Live {
    cluster: Arc<Cluster>,
    _reaper: Reaper,
}

impl Slot {
    const fn new(version: Version, members: usize, users: &'static [&'static str]) -> Slot {
        Slot {
            version,
            members,
            users,
            state: Mutex::new(SlotState {
                live: None,
                leases: 0,
                finished: 0,
            }),
        }
    }

    fn acquire(&'static self) -> Lease {
        // Starting under the lock: the other tests that want this cluster wait for it. A
        // failed start poisons nothing that matters; the next test tries again.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let live = state.live.get_or_insert_with(|| {
            // The reaper is watching before the (slow) wait, so that a test process killed
            // while the cluster starts leaves nothing behind either.
            let mut cluster = Cluster::starting(ClusterOptions::new(self.version, self.members));
            let reaper = Reaper::watch(&cluster);
            cluster.wait_healthy(Duration::from_secs(60));
            Live {
                cluster: Arc::new(cluster),
                _reaper: reaper,
            }
        });
        let cluster = Arc::clone(&live.cluster);
        state.leases += 1;
        Lease {
            slot: self,
            cluster: Some(cluster),
        }
    }

    fn release(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.leases -= 1;
        state.finished += 1;
        // This test is one of them, so none found means the list could not be read.
        let users_in_run = planned_tests()
            .map(|tests| {
                tests
                    .iter()
                    .filter(|t| self.users.iter().any(|m| t.starts_with(m)))
                    .count()
            })
            .filter(|&n| n > 0);
        if state.leases > 0 || users_in_run.is_none_or(|n| state.finished < n) {
            return;
        }
        if let Some(live) = state.live.take() {
            // No lease is left, so this is the only reference: dropping it kills and waits
            // for the members and removes the temp dir. Then the reaper stands down.
            drop(Arc::into_inner(live.cluster).expect("no lease outlives the slot's count"));
        }
    }
}

/// The names of the tests this run of the test binary includes (libtest's `--list` with this
/// run's own arguments, so the same filters, `--exact` and `--skip`); `None` if that fails.
fn planned_tests() -> Option<&'static [String]> {
    static PLANNED: OnceLock<Option<Vec<String>>> = OnceLock::new();
    PLANNED
        .get_or_init(|| {
            let out = Command::new(std::env::current_exe().ok()?)
                .args(std::env::args_os().skip(1))
                .arg("--list")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()?;
            if !out.status.success() {
                return None;
            }
            let list = String::from_utf8(out.stdout).ok()?;
            Some(
                list.lines()
                    .filter_map(|l| l.strip_suffix(": test"))
                    .map(str::to_string)
                    .collect(),
            )
        })
        .as_deref()
}

/// The safety net for a test process that never gets to stop a shared cluster (killed, or a
/// run whose test list could not be read): `/bin/sh` waits on a pipe only this process holds
/// (Rust opens it close-on-exec, so etcd and other children do not inherit it). When this
/// process exits, however it exits, the kernel closes the pipe and the reaper SIGKILLs exactly
/// the member PIDs this process spawned, waits until they are gone, and removes the cluster's
/// temp dir. Dropped in this process (the cluster is stopped, or failed to start), it tells
/// the reaper `released`, and the reaper exits without touching anything.
struct Reaper(Child);

impl Reaper {
    fn watch(cluster: &Cluster) -> Reaper {
        const SCRIPT: &str = r#"if read -r msg && [ "$msg" = released ]; then exit 0; fi
dir=$1
shift
kill -KILL "$@" 2>/dev/null
for pid in "$@"; do
    n=0
    while [ "$n" -lt 250 ] && state=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) && [ "$state" != Z ]; do
        sleep 0.02
        n=$((n + 1))
    done
done
rm -rf "$dir"
"#;
        let pids: Vec<String> = (0..cluster.members.len())
            .filter_map(|i| cluster.pid(i))
            .map(|pid| pid.to_string())
            .collect();
        let child = Command::new("/bin/sh")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .arg("-c")
            .arg(SCRIPT)
            .arg("reaper")
            .arg(cluster.dir.path())
            .args(&pids)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the reaper of a shared cluster");
        Reaper(child)
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.0.stdin.take() {
            let _ = stdin.write_all(b"released\n");
        }
        let _ = self.0.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A kubeadm-shaped static-pod manifest for member `i` of `cluster`, written to `path`.
pub fn write_kubeadm_manifest(cluster: &Cluster, i: usize, path: &Path) {
    let m = &cluster.members[i];
    let own = format!("{}={}", m.name, m.peer_url);
    write_kubeadm_manifest_with(cluster, i, path, &own, false);
}

/// As [`write_kubeadm_manifest`], with kubeadm's `--initial-cluster` for a node that joined
/// (`existing`: the list grows with every node that joins, and the state is `existing`).
pub fn write_kubeadm_manifest_with(
    cluster: &Cluster,
    i: usize,
    path: &Path,
    initial_cluster: &str,
    existing: bool,
) {
    let m = &cluster.members[i];
    let state = if existing {
        "\n    - --initial-cluster-state=existing"
    } else {
        ""
    };
    let p = &cluster.pki;
    let etcd_dir = p.ca.cert.parent().unwrap();
    let text = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: {client}
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls={client}
    - --cert-file={server_crt}
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls={peer}
    - --initial-cluster={initial_cluster}{state}
    - --key-file={server_key}
    - --listen-client-urls={client}
    - --listen-peer-urls={peer}
    - --name={name}
    - --peer-cert-file={peer_crt}
    - --peer-client-cert-auth=true
    - --peer-key-file={peer_key}
    - --peer-trusted-ca-file={ca}
    - --snapshot-count=10000
    - --trusted-ca-file={ca}
    image: registry.k8s.io/etcd:3.5.1-0
    imagePullPolicy: IfNotPresent
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: {etcd_dir}
      name: etcd-certs
  hostNetwork: true
  priorityClassName: system-node-critical
  volumes:
  - hostPath:
      path: {etcd_dir}
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: {data}
      type: DirectoryOrCreate
    name: etcd-data
"#,
        client = m.client_url,
        peer = m.peer_url,
        name = m.name,
        server_crt = p.server.cert.display(),
        server_key = p.server.key.display(),
        peer_crt = p.peer.cert.display(),
        peer_key = p.peer.key.display(),
        ca = p.ca.cert.display(),
        etcd_dir = etcd_dir.display(),
        data = m.data_dir.display(),
    );
    fs::write(path, text).unwrap();
}

/// A client for writing test data, built with etcdops' own connector (healthcheck-client pair).
pub struct TestClient {
    pub rt: tokio::runtime::Runtime,
    pub client: etcd_client::Client,
}

impl Cluster {
    pub fn client(&self, user: Option<(&str, &str)>) -> TestClient {
        use etcdops::settings::{ConnSettings, Source, Sourced};
        fn flag<T>(value: T) -> Sourced<T> {
            Sourced {
                value,
                source: Source::Flag("test"),
            }
        }
        let conn = ConnSettings {
            endpoints: flag(vec![self.members[0].client_url.clone()]),
            cacert: Some(flag(self.pki.ca.cert.clone())),
            cert: Some(flag(self.pki.healthcheck.cert.clone())),
            key: Some(flag(self.pki.healthcheck.key.clone())),
            insecure_skip_tls_verify: flag(false),
            user: user.map(|(u, p)| flag((u.to_string(), p.to_string()))),
            dial_timeout: flag(Duration::from_secs(5)),
            command_timeout: flag(Duration::from_secs(60)),
        };
        let targets = etcdops::client::targets(&conn).unwrap();
        let connector = etcdops::client::Connector::new(&conn, &targets).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(connector.connect(&targets[0]))
            .unwrap_or_else(|e| panic!("test client: {e}"));
        TestClient { rt, client }
    }

    /// `etcdctl snapshot save` from member `i` (with optional credentials) into `path`.
    pub fn etcdctl_save(&self, i: usize, path: &Path, user: Option<&str>) {
        let mut args = vec![
            "snapshot".to_string(),
            "save".to_string(),
            path.display().to_string(),
        ];
        if let Some(u) = user {
            args.push(format!("--user={u}"));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.etcdctl(&self.members[i].client_url.clone(), &refs);
        assert!(
            out.status.success(),
            "etcdctl snapshot save: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// One key as a client sees it: key, value, create revision, mod revision, version, lease.
pub type Kv = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);

impl TestClient {
    /// Every key with its metadata, in pages (a large keyspace does not fit one response).
    pub fn dump(&mut self) -> Vec<Kv> {
        use etcd_client::GetOptions;
        let mut out = Vec::new();
        let mut from = vec![0u8];
        loop {
            let opts = GetOptions::new().with_from_key().with_limit(2000);
            let resp = self
                .rt
                .block_on(self.client.get(from.clone(), Some(opts)))
                .expect("range");
            for kv in resp.kvs() {
                out.push((
                    kv.key().to_vec(),
                    kv.value().to_vec(),
                    kv.create_revision(),
                    kv.mod_revision(),
                    kv.version(),
                    kv.lease(),
                ));
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return out,
            }
        }
    }

    /// Put many keys, `batch` per transaction.
    pub fn put_all(&mut self, kvs: &[(Vec<u8>, Vec<u8>)], batch: usize) {
        use etcd_client::{Txn, TxnOp};
        for chunk in kvs.chunks(batch.max(1)) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|(k, v)| TxnOp::put(k.clone(), v.clone(), None))
                .collect();
            self.rt
                .block_on(self.client.txn(Txn::new().and_then(ops)))
                .expect("txn");
        }
    }
}

impl Cluster {
    /// PID of member `i`, if it is running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }
}

impl Cluster {
    /// A cluster built the way kubeadm 1.29+ builds one: `cp1` alone (its own
    /// `--initial-cluster`, state `new`), then each next member announced with `etcdctl member
    /// add --learner`, started with the growing `--initial-cluster` and state `existing`, and
    /// promoted once it has caught up. etcd's default token, as
    /// kubeadm leaves it. Returns the cluster and each member's `--initial-cluster`.
    pub fn start_kubeadm_way(version: Version, n: usize) -> (Cluster, Vec<String>) {
        assert!(version != Version::V3_4_23, "learners need etcd 3.5");
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(&dir.path().join("pki"));
        let mut cluster = Cluster {
            pki,
            members: Vec::new(),
            version,
            dir,
        };
        let mut lists = Vec::new();
        for i in 0..n {
            let name = format!("cp{}", i + 1);
            let m = Member {
                client_url: format!("https://127.0.0.1:{}", free_port()),
                peer_url: format!("https://127.0.0.1:{}", free_port()),
                data_dir: cluster.dir.path().join(format!("{name}.etcd")),
                log: cluster.dir.path().join(format!("{name}.log")),
                name,
                child: None,
            };
            let mut learner = None;
            if i > 0 {
                let eps = cluster.endpoints_arg();
                let start = Instant::now();
                loop {
                    // kubeadm 1.29+ joins every control plane as a learner, then promotes it.
                    let out = cluster.etcdctl(
                        &eps,
                        &[
                            "member",
                            "add",
                            &m.name,
                            &format!("--peer-urls={}", m.peer_url),
                            "--learner",
                            "-w",
                            "json",
                        ],
                    );
                    if out.status.success() {
                        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                        learner = doc["member"]["ID"].as_u64();
                        break;
                    }
                    // "not enough started members" until the last one has caught up.
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "member add {}: {}",
                        m.name,
                        String::from_utf8_lossy(&out.stderr)
                    );
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
            cluster.members.push(m);
            let list = cluster
                .members
                .iter()
                .map(|m| format!("{}={}", m.name, m.peer_url))
                .collect::<Vec<_>>()
                .join(",");
            let mut args = cluster.member_args(&cluster.members[i], &list, &[]);
            args.retain(|a| !a.starts_with("--initial-cluster-token"));
            if i > 0 {
                for a in &mut args {
                    if a == "--initial-cluster-state=new" {
                        *a = "--initial-cluster-state=existing".into();
                    }
                }
            }
            cluster.spawn(i, &version.etcd(), &args);
            if let Some(id) = learner {
                cluster.promote(id);
            }
            cluster.wait_healthy(Duration::from_secs(60));
            lists.push(list);
        }
        (cluster, lists)
    }

    /// `member promote` as kubeadm does it: again until the learner has caught up.
    fn promote(&self, id: u64) {
        let eps = self.members[0].client_url.clone();
        let start = Instant::now();
        loop {
            let out = self.etcdctl(&eps, &["member", "promote", &format!("{id:x}")]);
            if out.status.success() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "member promote {id:x}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn spawn(&mut self, i: usize, etcd: &Path, args: &[String]) {
        let m = &mut self.members[i];
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .unwrap();
        let child = Command::new(etcd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", etcd.display()));
        m.child = Some(child);
    }

    /// Start member `i` again (after [`Cluster::kill`]) on its data dir, with the flags it was
    /// started with (extra flags aside), without waiting for it.
    pub fn restart(&mut self, i: usize) {
        let initial = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        let args = self.member_args(&self.members[i], &initial, &[]);
        let etcd = self.version.etcd();
        self.spawn(i, &etcd, &args);
    }

    /// Kill every member, then start each from its static-pod manifest as kubelet would: the
    /// manifest's command line as written, with `--data-dir` on the host path of the volume
    /// mounted there. Waits until every member is healthy.
    pub fn restart_from_manifests(&mut self, manifests: &[PathBuf]) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        let etcd = self.version.etcd();
        for (i, path) in manifests.iter().enumerate() {
            let (args, data_dir) = static_pod_command(path);
            self.members[i].data_dir = data_dir;
            self.spawn(i, &etcd, &args);
        }
        self.wait_healthy(Duration::from_secs(60));
    }
}

/// etcd's arguments in a static-pod manifest, with `--data-dir` mapped to its hostPath.
pub fn static_pod_command(manifest: &Path) -> (Vec<String>, PathBuf) {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(manifest).unwrap()).unwrap();
    let container = &doc["spec"]["containers"][0];
    let command: Vec<String> = container["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let data_dir = command
        .iter()
        .find_map(|a| a.strip_prefix("--data-dir="))
        .unwrap()
        .to_string();
    let volume = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["mountPath"].as_str() == Some(data_dir.as_str()))
        .unwrap()["name"]
        .clone();
    let host = doc["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == volume)
        .unwrap()["hostPath"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let args = command[1..]
        .iter()
        .map(|a| {
            if a.starts_with("--data-dir=") {
                format!("--data-dir={host}")
            } else {
                a.clone()
            }
        })
        .collect();
    (args, PathBuf::from(host))
}
