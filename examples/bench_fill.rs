//! Fill a real etcd with Kubernetes-shaped data until its database reaches a target size:
//! keys `/registry/<resource>/<namespace>/<name>`, values of 1–20 KB with a few large ones,
//! updates, deletes and a final compaction. Used by scripts/bench.sh.
//!
//! cargo run --release --example bench_fill -- ENDPOINT CACERT CERT KEY TARGET_BYTES
//!
//! Or a load of single puts (one revision each, 1 KB values over 100,000 keys) for the revision
//! log's benchmark, printing `UNIX_NS REVISION` every 200 ms on stdout:
//!
//! cargo run --release --example bench_fill -- ENDPOINT CACERT CERT KEY puts=N rate=R in_flight=K
//! (rate=0: as fast as K requests in flight go)

use std::time::Duration;

use etcd_client::{Client, Txn, TxnOp};
use etcdops::client::{targets, Connector};
use etcdops::settings::{ConnSettings, Source, Sourced};

const RESOURCES: [&str; 8] = [
    "pods",
    "configmaps",
    "secrets",
    "services/specs",
    "deployments",
    "replicasets",
    "events",
    "leases",
];
const NAMESPACES: [&str; 6] = [
    "default",
    "kube-system",
    "monitoring",
    "payments",
    "search",
    "ingress",
];
const IN_FLIGHT: usize = 8;
const BATCH: usize = 64;
/// etcd's default request limit is 1.5 MiB; no transaction goes past this (a value that would
/// is left for the next one, unless it is alone: values are at most 1 MB).
const MAX_TXN_BYTES: usize = 1_200_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value of a size drawn from `size()`.
    fn object(&mut self) -> Vec<u8> {
        let size = self.size();
        self.value(size)
    }

    fn value(&mut self, size: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(size + 8);
        v.extend_from_slice(b"k8s\0\n\x0bv1");
        while v.len() < size {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(size);
        v
    }

    /// Mostly 1–5 KB, some up to 20 KB, one in a thousand 200 KB–1 MB.
    fn size(&mut self) -> usize {
        match self.next() % 1000 {
            0 => 200_000 + (self.next() % 800_000) as usize,
            1..=99 => 5_000 + (self.next() % 15_000) as usize,
            _ => 1_000 + (self.next() % 4_000) as usize,
        }
    }
}

fn key(i: u64) -> String {
    let res = RESOURCES[(i % RESOURCES.len() as u64) as usize];
    let ns = NAMESPACES[(i / 7 % NAMESPACES.len() as u64) as usize];
    format!("/registry/{res}/{ns}/object-{i:09}")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (endpoint, cacert, cert, key_file, rest) = match args.as_slice() {
        [e, ca, c, k, rest @ ..] if !rest.is_empty() => (e, ca, c, k, rest),
        _ => anyhow::bail!(
            "usage: bench_fill ENDPOINT CACERT CERT KEY TARGET_BYTES | puts=N rate=R in_flight=K"
        ),
    };
    let flag = |v: &str| Sourced {
        value: v.into(),
        source: Source::Flag("bench"),
    };
    let conn = ConnSettings {
        endpoints: Sourced {
            value: vec![endpoint.clone()],
            source: Source::Flag("bench"),
        },
        cacert: Some(flag(cacert)),
        cert: Some(flag(cert)),
        key: Some(flag(key_file)),
        insecure_skip_tls_verify: Sourced {
            value: false,
            source: Source::Default,
        },
        user: None,
        dial_timeout: Sourced {
            value: Duration::from_secs(5),
            source: Source::Default,
        },
        command_timeout: Sourced {
            value: Duration::from_secs(120),
            source: Source::Default,
        },
    };
    let targets = targets(&conn)?;
    let connector = Connector::new(&conn, &targets)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let client = connector.connect(&targets[0]).await?;
        match rest {
            [target] => fill(client, target.parse()?).await,
            load_args => load(client, load_args).await,
        }
    })
}

/// `puts=N rate=R in_flight=K`: N single puts, R per second (0: unlimited), K in flight.
async fn load(client: Client, args: &[String]) -> anyhow::Result<()> {
    let get = |name: &str| -> anyhow::Result<u64> {
        let v = args
            .iter()
            .find_map(|a| a.strip_prefix(&format!("{name}=")))
            .ok_or_else(|| anyhow::anyhow!("missing {name}="))?;
        Ok(v.parse()?)
    };
    let (puts, rate, in_flight) = (get("puts")?, get("rate")?, get("in_flight")?.max(1));
    let revision = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let printer = {
        let (revision, done) = (revision.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                progress(now, revision.load(std::sync::atomic::Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight as usize));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..puts {
        if rate > 0 {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate as f64)).await;
        }
        let permit = permits.clone().acquire_owned().await?;
        let (mut c, revision) = (client.clone(), revision.clone());
        let key = format!("/registry/bench/key-{:06}", rng.next() % 100_000);
        let value = rng.value(1024);
        tasks.spawn(async move {
            let r = c.put(key, value, None).await;
            if let Ok(resp) = &r {
                let rev = resp.header().map_or(0, |h| h.revision());
                revision.fetch_max(rev, std::sync::atomic::Ordering::Relaxed);
            }
            drop(permit);
            r.map(|_| ())
        });
        while let Some(r) = tasks.try_join_next() {
            r??;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    printer.await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    progress(now, revision.load(std::sync::atomic::Ordering::Relaxed));
    Ok(())
}

async fn fill(mut client: Client, target: i64) -> anyhow::Result<()> {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut next: u64 = 0;
    loop {
        let status = client.status().await?;
        if status.db_size() >= target {
            break;
        }
        // A round of IN_FLIGHT concurrent transactions: new objects, some updates, some deletes.
        let mut round = tokio::task::JoinSet::new();
        for _ in 0..IN_FLIGHT {
            let mut ops = Vec::with_capacity(BATCH);
            let mut bytes = 0;
            // etcd refuses a transaction that names a key twice.
            let mut touched = std::collections::HashSet::new();
            while ops.len() < BATCH && bytes < MAX_TXN_BYTES {
                let roll = rng.next() % 100;
                if roll < 12 && next > 0 {
                    let old = rng.next() % next;
                    if !touched.insert(old) {
                        continue;
                    }
                    if roll < 10 {
                        let v = rng.object();
                        if bytes + v.len() > MAX_TXN_BYTES && !ops.is_empty() {
                            break;
                        }
                        bytes += v.len();
                        ops.push(TxnOp::put(key(old), v, None));
                    } else {
                        ops.push(TxnOp::delete(key(old), None));
                    }
                } else {
                    let v = rng.object();
                    if bytes + v.len() > MAX_TXN_BYTES && !ops.is_empty() {
                        break;
                    }
                    bytes += v.len();
                    ops.push(TxnOp::put(key(next), v, None));
                    touched.insert(next);
                    next += 1;
                }
            }
            let mut c = client.clone();
            round.spawn(async move { c.txn(Txn::new().and_then(ops)).await });
        }
        while let Some(r) = round.join_next().await {
            r??;
        }
    }
    let rev = client
        .status()
        .await?
        .header()
        .map(|h| h.revision())
        .unwrap_or(0);
    client.compact(rev - rev / 20, None).await?;
    let status = client.status().await?;
    eprintln!(
        "filled: {next} objects, revision {rev}, db size {} bytes",
        status.db_size()
    );
    Ok(())
}

/// One `UNIX_NS REVISION` line on stdout (what scripts/bench.py reads), flushed at once.
fn progress(now: u128, revision: i64) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{now} {revision}");
    let _ = out.flush();
}
