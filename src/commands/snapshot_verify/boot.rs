//! `snapshot verify --boot`: restore the snapshot into a private temporary directory with this
//! same binary (`snapshot restore`, exactly what an operator would run), start a real etcd on
//! free loopback ports, wait until it serves, compare its revision and live key count with what
//! the offline read found, stop it and remove everything — also when etcd fails to start or
//! the command is interrupted (SIGINT/SIGTERM are caught for the duration).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::Check;
use crate::fsutil::TempDir;
use crate::release::Release;

/// How long etcd may take to serve.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which etcd may boot the data: at least the release it needs (an older one would boot it
/// by ignoring its versions, which proves nothing), preferably of the node's own minor.
pub struct Wanted {
    /// The release the data needs, and the key that says so.
    pub needs: Option<(Release, String)>,
    /// The release this node's manifest image names.
    pub prefer: Option<Release>,
}

pub fn check(
    plain: &Path,
    etcd: Option<&Path>,
    wanted: &Wanted,
    revision: i64,
    keys: usize,
) -> Check {
    match run(plain, etcd, wanted, revision, keys) {
        Ok(detail) => Check {
            check: "boot",
            ok: true,
            detail,
        },
        Err(e) => Check {
            check: "boot",
            ok: false,
            detail: format!("{e:#}"),
        },
    }
}

/// The etcd to boot with, and its release: `--etcd`, else the binaries named `etcd` in PATH
/// and /usr/local/bin, each asked `etcd --version`. One older than the data needs is refused;
/// among the rest, one of the node's minor is preferred, else the first.
fn find_etcd(given: Option<&Path>, wanted: &Wanted) -> Result<(PathBuf, Release)> {
    let candidates: Vec<PathBuf> = match given {
        Some(p) if p.is_file() => vec![p.to_path_buf()],
        Some(p) => bail!("--etcd {}: no such file", p.display()),
        None => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .map(|d| d.join("etcd"))
                .chain([PathBuf::from("/usr/local/bin/etcd")])
                .filter(|p| p.is_file())
                .collect()
        }
    };
    if candidates.is_empty() {
        bail!("no etcd binary in PATH or /usr/local/bin (a kubeadm node runs etcd in a container): pass --etcd PATH");
    }
    let probed: Vec<(PathBuf, Option<Release>)> = candidates
        .into_iter()
        .map(|p| {
            let r = Release::of_binary(&p);
            (p, r)
        })
        .collect();
    let fit = |r: &Release| {
        wanted
            .needs
            .as_ref()
            .is_none_or(|(n, _)| r.minor_only() >= *n)
    };
    let usable: Vec<(&PathBuf, Release)> = probed
        .iter()
        .filter_map(|(p, r)| Some((p, (*r)?)))
        .filter(|(_, r)| fit(r))
        .collect();
    let prefer = |r: &Release| {
        wanted
            .prefer
            .is_some_and(|n| n.minor_only() == r.minor_only())
    };
    if let Some((p, r)) = usable.iter().find(|(_, r)| prefer(r)).or(usable.first()) {
        return Ok(((*p).clone(), *r));
    }
    let seen: Vec<String> = probed
        .iter()
        .map(|(p, r)| match r {
            Some(r) => format!("{} is etcd {r}", p.display()),
            None => format!(
                "{} does not say its version (`etcd --version`)",
                p.display()
            ),
        })
        .collect();
    match &wanted.needs {
        Some((need, why)) => bail!(
            "the data needs etcd {} or later ({why}), and {}: an older etcd would boot it by ignoring its versions, which proves nothing; pass --etcd with an etcd {} or later",
            need.short(),
            seen.join(", "),
            need.short()
        ),
        None => bail!("{}", seen.join(", ")),
    }
}

/// util-linux's `setpriv`, which every distribution a control plane runs on ships.
const SETPRIV: [&str; 2] = ["/usr/bin/setpriv", "/bin/setpriv"];

/// A command that starts `etcd` so that it gets SIGKILL when this process dies, however it
/// dies (`setpriv --pdeathsig KILL`, then exec: the same PID). A SIGKILLed etcdops must not
/// leave an unauthenticated etcd serving the restored keyspace, Secrets included. The parent
/// that counts is the thread that spawns it: this runs on the main thread, which lives until
/// the process ends. Without setpriv, a warning says what is at stake.
fn dies_with_us(etcd: &Path) -> Command {
    match SETPRIV.iter().map(Path::new).find(|p| p.is_file()) {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "KILL", "--"]).arg(etcd);
            c
        }
        None => {
            eprintln!("etcdops: warning: setpriv (util-linux) is not installed: should etcdops be killed with SIGKILL, the temporary etcd would keep running");
            Command::new(etcd)
        }
    }
}

fn free_port() -> Result<u16> {
    let l =
        std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// Stops etcd (SIGTERM, then SIGKILL) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.0);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Restore into a temporary directory, boot etcd on it on loopback ports, compare what it
/// serves with the snapshot, stop it and remove everything.
fn run(
    plain: &Path,
    etcd: Option<&Path>,
    wanted: &Wanted,
    revision: i64,
    keys: usize,
) -> Result<String> {
    let (etcd, release) = find_etcd(etcd, wanted)?;
    // Catch SIGINT/SIGTERM from here on: an interruption at any step ends in the cleanup below
    // (a signal that arrives during the restore is acted on as soon as it returns).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (mut sigint, mut sigterm) = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    let _ours = crate::fsutil::SignalsHandledHere::start();
    let dir = TempDir::beside(&std::env::temp_dir().join("etcdops-verify-boot"))?;
    let urls = Urls::free()?;
    let data = dir.path().join("data");
    restore_into(plain, &data, &urls)?;
    let log_path = dir.path().join("etcd.log");
    let mut running = start(&etcd, &data, &urls, &log_path)?;
    let served = rt.block_on(async {
        tokio::select! {
            r = serve(&urls.client, &mut running) => r,
            _ = sigint.recv() => Err(anyhow!("interrupted (SIGINT); the temporary etcd was stopped and removed")),
            _ = sigterm.recv() => Err(anyhow!("terminated (SIGTERM); the temporary etcd was stopped and removed")),
        }
    });
    let (served_rev, served_keys) = served.map_err(|e| {
        let last = last_log_line(&log_path);
        e.context(format!("etcd's last log line: {last}"))
    })?;
    drop(running);
    if served_rev != revision || served_keys != keys as i64 {
        bail!(
            "etcd {release} ({}) serves revision {served_rev} with {served_keys} keys; the snapshot holds revision {revision} with {keys} keys",
            etcd.display()
        );
    }
    Ok(format!(
        "etcd {release} ({}) served revision {served_rev} with {served_keys} keys, then was stopped and removed",
        etcd.display()
    ))
}

/// The loopback URLs of the temporary member.
struct Urls {
    client: String,
    peer: String,
}

impl Urls {
    fn free() -> Result<Urls> {
        let (client, peer) = (free_port()?, free_port()?);
        Ok(Urls {
            client: format!("http://127.0.0.1:{client}"),
            peer: format!("http://127.0.0.1:{peer}"),
        })
    }
}

/// `etcdops snapshot restore` of the snapshot into `data`, as the one member `verify`.
fn restore_into(plain: &Path, data: &Path, urls: &Urls) -> Result<()> {
    let me = std::env::current_exe().context("finding the etcdops binary")?;
    let out = Command::new(&me)
        .args(["snapshot", "restore"])
        .arg(plain)
        .arg("--data-dir")
        .arg(data)
        .args([
            "--name",
            "verify",
            "--initial-cluster-token",
            "etcdops-verify",
        ])
        .arg(format!("--initial-cluster=verify={}", urls.peer))
        .arg(format!("--initial-advertise-peer-urls={}", urls.peer))
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .context("running snapshot restore")?;
    if !out.status.success() {
        bail!(
            "snapshot restore failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// etcd on the restored data dir, its output in `log_path`, stopped when the handle drops.
fn start(etcd: &Path, data: &Path, urls: &Urls, log_path: &Path) -> Result<Running> {
    let log = std::fs::File::create(log_path).context("creating the etcd log")?;
    let (client, peer) = (&urls.client, &urls.peer);
    let child = dies_with_us(etcd)
        .arg("--name=verify")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=verify={peer}"))
        .arg("--initial-cluster-token=etcdops-verify")
        // etcd reads ETCD_* variables as flags: none of the caller's may reach this one.
        .env_clear()
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", etcd.display()))?;
    Ok(Running(child))
}

/// The last non-empty line etcd logged, escaped for a terminal.
fn last_log_line(log_path: &Path) -> String {
    let tail = std::fs::read_to_string(log_path).unwrap_or_default();
    let last = tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    crate::text::escape(last)
}

/// Wait until etcd answers, then read its revision and key count.
async fn serve(url: &str, running: &mut Running) -> Result<(i64, i64)> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = running.0.try_wait() {
            bail!("etcd exited ({status}) before serving");
        }
        let attempt = async {
            let mut c = etcd_client::Client::connect([url], None).await?;
            let opts = etcd_client::GetOptions::new()
                .with_from_key()
                .with_count_only();
            let r = c.get(vec![0u8], Some(opts)).await?;
            Ok::<_, etcd_client::Error>((
                r.header().map(|h| h.revision()).unwrap_or_default(),
                r.count(),
            ))
        };
        if let Ok(Ok(v)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            return Ok(v);
        }
        if start.elapsed() > START_TIMEOUT {
            bail!("etcd did not serve within {START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
