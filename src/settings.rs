//! Second stage of argument handling: flags, `ETCDCTL_*` environment variables and the etcd
//! static-pod manifest are merged here, once, into typed settings. Precedence per setting:
//! flag > environment > manifest > built-in default. A flag and an environment variable that
//! disagree are not an error (unlike etcdctl): the flag wins, and `-v` says so.
//!
//! The environment is passed in as a lookup function so that tests (and the rest of the crate)
//! never depend on the process environment implicitly.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::{GlobalArgs, WriteOut};
use crate::manifest::Manifest;
use crate::output::OutputFormat;
use crate::units::{parse_bool, parse_go_duration};

/// The manifest kubeadm writes for a stacked etcd.
pub const DEFAULT_MANIFEST: &str = "/etc/kubernetes/manifests/etcd.yaml";
const DEFAULT_ENDPOINT: &str = "127.0.0.1:2379";
const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a setting's value came from, for `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    /// Where in the manifest, e.g. `line 12 of /etc/kubernetes/manifests/etcd.yaml`.
    Manifest(String),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(name) => write!(f, "flag --{name}"),
            Source::Env(name) => write!(f, "environment {name}"),
            Source::Manifest(at) => write!(f, "manifest, {at}"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value together with where it came from.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// Everything an online command needs to reach etcd.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub endpoints: Sourced<Vec<String>>,
    pub cacert: Option<Sourced<PathBuf>>,
    pub cert: Option<Sourced<PathBuf>>,
    pub key: Option<Sourced<PathBuf>>,
    pub insecure_skip_tls_verify: Sourced<bool>,
    pub user: Option<Sourced<(String, String)>>,
    pub dial_timeout: Sourced<Duration>,
    pub command_timeout: Sourced<Duration>,
}

impl ConnSettings {
    /// One line per setting, for `-v`.
    pub fn describe(&self) -> Vec<String> {
        fn path(p: &Option<Sourced<PathBuf>>) -> String {
            match p {
                Some(s) => format!("{} (from {})", s.value.display(), s.source),
                None => "none".to_string(),
            }
        }
        let user = match &self.user {
            Some(s) => format!("{} (from {})", s.value.0, s.source),
            None => "none".to_string(),
        };
        vec![
            format!(
                "endpoints: {} (from {})",
                self.endpoints.value.join(","),
                self.endpoints.source
            ),
            format!("cacert: {}", path(&self.cacert)),
            format!("cert: {}", path(&self.cert)),
            format!("key: {}", path(&self.key)),
            format!(
                "insecure-skip-tls-verify: {} (from {})",
                self.insecure_skip_tls_verify.value, self.insecure_skip_tls_verify.source
            ),
            format!("user: {user}"),
            format!(
                "dial-timeout: {:?} (from {})",
                self.dial_timeout.value, self.dial_timeout.source
            ),
            format!(
                "command-timeout: {:?} (from {})",
                self.command_timeout.value, self.command_timeout.source
            ),
        ]
    }

    /// Whether a scheme-less endpoint should be dialled with TLS: as etcdctl, when any TLS
    /// material or the skip-verify switch is configured.
    pub fn wants_tls(&self) -> bool {
        self.cacert.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.insecure_skip_tls_verify.value
    }
}

/// Settings shared by every command.
#[derive(Debug, Clone)]
pub struct Settings {
    pub output: OutputFormat,
    pub verbose: bool,
    global: GlobalArgs,
    env: Vec<(String, String)>,
    /// Consulted when neither --manifest nor ETCDOPS_MANIFEST is set, if it exists.
    default_manifest: PathBuf,
}

impl Settings {
    /// Resolve the settings every command needs. `env` is the process environment (or a test's).
    pub fn new(global: GlobalArgs, env: Vec<(String, String)>) -> Result<Settings> {
        let mut settings = Settings {
            output: OutputFormat::Table,
            verbose: global.verbose,
            global,
            env,
            default_manifest: PathBuf::from(DEFAULT_MANIFEST),
        };
        settings.output = match (
            settings.global.write_out,
            settings.env_var("ETCDCTL_WRITE_OUT"),
        ) {
            (Some(WriteOut::Table), _) => OutputFormat::Table,
            (Some(WriteOut::Json), _) => OutputFormat::Json,
            (Some(WriteOut::Simple), _) => OutputFormat::Simple,
            (None, Some(value)) => parse_output_format(&value)
                .with_context(|| format!("environment ETCDCTL_WRITE_OUT={value:?}"))?,
            (None, None) => OutputFormat::Table,
        };
        Ok(settings)
    }

    /// A non-empty environment variable (etcdctl ignores empty ones).
    fn env_var(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    /// The manifest path to consult: `--manifest`, `ETCDOPS_MANIFEST`, or the kubeadm default
    /// when that file exists.
    pub fn manifest_path(&self) -> Option<PathBuf> {
        if let Some(path) = &self.global.manifest {
            return Some(path.clone());
        }
        if let Some(path) = self.env_var("ETCDOPS_MANIFEST") {
            return Some(PathBuf::from(path));
        }
        let default = &self.default_manifest;
        default.exists().then(|| default.clone())
    }

    /// "Now" in Unix seconds: the clock, or `ETCDOPS_NOW` (RFC 3339) so that expiry checks can
    /// be tested exactly. Read here and nowhere else.
    pub fn now(&self) -> Result<i64> {
        match self.env_var("ETCDOPS_NOW") {
            Some(v) => crate::units::parse_rfc3339(&v)
                .with_context(|| format!("environment ETCDOPS_NOW={v:?} is not an RFC 3339 time")),
            None => Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)),
        }
    }

    /// The manifest to read when a command needs one: as `manifest_path`, else the kubeadm
    /// default path even when it does not exist (so the error names it).
    pub fn manifest_path_or_default(&self) -> PathBuf {
        self.manifest_path()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MANIFEST))
    }

    /// Resolve the connection settings of online commands.
    pub fn connection(&self) -> Result<ConnSettings> {
        let g = &self.global;
        let flag_or_env = |flag: Option<String>, flag_name: &'static str, env: &'static str| {
            flag.map(|value| Sourced {
                value,
                source: Source::Flag(flag_name),
            })
            .or_else(|| {
                self.env_var(env).map(|value| Sourced {
                    value,
                    source: Source::Env(env),
                })
            })
        };
        let path_of = |s: Sourced<String>| Sourced {
            value: PathBuf::from(s.value),
            source: s.source,
        };

        let endpoints = flag_or_env(g.endpoints.clone(), "endpoints", "ETCDCTL_ENDPOINTS");
        let mut cacert =
            flag_or_env(path_string(&g.cacert), "cacert", "ETCDCTL_CACERT").map(path_of);
        let mut cert = flag_or_env(path_string(&g.cert), "cert", "ETCDCTL_CERT").map(path_of);
        let mut key = flag_or_env(path_string(&g.key), "key", "ETCDCTL_KEY").map(path_of);

        // The manifest is read only when it can still contribute something.
        let mut endpoints = match endpoints {
            Some(s) => Some(Sourced {
                value: split_endpoints(&s.value),
                source: s.source,
            }),
            None => None,
        };
        if endpoints.is_none() || cacert.is_none() || cert.is_none() || key.is_none() {
            if let Some(path) = self.manifest_path() {
                let manifest = Manifest::load(&path)?;
                let from = |flag: &str| Source::Manifest(manifest.line_of(flag));
                if endpoints.is_none() {
                    if let Some(ep) = manifest.client_endpoint() {
                        endpoints = Some(Sourced {
                            value: vec![ep],
                            source: from("listen-client-urls"),
                        });
                    }
                }
                let tls = manifest.client_tls();
                if cacert.is_none() {
                    cacert = tls.cacert.map(|p| Sourced {
                        value: p,
                        source: from("trusted-ca-file"),
                    });
                }
                // A client pair comes from one place: never mix a flag cert with a manifest key.
                if cert.is_none() && key.is_none() {
                    if let Some((c, k)) = tls.client_pair {
                        // kubeadm's healthcheck-client pair is found beside the CA.
                        let (cf, kf) = if tls.healthcheck {
                            ("trusted-ca-file", "trusted-ca-file")
                        } else {
                            ("cert-file", "key-file")
                        };
                        cert = Some(Sourced {
                            value: c,
                            source: from(cf),
                        });
                        key = Some(Sourced {
                            value: k,
                            source: from(kf),
                        });
                    }
                }
            }
        }
        let endpoints = endpoints.unwrap_or(Sourced {
            value: vec![DEFAULT_ENDPOINT.to_string()],
            source: Source::Default,
        });
        if endpoints.value.is_empty() {
            bail!("no endpoints given ({} is empty)", endpoints.source);
        }

        let insecure_skip_tls_verify = if g.insecure_skip_tls_verify {
            Sourced {
                value: true,
                source: Source::Flag("insecure-skip-tls-verify"),
            }
        } else if let Some(v) = self.env_var("ETCDCTL_INSECURE_SKIP_TLS_VERIFY") {
            let value = parse_bool(&v).with_context(|| {
                format!("environment ETCDCTL_INSECURE_SKIP_TLS_VERIFY={v:?} is not true or false")
            })?;
            Sourced {
                value,
                source: Source::Env("ETCDCTL_INSECURE_SKIP_TLS_VERIFY"),
            }
        } else {
            Sourced {
                value: false,
                source: Source::Default,
            }
        };

        let user = flag_or_env(g.user.clone(), "user", "ETCDCTL_USER");
        let password = flag_or_env(g.password.clone(), "password", "ETCDCTL_PASSWORD");
        let user = match user {
            None => {
                if let Some(p) = password {
                    bail!("{} is set but no user is given (--user)", p.source);
                }
                None
            }
            Some(u) => {
                let (name, inline) = match u.value.split_once(':') {
                    Some((n, p)) => (n.to_string(), Some(p.to_string())),
                    None => (u.value.clone(), None),
                };
                let password = match (password, inline) {
                    (Some(p), _) => p.value,
                    (None, Some(p)) => p,
                    (None, None) => bail!(
                        "{} names user {name:?} but no password is given (--password or name:password)",
                        u.source
                    ),
                };
                if name.is_empty() {
                    bail!("{}: the user name is empty", u.source);
                }
                Some(Sourced {
                    value: (name, password),
                    source: u.source,
                })
            }
        };

        let duration = |flag: Option<String>,
                        flag_name: &'static str,
                        env: &'static str,
                        default: Duration|
         -> Result<Sourced<Duration>> {
            match flag_or_env(flag, flag_name, env) {
                Some(s) => {
                    let value = parse_go_duration(&s.value)
                        .with_context(|| format!("{} = {:?}", s.source, s.value))?;
                    Ok(Sourced {
                        value,
                        source: s.source,
                    })
                }
                None => Ok(Sourced {
                    value: default,
                    source: Source::Default,
                }),
            }
        };
        let dial_timeout = duration(
            g.dial_timeout.clone(),
            "dial-timeout",
            "ETCDCTL_DIAL_TIMEOUT",
            DEFAULT_DIAL_TIMEOUT,
        )?;
        let command_timeout = duration(
            g.command_timeout.clone(),
            "command-timeout",
            "ETCDCTL_COMMAND_TIMEOUT",
            DEFAULT_COMMAND_TIMEOUT,
        )?;

        Ok(ConnSettings {
            endpoints,
            cacert,
            cert,
            key,
            insecure_skip_tls_verify,
            user,
            dial_timeout,
            command_timeout,
        })
    }
}

fn path_string(p: &Option<PathBuf>) -> Option<String> {
    p.as_ref().map(|p| p.to_string_lossy().into_owned())
}

fn split_endpoints(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_output_format(s: &str) -> Result<OutputFormat> {
    match s {
        "table" => Ok(OutputFormat::Table),
        "json" => Ok(OutputFormat::Json),
        "simple" => Ok(OutputFormat::Simple),
        other => bail!("unsupported output format {other:?} (expected table, json or simple)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global() -> GlobalArgs {
        GlobalArgs {
            endpoints: None,
            cacert: None,
            cert: None,
            key: None,
            insecure_skip_tls_verify: false,
            user: None,
            password: None,
            dial_timeout: None,
            command_timeout: None,
            write_out: None,
            manifest: None,
            verbose: false,
        }
    }

    /// Settings that never look at the machine's real /etc/kubernetes.
    fn settings(g: GlobalArgs, env: Vec<(String, String)>) -> Result<Settings> {
        let mut s = Settings::new(g, env)?;
        s.default_manifest = PathBuf::from("/nonexistent/default/etcd.yaml");
        Ok(s)
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flag_beats_env_and_env_beats_default() {
        let mut g = global();
        g.endpoints = Some("https://a:1,https://b:2".into());
        g.cacert = Some(PathBuf::from("/flag/ca.crt"));
        let e = env(&[
            ("ETCDCTL_ENDPOINTS", "https://env:3"),
            ("ETCDCTL_CACERT", "/env/ca.crt"),
            ("ETCDCTL_CERT", "/env/c.crt"),
            ("ETCDCTL_KEY", "/env/c.key"),
            ("ETCDCTL_DIAL_TIMEOUT", "7s"),
            ("ETCDCTL_WRITE_OUT", "json"),
        ]);
        let s = settings(g, e).unwrap();
        assert_eq!(s.output, OutputFormat::Json);
        let c = s.connection().unwrap();
        assert_eq!(c.endpoints.value, vec!["https://a:1", "https://b:2"]);
        assert_eq!(c.endpoints.source, Source::Flag("endpoints"));
        assert_eq!(c.cacert.unwrap().value, PathBuf::from("/flag/ca.crt"));
        assert_eq!(c.cert.unwrap().source, Source::Env("ETCDCTL_CERT"));
        assert_eq!(c.dial_timeout.value, Duration::from_secs(7));
        assert_eq!(c.command_timeout.source, Source::Default);
    }

    #[test]
    fn defaults_without_anything() {
        let mut g = global();
        g.endpoints = Some("127.0.0.1:2379".into());
        let c = settings(g, vec![]).unwrap().connection().unwrap();
        assert_eq!(c.endpoints.value, vec!["127.0.0.1:2379"]);
        assert!(!c.wants_tls());
        assert_eq!(c.dial_timeout.value, DEFAULT_DIAL_TIMEOUT);
        assert_eq!(c.command_timeout.value, DEFAULT_COMMAND_TIMEOUT);
    }

    #[test]
    fn explicit_missing_manifest_is_an_error_naming_it() {
        let mut g = global();
        g.manifest = Some(PathBuf::from("/nonexistent/etcd.yaml"));
        let err = settings(g, vec![]).unwrap().connection().unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/etcd.yaml"),
            "{err:#}"
        );
    }

    #[test]
    fn user_forms() {
        let mut g = global();
        g.endpoints = Some("x:1".into());
        g.user = Some("root:secret".into());
        let c = settings(g, vec![]).unwrap().connection().unwrap();
        assert_eq!(c.user.unwrap().value, ("root".into(), "secret".into()));

        let mut g = global();
        g.endpoints = Some("x:1".into());
        let e = env(&[("ETCDCTL_USER", "alice"), ("ETCDCTL_PASSWORD", "pw")]);
        let c = settings(g, e).unwrap().connection().unwrap();
        assert_eq!(c.user.unwrap().value, ("alice".into(), "pw".into()));

        let mut g = global();
        g.endpoints = Some("x:1".into());
        g.user = Some("bob".into());
        assert!(settings(g, vec![]).unwrap().connection().is_err());
    }

    #[test]
    fn bad_env_values_are_errors_naming_the_variable() {
        let e = env(&[("ETCDCTL_WRITE_OUT", "yaml")]);
        let err = settings(global(), e).unwrap_err();
        assert!(format!("{err:#}").contains("ETCDCTL_WRITE_OUT"));

        let mut g = global();
        g.endpoints = Some("x:1".into());
        let e = env(&[("ETCDCTL_DIAL_TIMEOUT", "abc")]);
        let err = settings(g, e).unwrap().connection().unwrap_err();
        assert!(
            format!("{err:#}").contains("ETCDCTL_DIAL_TIMEOUT"),
            "{err:#}"
        );
    }
}
