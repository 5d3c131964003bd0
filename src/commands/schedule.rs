//! `etcdops schedule print systemd|cronjob [--every D|--on-calendar SPEC] -- SAVE-ARGS`: the
//! files that run `etcdops snapshot save SAVE-ARGS` on a schedule.
//!
//! - systemd: `etcdops-snapshot.service` (oneshot, credentials from an `EnvironmentFile` kept
//!   at mode 0600, idle I/O priority) and `etcdops-snapshot.timer` (`Persistent=true` so a
//!   missed run happens at boot, `RandomizedDelaySec` so nodes do not all save at once).
//!   `--dir DIR` writes the two files there instead of printing them.
//! - cronjob: a Kubernetes CronJob for a kubeadm control plane: host network (etcd listens on
//!   the node's loopback), the control-plane node selector and toleration, the etcd PKI and the
//!   manifests directory mounted read-only from the host, `concurrencyPolicy: Forbid`, S3
//!   credentials from a Secret.
//! - `follow` instead of `save` (`schedule print systemd follow -- DEST …`): the revision log
//!   runs all the time — `etcdops-follow.service` (`Restart=always`, enabled for
//!   multi-user.target, no timer), or a Deployment of one replica (`Recreate`, so that two
//!   followers never write one chain) with the same pod as the CronJob's.

use std::path::Path;
use std::time::Duration;

use crate::text::systemd_quote;
use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::cli::{ScheduleJob, ScheduleKind};
use crate::settings::{SaveDest, ScheduleSettings};

pub const SERVICE: &str = "etcdops-snapshot.service";
pub const FOLLOW_SERVICE: &str = "etcdops-follow.service";
pub const TIMER: &str = "etcdops-snapshot.timer";
pub const ENV_FILE: &str = "/etc/etcdops/backup.env";
pub const SECRET: &str = "etcdops-backup-credentials";

/// The files, as (name, contents).
pub fn render(s: &ScheduleSettings) -> Result<Vec<(String, String)>> {
    if s.password_given {
        return Err(crate::exit::Hinted {
            error: anyhow::anyhow!("schedule print: a password given as a flag (--password, --user NAME:PASSWORD) would be written into the unit or CronJob in clear"),
            hint: format!("give only --user NAME, and the password as ETCDCTL_PASSWORD in {ENV_FILE} (mode 0600) or in the Secret {SECRET}"),
        }
        .into());
    }
    match (s.kind, s.job) {
        (ScheduleKind::Systemd, ScheduleJob::Save) => systemd(s),
        (ScheduleKind::Systemd, ScheduleJob::Follow) => {
            Ok(vec![(FOLLOW_SERVICE.into(), follow_service(s))])
        }
        (ScheduleKind::Cronjob, ScheduleJob::Save) => {
            Ok(vec![("etcdops-snapshot-cronjob.yaml".into(), cronjob(s)?)])
        }
        (ScheduleKind::Cronjob, ScheduleJob::Follow) => {
            Ok(vec![("etcdops-follow-deployment.yaml".into(), cronjob(s)?)])
        }
    }
}

/// Print the files, or write them into `dir` (0644, atomically; the service before the timer,
/// so that a timer never names a service that is not there).
pub fn run(s: &ScheduleSettings, dir: Option<&Path>) -> Result<String> {
    let files = render(s)?;
    match dir {
        None => Ok(files
            .iter()
            .map(|(name, text)| format!("# {name}\n{text}"))
            .collect::<Vec<_>>()
            .join("\n")),
        Some(dir) => {
            let mut out = String::new();
            for (name, text) in &files {
                let path = dir.join(name);
                crate::fsutil::write_atomic_public(&path, text.as_bytes())?;
                out.push_str(&format!("wrote {}\n", path.display()));
            }
            Ok(out)
        }
    }
}

/// The ExecStart= line: this binary, `snapshot save|follow`, the arguments, quoted for systemd.
fn exec_start(s: &ScheduleSettings) -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "/usr/local/bin/etcdops".to_string());
    let mut exec = vec![exe, "snapshot".into(), verb(s.job).into()];
    exec.extend(s.save_args.iter().cloned());
    let exec: Vec<String> = exec.iter().map(|a| systemd_quote(a)).collect();
    exec.join(" ")
}

fn verb(job: ScheduleJob) -> &'static str {
    match job {
        ScheduleJob::Save => "save",
        ScheduleJob::Follow => "follow",
    }
}

/// `snapshot follow` as a service that always runs: restarted when it stops, for whatever
/// reason (it continues its chain from the last segment).
fn follow_service(s: &ScheduleSettings) -> String {
    format!(
        "[Unit]
Description=etcd revision log (etcdops snapshot follow)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
# S3 credentials (AWS_ACCESS_KEY_ID=..., AWS_SECRET_ACCESS_KEY=...) and, when etcd has
# authentication, ETCDCTL_PASSWORD=..., one per line. Keep this file at mode 0600, owned by
# root: it holds secrets.
EnvironmentFile=-{ENV_FILE}
ExecStart={}
Restart=always
RestartSec=5s
UMask=0077
Nice=5
PrivateTmp=true
NoNewPrivileges=true

[Install]
WantedBy=multi-user.target
",
        exec_start(s)
    )
}

fn systemd(s: &ScheduleSettings) -> Result<Vec<(String, String)>> {
    let (calendar, delay) = match (&s.on_calendar, s.every) {
        (Some(spec), _) => (spec.clone(), Duration::from_secs(300)),
        (None, every) => {
            let every = every.unwrap_or(Duration::from_secs(3600));
            (
                on_calendar(every)?,
                (every / 10).min(Duration::from_secs(900)),
            )
        }
    };
    if calendar.contains(['\n', '\r']) {
        bail!("--on-calendar must be one line");
    }
    let service = format!(
        "[Unit]
Description=etcd snapshot (etcdops snapshot save)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
# S3 credentials (AWS_ACCESS_KEY_ID=..., AWS_SECRET_ACCESS_KEY=...) and, when etcd has
# authentication, ETCDCTL_PASSWORD=..., one per line. Keep this file at mode 0600, owned by
# root: it holds secrets.
EnvironmentFile=-{ENV_FILE}
ExecStart={}
UMask=0077
Nice=10
IOSchedulingClass=idle
PrivateTmp=true
NoNewPrivileges=true
",
        exec_start(s)
    );
    let timer = format!(
        "[Unit]
Description=Run {SERVICE} on a schedule

[Timer]
OnCalendar={}
Persistent=true
RandomizedDelaySec={}
Unit={SERVICE}

[Install]
WantedBy=timers.target
",
        // systemd expands %-specifiers in OnCalendar= too: `%h` is the home directory.
        calendar.replace('%', "%%"),
        delay.as_secs().max(1)
    );
    Ok(vec![(SERVICE.into(), service), (TIMER.into(), timer)])
}

/// The intervals both schedulers can express exactly.
enum Interval {
    /// A divisor of an hour, in minutes.
    Minutes(u64),
    Hourly,
    /// A divisor of a day, in hours.
    Hours(u64),
    Daily,
    Weekly,
}

/// `--every` as an [`Interval`]: it must divide an hour or a day, or be a week.
fn interval(every: Duration, or_else: &str) -> Result<Interval> {
    Ok(match every.as_secs() {
        s if (60..3600).contains(&s) && s % 60 == 0 && 3600 % s == 0 => Interval::Minutes(s / 60),
        3600 => Interval::Hourly,
        s if s > 3600 && s < 86400 && s % 3600 == 0 && 86400 % s == 0 => Interval::Hours(s / 3600),
        86400 => Interval::Daily,
        604800 => Interval::Weekly,
        _ => bail!(
            "--every {}: use an interval that divides an hour or a day (5m, 15m, 1h, 6h, 1d) or 7d{or_else}",
            short(every)
        ),
    })
}

/// A duration as it is typed: `45m`, `7h`, `2d`, `90s`.
fn short(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        _ => crate::units::go_duration(d),
    }
}

/// An interval as a systemd calendar spec.
fn on_calendar(every: Duration) -> Result<String> {
    Ok(match interval(every, ", or give --on-calendar")? {
        Interval::Minutes(m) => format!("*-*-* *:00/{m}:00"),
        Interval::Hourly => "hourly".to_string(),
        Interval::Hours(h) => format!("*-*-* 00/{h}:00:00"),
        Interval::Daily => "daily".to_string(),
        Interval::Weekly => "weekly".to_string(),
    })
}

/// An interval as a cron schedule.
fn cron(every: Duration) -> Result<String> {
    Ok(match interval(every, "")? {
        Interval::Minutes(m) => format!("*/{m} * * * *"),
        Interval::Hourly => "0 * * * *".to_string(),
        Interval::Hours(h) => format!("0 */{h} * * *"),
        Interval::Daily => "0 0 * * *".to_string(),
        Interval::Weekly => "0 0 * * 0".to_string(),
    })
}

/// Where a CronJob's pod finds the object store's CA (`--s3-endpoint-ca`): a ConfigMap.
pub const S3_CA_CONFIGMAP: &str = "etcdops-s3-ca";
const S3_CA_DIR: &str = "/etc/etcdops/s3-ca";

/// A Kubernetes object for the job: a CronJob that saves, or a Deployment that follows.
fn cronjob(s: &ScheduleSettings) -> Result<String> {
    if !matches!(s.dest, SaveDest::S3 { .. }) {
        bail!("a CronJob's pod keeps no local files: give an s3://BUCKET/PREFIX/ destination");
    }
    let (header, pod) = pod(s);
    let doc = match s.job {
        ScheduleJob::Save => json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "etcdops-snapshot", "namespace": "kube-system"},
            "spec": {
                "schedule": cron(s.every.unwrap_or(Duration::from_secs(3600)))?,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 600,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {"spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": 3600,
                    "template": {"spec": pod}
                }}
            }
        }),
        // One follower per chain: Recreate never runs the old and the new pod together.
        ScheduleJob::Follow => json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "etcdops-follow", "namespace": "kube-system"},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": {"app": "etcdops-follow"}},
                "template": {
                    "metadata": {"labels": {"app": "etcdops-follow"}},
                    "spec": pod
                }
            }
        }),
    };
    let what = if s.job == ScheduleJob::Save {
        "CronJob"
    } else {
        "Deployment"
    };
    Ok(
        header
            + &serde_yaml_ng::to_string(&doc).with_context(|| format!("rendering the {what}"))?,
    )
}

/// The pod that runs etcdops on a control-plane node, and the comment lines that go before the
/// object (the ConfigMap to create first).
fn pod(s: &ScheduleSettings) -> (String, serde_json::Value) {
    let mut args = vec!["snapshot".to_string(), verb(s.job).to_string()];
    args.extend(pod_save_args(&s.save_args));
    let pki = "/etc/kubernetes/pki/etcd";
    let manifests = "/etc/kubernetes/manifests";
    let mut mounts = vec![
        json!({"name": "etcd-pki", "mountPath": pki, "readOnly": true}),
        json!({"name": "manifests", "mountPath": manifests, "readOnly": true}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    let mut volumes = vec![
        json!({"name": "etcd-pki", "hostPath": {"path": pki, "type": "Directory"}}),
        json!({"name": "manifests", "hostPath": {"path": manifests, "type": "Directory"}}),
        json!({"name": "tmp", "emptyDir": {}}),
    ];
    let mut header = String::new();
    if let Some(ca) = &s.s3_endpoint_ca {
        mounts.push(json!({"name": "s3-ca", "mountPath": S3_CA_DIR, "readOnly": true}));
        volumes.push(json!({"name": "s3-ca", "configMap": {"name": S3_CA_CONFIGMAP}}));
        header = format!(
            "# The object store's CA reaches the pod from a ConfigMap; create it first:\n#   kubectl -n kube-system create configmap {S3_CA_CONFIGMAP} --from-file=ca.crt={}\n",
            crate::text::shell_quote(&ca.display().to_string())
        );
    }
    let pod = json!({
        "hostNetwork": true,
        // With hostNetwork, only this policy resolves cluster names as well as the node's (the
        // object store may be a Service).
        "dnsPolicy": "ClusterFirstWithHostNet",
        "restartPolicy": if s.job == ScheduleJob::Save { "Never" } else { "Always" },
        // As kubeadm's static pods: the backup of etcd is not what gets evicted.
        "priorityClassName": "system-node-critical",
        "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        "tolerations": [{
            "key": "node-role.kubernetes.io/control-plane",
            "operator": "Exists",
            "effect": "NoSchedule"
        }],
        "containers": [{
            "name": "etcdops",
            "image": s.image,
            "command": ["/usr/local/bin/etcdops"],
            "args": args,
            "envFrom": [{"secretRef": {"name": SECRET}}],
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"memory": "256Mi"}
            },
            // kubeadm's etcd client key is readable by root only.
            "securityContext": {
                "runAsUser": 0,
                "runAsGroup": 0,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true
            },
            "volumeMounts": mounts
        }],
        "volumes": volumes
    });
    (header, pod)
}

/// The save's arguments as the pod runs them: `--s3-endpoint-ca` names the file the ConfigMap
/// mounts, not a path of the node that ran `schedule print`.
fn pod_save_args(args: &[String]) -> Vec<String> {
    let in_pod = format!("{S3_CA_DIR}/ca.crt");
    let mut out = Vec::new();
    let mut next_is_ca = false;
    for a in args {
        if next_is_ca {
            out.push(in_pod.clone());
            next_is_ca = false;
        } else if a == "--s3-endpoint-ca" {
            out.push(a.clone());
            next_is_ca = true;
        } else if a.starts_with("--s3-endpoint-ca=") {
            out.push(format!("--s3-endpoint-ca={in_pod}"));
        } else {
            out.push(a.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        let m = |n: u64| Duration::from_secs(n * 60);
        assert_eq!(on_calendar(m(15)).unwrap(), "*-*-* *:00/15:00");
        assert_eq!(on_calendar(m(60)).unwrap(), "hourly");
        assert_eq!(on_calendar(m(360)).unwrap(), "*-*-* 00/6:00:00");
        assert_eq!(on_calendar(m(1440)).unwrap(), "daily");
        assert!(on_calendar(m(7)).is_err());
        assert!(on_calendar(Duration::from_secs(30)).is_err());
        assert_eq!(cron(m(15)).unwrap(), "*/15 * * * *");
        assert_eq!(cron(m(360)).unwrap(), "0 */6 * * *");
        assert!(cron(m(90)).is_err());
    }

    #[test]
    fn intervals_read_as_typed() {
        let e = on_calendar(Duration::from_secs(45 * 60))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--every 45m:"), "{e}");
        assert_eq!(short(Duration::from_secs(2 * 86_400)), "2d");
        assert_eq!(short(Duration::from_secs(7 * 3600)), "7h");
        assert_eq!(
            pod_save_args(&[
                "--s3-endpoint-ca".into(),
                "/root/ca.pem".into(),
                "s3://b/p/".into()
            ]),
            ["--s3-endpoint-ca", "/etc/etcdops/s3-ca/ca.crt", "s3://b/p/"]
        );
        assert_eq!(
            pod_save_args(&["--s3-endpoint-ca=/root/ca.pem".into()]),
            ["--s3-endpoint-ca=/etc/etcdops/s3-ca/ca.crt"]
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(systemd_quote("s3://b/p/"), "s3://b/p/");
        assert_eq!(systemd_quote("a b"), "\"a b\"");
        assert_eq!(systemd_quote("100%"), "100%%");
        assert_eq!(systemd_quote("$HOME x"), "\"$$HOME x\"");
        assert_eq!(systemd_quote("q\"\\"), "\"q\\\"\\\\\"");
    }
}
