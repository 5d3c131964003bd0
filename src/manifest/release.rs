//! What the release in a manifest's image makes of its flags. etcd 3.6 deprecated every
//! `--experimental-*` server flag, each replaced by a feature gate or by the same name without
//! the prefix, and refuses an old and a new form given together; etcd 3.7 removed them, and
//! its flag parser exits 2 on any of them (etcd-io/etcd v3.6.14 server/embed/config.go 150-167,
//! 861-954, 1132-1145, 1188-1191, server/features/etcd_features.go 92-99; v3.7.1
//! server/etcdmain/config.go 125-133, commit 73fdbfe84).

use std::collections::BTreeMap;

use super::Manifest;
use crate::release::Release;

/// `--experimental-X` replaced by the feature gate G in 3.6.
const TO_GATES: [(&str, &str); 6] = [
    ("initial-corrupt-check", "InitialCorruptCheck"),
    ("compact-hash-check-enabled", "CompactHashCheck"),
    ("enable-lease-checkpoint", "LeaseCheckpoint"),
    ("enable-lease-checkpoint-persist", "LeaseCheckpointPersist"),
    ("stop-grpc-service-on-defrag", "StopGRPCServiceOnDefrag"),
    (
        "txn-mode-write-with-shared-buffer",
        "TxnModeWriteWithSharedBuffer",
    ),
];

/// `--experimental-X` renamed `--X` in 3.6.
const RENAMED: [&str; 17] = [
    "compact-hash-check-time",
    "corrupt-check-time",
    "compaction-batch-limit",
    "watch-progress-notify-interval",
    "warning-apply-duration",
    "bootstrap-defrag-threshold-megabytes",
    "memory-mlock",
    "snapshot-catchup-entries",
    "compaction-sleep-interval",
    "downgrade-check-time",
    "peer-skip-client-san-verification",
    "enable-distributed-tracing",
    "distributed-tracing-address",
    "distributed-tracing-service-name",
    "distributed-tracing-instance-id",
    "distributed-tracing-sampling-rate",
    "warning-unary-request-duration",
];

/// `--feature-gates=A=true,B=false` as a map (values that are not booleans are left out).
pub fn feature_gates(m: &Manifest) -> BTreeMap<String, bool> {
    m.flag("feature-gates")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// What the new flag or gate of `--experimental-<name>` is.
fn replacement(name: &str, value: &str) -> Option<String> {
    if let Some((_, gate)) = TO_GATES.iter().find(|(flag, _)| *flag == name) {
        return Some(format!("--feature-gates={gate}={value}"));
    }
    RENAMED.contains(&name).then(|| format!("--{name}={value}"))
}

/// One line per flag the image's release refuses or will refuse.
pub fn warnings(m: &Manifest) -> Vec<String> {
    let Some(release) = m.image_release() else {
        return Vec::new();
    };
    let gates = feature_gates(m);
    let mut out = Vec::new();
    for (flag, value) in &m.flags {
        let Some(name) = flag.strip_prefix("experimental-") else {
            continue;
        };
        let instead = replacement(name, value);
        let use_ = instead
            .as_deref()
            .map(|r| format!("use {r}"))
            .unwrap_or_else(|| "remove it".to_string());
        if release >= Release::new(3, 7, 0) {
            out.push(format!("--{flag}: etcd {release} has no --experimental-* flags and exits 2 at start on it; {use_}"));
            continue;
        }
        if release < Release::new(3, 6, 0) {
            continue;
        }
        let gate = TO_GATES.iter().find(|(f, _)| *f == name).map(|(_, g)| *g);
        if let Some(gate) = gate.filter(|g| gates.contains_key(*g)) {
            out.push(format!("--{flag} and --feature-gates={gate}=…: etcd {release} refuses both at once (\"cannot specify both flags\") and exits; keep only the feature gate"));
        } else if RENAMED.contains(&name) && m.flag(name).is_some() {
            out.push(format!("--{flag} and --{name}: etcd {release} refuses both at once (\"cannot set … at the same time\") and exits; keep only --{name}"));
        } else {
            out.push(format!(
                "--{flag} is deprecated in etcd {release} and removed in 3.7; {use_}"
            ));
        }
    }
    out
}
