//! Queries that address the cluster as a whole rather than one connection: which targets a
//! `--cluster` command checks (from the member list), running one task per target, and the
//! endpoint status query that `status` shows and `snapshot save` chooses its endpoint by.

use std::collections::BTreeSet;

use super::{Connector, EndpointError, FailureKind, Target};

/// One endpoint's `Maintenance.Status`, with the response header's IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    pub member_id: u64,
    pub cluster_id: u64,
    pub revision: i64,
    /// The header's raft term (etcdctl's `Status.header.raft_term`).
    pub header_raft_term: u64,
    pub version: String,
    pub db_size: i64,
    pub db_size_in_use: i64,
    pub leader: u64,
    pub is_learner: bool,
    pub raft_term: u64,
    pub raft_index: u64,
    pub raft_applied_index: u64,
    /// Errors the member itself reports (alarms).
    pub errors: Vec<String>,
}

impl EndpointStatus {
    pub fn is_leader(&self) -> bool {
        self.leader != 0 && self.leader == self.member_id
    }
}

/// Ask one endpoint for its status, on its own connection.
pub async fn endpoint_status(
    connector: &Connector,
    target: &Target,
) -> Result<EndpointStatus, EndpointError> {
    let mut client = connector.connect(target).await?;
    let s = connector.request(target, "status", client.status()).await?;
    let header = s.header();
    Ok(EndpointStatus {
        member_id: header.map(|h| h.member_id()).unwrap_or_default(),
        cluster_id: header.map(|h| h.cluster_id()).unwrap_or_default(),
        revision: header.map(|h| h.revision()).unwrap_or_default(),
        header_raft_term: header.map(|h| h.raft_term()).unwrap_or_default(),
        version: s.version().to_string(),
        db_size: s.db_size(),
        db_size_in_use: s.raft_used_db_size(),
        leader: s.leader(),
        is_learner: s.is_learner(),
        raft_term: s.raft_term(),
        raft_index: s.raft_index(),
        raft_applied_index: s.raft_applied_index(),
        errors: s.errors().to_vec(),
    })
}

/// The status of every target, concurrently, in target order.
pub async fn statuses(
    connector: &Connector,
    targets: &[Target],
) -> Vec<Result<EndpointStatus, EndpointError>> {
    each_target(connector, targets, |c, t| async move {
        endpoint_status(&c, &t).await
    })
    .await
    .into_iter()
    .map(|r| {
        r.unwrap_or_else(|| {
            Err(EndpointError::new(
                FailureKind::Server,
                "status query aborted",
            ))
        })
    })
    .collect()
}

/// Ask the targets in turn until one answers: the answer and who gave it, or every failure as
/// `endpoint: error`.
pub async fn first_answer<'t, T, F, Fut>(
    targets: &'t [Target],
    mut ask: F,
) -> Result<(&'t Target, T), Vec<String>>
where
    F: FnMut(&'t Target) -> Fut,
    Fut: std::future::Future<Output = Result<T, EndpointError>>,
{
    let mut failures = Vec::new();
    for target in targets {
        match ask(target).await {
            Ok(answer) => return Ok((target, answer)),
            Err(e) => failures.push(format!("{}: {e}", target.endpoint)),
        }
    }
    Err(failures)
}

/// The member list, from the first endpoint that answers.
pub async fn member_list<'t>(
    connector: &Connector,
    targets: &'t [Target],
) -> Result<(&'t Target, etcd_client::MemberListResponse), Vec<String>> {
    first_answer(targets, |target| async move {
        let mut client = connector.connect(target).await?;
        connector
            .request(target, "member list", client.member_list())
            .await
    })
    .await
}

/// The member list as `--cluster` uses it: the client URLs of the started members, and the
/// members that have published none (just restored, or a pending `member add`).
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub targets: Vec<Target>,
    /// `NAME (ID, peer URLs)` of each member without client URLs.
    pub unstarted: Vec<String>,
}

/// `--cluster`: every started member's client URLs, from the member list of the first
/// endpoint that answers. Scheme-less URLs keep the TLS choice of the given endpoints.
pub async fn discover_cluster(
    connector: &Connector,
    given: &[Target],
) -> Result<Vec<Target>, EndpointError> {
    Ok(discover_members(connector, given).await?.targets)
}

/// [`discover_cluster`], and the members that have not published client URLs.
pub async fn discover_members(
    connector: &Connector,
    given: &[Target],
) -> Result<Discovered, EndpointError> {
    let (target, list) = member_list(connector, given).await.map_err(|failures| {
        let kind = FailureKind::Connect;
        if failures.is_empty() {
            EndpointError::new(kind, "no endpoints to ask")
        } else {
            EndpointError::new(kind, failures.join("; "))
        }
    })?;
    let mut seen = BTreeSet::new();
    let mut found = Discovered::default();
    for member in list.members() {
        if member.client_urls().is_empty() {
            let name = if member.name().is_empty() {
                "(no name)"
            } else {
                member.name()
            };
            found.unstarted.push(format!(
                "{} ({:x}, {})",
                crate::text::escape(name),
                member.id(),
                crate::text::escape(&member.peer_urls().join(","))
            ));
        }
        for url in member.client_urls() {
            if seen.insert(url.clone()) {
                let t = Target::parse(url, target.tls)
                    .map_err(|m| EndpointError::new(FailureKind::Server, m.to_string()))?;
                found.targets.push(t);
            }
        }
    }
    Ok(found)
}

/// Run `each` for every target concurrently, one task (and connection) each. Results come
/// back in target order; `None` where a task died.
pub async fn each_target<T, F, Fut>(
    connector: &Connector,
    targets: &[Target],
    each: F,
) -> Vec<Option<T>>
where
    F: Fn(Connector, Target) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for (i, target) in targets.iter().cloned().enumerate() {
        let fut = each(connector.clone(), target);
        tasks.spawn(async move { (i, fut.await) });
    }
    let mut results: Vec<Option<T>> = (0..targets.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, value)) = joined {
            results[i] = Some(value);
        }
    }
    results
}

/// The targets a multi-endpoint command checks: the given ones, or with `--cluster` the
/// discovered ones. A failed discovery is reported on stderr and falls back to the given
/// endpoints, so every one of them still gets a row with its own error.
pub async fn resolve_targets(
    connector: &Connector,
    given: Vec<Target>,
    cluster: bool,
) -> Vec<Target> {
    if !cluster {
        return given;
    }
    match discover_cluster(connector, &given).await {
        Ok(found) if !found.is_empty() => found,
        Ok(_) => {
            eprintln!("warning: the member list has no client URLs; checking the given endpoints");
            given
        }
        Err(e) => {
            eprintln!(
                "warning: could not read the member list ({e}); checking the given endpoints"
            );
            given
        }
    }
}
