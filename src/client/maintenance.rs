//! Keeping a running cluster healthy: alarms, compaction, defragmentation one member at a time
//! (the leader last, never two at once, never while quorum is at risk), KV hashes, and the
//! health probe the other steps wait on. Mirrors what etcdctl's `alarm`, `compaction`,
//! `defrag` and `endpoint hashkv` do (etcd-io/etcd etcdctl/ctlv3/command), in the order etcd's
//! maintenance guide prescribes.

use std::time::{Duration, Instant};

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, CompactionOptions};

use super::cluster::{endpoint_status, EndpointStatus};
use super::{classify_etcd, is_permission_denied, Connector, EndpointError, FailureKind, Target};

/// A defragmentation rewrites the whole database; it may take much longer than one request.
const DEFRAG_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a defragmented member may take to answer again before the next one starts.
pub const REJOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// One active alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub member_id: u64,
    pub kind: AlarmType,
}

impl Alarm {
    /// etcd's name for the alarm (`NOSPACE`, `CORRUPT`).
    pub fn name(&self) -> &'static str {
        alarm_name(self.kind)
    }
}

pub fn alarm_name(kind: AlarmType) -> &'static str {
    match kind {
        AlarmType::Nospace => "NOSPACE",
        AlarmType::Corrupt => "CORRUPT",
        AlarmType::None => "NONE",
    }
}

/// The response header's IDs, as etcdctl's JSON shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    pub cluster_id: u64,
    pub member_id: u64,
    pub revision: i64,
    pub raft_term: u64,
}

impl Header {
    /// etcdctl's JSON header (`cluster_id`, `member_id`, `revision`, `raft_term`), zero
    /// fields left out as Go's `omitempty` does.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("cluster_id".into(), self.cluster_id.into());
        m.insert("member_id".into(), self.member_id.into());
        m.insert("revision".into(), self.revision.into());
        m.insert("raft_term".into(), self.raft_term.into());
        crate::text::omit_empty(m)
    }
}

fn header(h: Option<&etcd_client::ResponseHeader>) -> Header {
    h.map(|h| Header {
        cluster_id: h.cluster_id(),
        member_id: h.member_id(),
        revision: h.revision(),
        raft_term: h.raft_term(),
    })
    .unwrap_or_default()
}

/// The cluster's active alarms, as `target` knows them.
pub async fn alarms(
    connector: &Connector,
    target: &Target,
) -> Result<(Header, Vec<Alarm>), EndpointError> {
    let mut client = connector.connect(target).await?;
    let resp = connector
        .request(
            target,
            "alarm list",
            client.alarm(AlarmAction::Get, AlarmType::None, None),
        )
        .await?;
    let list = resp
        .alarms()
        .iter()
        .map(|a| Alarm {
            member_id: a.member_id(),
            kind: a.alarm(),
        })
        .collect();
    Ok((header(resp.header()), list))
}

/// Deactivate every active alarm (as `etcdctl alarm disarm` does). Returns the alarms disarmed.
pub async fn disarm(
    connector: &Connector,
    target: &Target,
) -> Result<(Header, Vec<Alarm>), EndpointError> {
    let (mut head, active) = alarms(connector, target).await?;
    let mut client = connector.connect(target).await?;
    for a in &active {
        let mut options = AlarmOptions::new();
        options.with_member(a.member_id);
        let resp = connector
            .request(
                target,
                "alarm disarm",
                client.alarm(AlarmAction::Deactivate, a.kind, Some(options)),
            )
            .await?;
        head = header(resp.header());
    }
    Ok((head, active))
}

/// Compact the keyspace up to `revision` (`physical`: wait until it is gone from the backend).
pub async fn compact(
    connector: &Connector,
    target: &Target,
    revision: i64,
    physical: bool,
) -> Result<Header, EndpointError> {
    let mut client = connector.connect(target).await?;
    let options = physical.then(|| CompactionOptions::new().with_physical());
    let resp = connector
        .request(target, "compact", client.compact(revision, options))
        .await?;
    Ok(header(resp.header()))
}

/// Defragment one member; returns how long it took.
pub async fn defragment(connector: &Connector, target: &Target) -> Result<Duration, EndpointError> {
    let mut client = connector.connect(target).await?;
    let start = Instant::now();
    let limit = DEFRAG_TIMEOUT.max(connector.command_timeout);
    tokio::time::timeout(limit, client.defragment())
        .await
        .map_err(|_| EndpointError::timeout("defragmenting", limit))?
        .map_err(|e| connector.explain(target, classify_etcd(&e)))?;
    Ok(start.elapsed())
}

/// One health probe, as `etcdctl endpoint health` does it: a linearizable read of `health`
/// (permission denied counts: it went through consensus) and no active alarm. Returns how long
/// the read took.
pub async fn probe(connector: &Connector, target: &Target) -> Result<Duration, EndpointError> {
    probe_with(connector, target, true).await
}

async fn probe_with(
    connector: &Connector,
    target: &Target,
    alarms_count: bool,
) -> Result<Duration, EndpointError> {
    let mut client = connector.connect(target).await?;
    let start = Instant::now();
    let deadline = connector.command_timeout;
    let checked = tokio::time::timeout(deadline, async {
        match client.get("health", None).await {
            Ok(_) => {}
            Err(e) if is_permission_denied(&e) => {}
            Err(e) => return Err(connector.explain(target, classify_etcd(&e))),
        }
        let took = start.elapsed();
        if !alarms_count {
            return Ok(took);
        }
        let alarms = client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .map_err(|e| {
                let e = connector.explain(target, classify_etcd(&e));
                EndpointError::new(
                    e.kind,
                    format!("unable to fetch the alarm list: {}", e.message),
                )
            })?;
        if alarms.alarms().is_empty() {
            return Ok(took);
        }
        let names: Vec<&str> = alarms
            .alarms()
            .iter()
            .map(|a| alarm_name(a.alarm()))
            .collect();
        Err(EndpointError::new(
            FailureKind::Alarm,
            format!("Active Alarm(s): {}", names.join(" ")),
        ))
    })
    .await;
    checked.unwrap_or_else(|_| Err(EndpointError::timeout("health check", deadline)))
}

/// Wait until the member serves a linearizable read again, at most `limit`. Alarms do not
/// count here: during a NOSPACE recovery the alarm stays until every member is done.
pub async fn wait_serving(
    connector: &Connector,
    target: &Target,
    limit: Duration,
) -> Result<(), EndpointError> {
    let start = Instant::now();
    loop {
        match probe_with(connector, target, false).await {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() >= limit => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// What happened to one member in a defragmentation round.
#[derive(Debug, Clone)]
pub struct Defragmented {
    pub target: Target,
    pub member_id: Option<u64>,
    pub is_leader: bool,
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub took: Option<Duration>,
    /// Why it was skipped or failed.
    pub error: Option<String>,
}

/// Members in the order they are defragmented (indexes into `statuses`): the followers, then
/// the leader (defragmenting the leader stalls the whole cluster, so it goes last, when the
/// others are done).
pub fn defrag_order(statuses: &[Result<EndpointStatus, EndpointError>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..statuses.len()).collect();
    order.sort_by_key(|&i| statuses[i].as_ref().is_ok_and(EndpointStatus::is_leader));
    order
}

/// The refusal to defragment while a voting member is down and one more out of service could
/// lose quorum: which members are down (endpoint and why), and what to do. `None` when it is
/// safe. `statuses` are those of `targets`, in order.
pub fn quorum_refusal(
    targets: &[Target],
    statuses: &[Result<EndpointStatus, EndpointError>],
) -> Option<String> {
    let voters = statuses
        .iter()
        .filter(|s| !s.as_ref().is_ok_and(|s| s.is_learner))
        .count();
    let up = statuses
        .iter()
        .filter(|s| s.as_ref().is_ok_and(|s| !s.is_learner))
        .count();
    let quorum = voters / 2 + 1;
    if up >= voters || up.saturating_sub(1) >= quorum {
        return None;
    }
    let down: Vec<String> = targets
        .iter()
        .zip(statuses)
        .filter_map(|(t, s)| s.as_ref().err().map(|e| format!("{} ({e})", t.endpoint)))
        .collect();
    Some(format!(
        "refusing to defragment: {} of {voters} voting members are down ({}); defragmenting one more would leave {} of the {quorum} needed for quorum while it runs; bring the member back first, or pass --force",
        voters - up,
        down.join(", "),
        up.saturating_sub(1)
    ))
}

/// Defragment `targets` one at a time, the leader last, each after the previous one answers
/// again; unreachable members (by `statuses`, asked just before) are skipped and reported.
pub async fn defrag_one_by_one(
    connector: &Connector,
    targets: &[Target],
    statuses: &[Result<EndpointStatus, EndpointError>],
) -> Vec<Defragmented> {
    let mut done = Vec::new();
    for i in defrag_order(statuses) {
        let (Some(target), Some(status)) = (targets.get(i), statuses.get(i)) else {
            continue;
        };
        let mut row = Defragmented {
            target: target.clone(),
            member_id: status.as_ref().ok().map(|s| s.member_id),
            is_leader: status.as_ref().is_ok_and(EndpointStatus::is_leader),
            before: status.as_ref().ok().map(|s| s.db_size),
            after: None,
            took: None,
            error: None,
        };
        if let Err(e) = status {
            row.error = Some(format!("skipped: unreachable ({e})"));
            done.push(row);
            continue;
        }
        match defragment(connector, target).await {
            Ok(took) => row.took = Some(took),
            Err(e) => {
                row.error = Some(e.to_string());
                done.push(row);
                continue;
            }
        }
        if let Err(e) = wait_serving(connector, target, REJOIN_TIMEOUT).await {
            row.error = Some(format!("not serving again after defragmenting: {e}"));
        }
        row.after = endpoint_status(connector, target)
            .await
            .ok()
            .map(|s| s.db_size);
        done.push(row);
    }
    done
}

/// One member's hash of the key-value store.
#[derive(Debug, Clone)]
pub struct KvHash {
    pub header: Header,
    pub hash: u32,
    pub compact_revision: i64,
}

/// `Maintenance.HashKV` at `revision` (0: the member's current revision).
pub async fn hash_kv(
    connector: &Connector,
    target: &Target,
    revision: i64,
) -> Result<KvHash, EndpointError> {
    let mut client = connector.connect(target).await?;
    let resp = connector
        .request(target, "hashkv", client.hash_kv(revision))
        .await?;
    Ok(KvHash {
        header: header(resp.header()),
        hash: resp.hash(),
        compact_revision: resp.compact_version(),
    })
}

/// Prove the cluster takes writes: put a key of ours and delete it again.
pub async fn write_check(connector: &Connector, target: &Target) -> Result<(), EndpointError> {
    const KEY: &str = "etcdops/write-check";
    let mut client = connector.connect(target).await?;
    connector
        .request(target, "test write", client.put(KEY, "ok", None))
        .await?;
    connector
        .request(target, "test delete", client.delete(KEY, None))
        .await?;
    Ok(())
}
