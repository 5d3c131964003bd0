//! One file per command. Each takes typed settings and returns a typed report plus an
//! [`Outcome`](crate::exit::Outcome); rendering is `output`'s job.

pub mod cert_expiry;
pub mod health;
pub mod manifest_read;
pub mod members;
pub mod snapshot_restore;
pub mod snapshot_save;
pub mod snapshot_status;
pub mod status;

use std::collections::BTreeSet;

use crate::client::{Connector, EndpointError, Target};

/// `--cluster`: every started member's client URLs, from the member list of the first
/// endpoint that answers. Scheme-less URLs keep the TLS choice of the given endpoints.
pub async fn discover_cluster(
    connector: &Connector,
    given: &[Target],
) -> Result<Vec<Target>, EndpointError> {
    let mut last = None;
    for target in given {
        let attempt = async {
            let mut client = connector.connect(target).await?;
            connector.request("member list", client.member_list()).await
        };
        match attempt.await {
            Ok(list) => {
                let mut seen = BTreeSet::new();
                let mut found = Vec::new();
                for member in list.members() {
                    for url in member.client_urls() {
                        if seen.insert(url.clone()) {
                            let t = Target::parse(url, target.tls).map_err(|m| {
                                EndpointError::new(crate::client::FailureKind::Server, m)
                            })?;
                            found.push(t);
                        }
                    }
                }
                return Ok(found);
            }
            Err(e) => {
                last = Some(EndpointError::new(
                    e.kind,
                    format!("{}: {}", target.endpoint, e.message),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        EndpointError::new(crate::client::FailureKind::Connect, "no endpoints to ask")
    }))
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
