//! How to reach etcd (endpoints, TLS files, credentials, timeouts) and the object store,
//! with what the static-pod manifest adds where flags and environment left a gap.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::{ReadTimeout, S3BucketLookup};
use crate::manifest::Manifest;
use crate::remote::credentials::{profile_config, AwsEnv};
use crate::remote::s3::{BucketLookup, S3Settings};
use crate::units::{parse_bool, parse_go_duration};

use super::resolver::Resolver;
use super::*;

impl Resolver {
    /// `--s3-*` flags over `AWS_*` variables over `~/.aws/config` over defaults.
    /// How to reach the object store; `read`: the `--timeout` of a command that reads.
    pub(super) fn s3(&self, read: Option<&ReadTimeout>) -> Result<S3Settings> {
        let g = &self.global.s3;
        let env = AwsEnv::from_vars(&self.env);
        let mut profile = profile_config(&env);
        let region = g
            .s3_region
            .clone()
            .or_else(|| self.env_var("AWS_REGION"))
            .or_else(|| self.env_var("AWS_DEFAULT_REGION"))
            .or_else(|| profile.remove("region"))
            .unwrap_or_else(|| "us-east-1".to_string());
        // As aws-cli, then OpenSSL's own variable; none of them: the system bundle.
        let ca = match (&g.s3_endpoint_ca, self.env_var("AWS_CA_BUNDLE")) {
            (Some(p), _) => Some((p.clone(), "flag --s3-endpoint-ca")),
            (None, Some(p)) => Some((PathBuf::from(p), "environment AWS_CA_BUNDLE")),
            (None, None) => self
                .env_var("SSL_CERT_FILE")
                .map(|p| (PathBuf::from(p), "environment SSL_CERT_FILE")),
        };
        // As aws-cli v2 and the AWS SDKs: a checksum on every upload unless told otherwise.
        let checksums = match self
            .env_var("AWS_REQUEST_CHECKSUM_CALCULATION")
            .map(|v| (v, "AWS_REQUEST_CHECKSUM_CALCULATION"))
            .or_else(|| {
                profile
                    .remove("request_checksum_calculation")
                    .map(|v| (v, "request_checksum_calculation in the AWS config file"))
            }) {
            None => true,
            Some((v, _)) if v.eq_ignore_ascii_case("when_supported") => true,
            Some((v, _)) if v.eq_ignore_ascii_case("when_required") => false,
            Some((v, from)) => bail!(
                "{from} is {:?}: it must be when_supported (a CRC32C checksum with every upload, the default) or when_required (none)",
                crate::text::escape(&v)
            ),
        };
        // As the AWS SDKs: attempts per request, the first included.
        let max_attempts = match self
            .env_var("AWS_MAX_ATTEMPTS")
            .map(|v| (v, "environment AWS_MAX_ATTEMPTS"))
            .or_else(|| {
                profile
                    .remove("max_attempts")
                    .map(|v| (v, "max_attempts in the AWS config file"))
            }) {
            None => crate::remote::s3::DEFAULT_MAX_ATTEMPTS,
            Some((v, from)) => match v.trim().parse::<u32>() {
                Ok(n @ 1..=20) => n,
                _ => bail!(
                    "{from} is {:?}: it must be a number of attempts from 1 to 20",
                    crate::text::escape(&v)
                ),
            },
        };
        Ok(S3Settings {
            endpoint: g
                .s3_endpoint
                .clone()
                .or_else(|| self.env_var("AWS_ENDPOINT_URL_S3"))
                .or_else(|| self.env_var("AWS_ENDPOINT_URL")),
            region,
            ca,
            skip_verify: g.s3_skip_ssl_verify,
            lookup: match g.s3_bucket_lookup {
                None | Some(S3BucketLookup::Auto) => BucketLookup::Auto,
                Some(S3BucketLookup::Path) => BucketLookup::Path,
                Some(S3BucketLookup::Dns) => BucketLookup::Dns,
            },
            env,
            checksums,
            max_attempts,
            timeout: read
                .map(|r| parse_go_duration(&r.timeout).context("--timeout"))
                .transpose()?,
        })
    }

    /// A flag, else the environment variable `env`, with where it came from.
    pub(super) fn flag_or_env(
        &self,
        flag: Option<String>,
        flag_name: &'static str,
        env: &'static str,
    ) -> Option<Sourced<String>> {
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
    }

    /// The connection settings of online commands.
    pub(super) fn connection(&mut self) -> Result<ConnSettings> {
        let g = self.global.clone();
        let path_of = |s: Sourced<String>| Sourced {
            value: PathBuf::from(s.value),
            source: s.source,
        };
        let mut tls = TlsFiles {
            cacert: self
                .flag_or_env(path_string(&g.cacert), "cacert", "ETCDCTL_CACERT")
                .map(path_of),
            cert: self
                .flag_or_env(path_string(&g.cert), "cert", "ETCDCTL_CERT")
                .map(path_of),
            key: self
                .flag_or_env(path_string(&g.key), "key", "ETCDCTL_KEY")
                .map(path_of),
        };
        let mut endpoints = self
            .flag_or_env(g.endpoints.clone(), "endpoints", "ETCDCTL_ENDPOINTS")
            .map(|s| Sourced {
                value: split_endpoints(&s.value),
                source: s.source,
            });
        // The manifest is read only when it can still contribute something.
        if endpoints.is_none() || !tls.complete() {
            if let Some(m) = self.manifest.get()? {
                fill_from_manifest(m, &mut endpoints, &mut tls);
            }
        }
        let endpoints = endpoints.unwrap_or(Sourced {
            value: vec![DEFAULT_ENDPOINT.to_string()],
            source: Source::Default,
        });
        if endpoints.value.is_empty() {
            bail!("no endpoints given ({} is empty)", endpoints.source);
        }
        Ok(ConnSettings {
            endpoints,
            cacert: tls.cacert,
            cert: tls.cert,
            key: tls.key,
            insecure_skip_tls_verify: self.insecure_skip_tls_verify()?,
            user: self.user()?,
            dial_timeout: self.duration(
                g.dial_timeout.clone(),
                "dial-timeout",
                "ETCDCTL_DIAL_TIMEOUT",
                DEFAULT_DIAL_TIMEOUT,
            )?,
            command_timeout: self.duration(
                g.command_timeout.clone(),
                "command-timeout",
                "ETCDCTL_COMMAND_TIMEOUT",
                DEFAULT_COMMAND_TIMEOUT,
            )?,
        })
    }

    pub(super) fn insecure_skip_tls_verify(&self) -> Result<Sourced<bool>> {
        const ENV: &str = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY";
        if self.global.insecure_skip_tls_verify {
            return Ok(Sourced {
                value: true,
                source: Source::Flag("insecure-skip-tls-verify"),
            });
        }
        match self.env_var(ENV) {
            Some(v) => Ok(Sourced {
                value: parse_bool(&v)
                    .with_context(|| format!("environment {ENV}={v:?} is not true or false"))?,
                source: Source::Env(ENV),
            }),
            None => Ok(Sourced {
                value: false,
                source: Source::Default,
            }),
        }
    }

    /// `--user NAME[:PASSWORD]` and `--password`, from flags or environment.
    pub(super) fn user(&self) -> Result<Option<Sourced<(String, String)>>> {
        let g = &self.global;
        let user = self.flag_or_env(g.user.clone(), "user", "ETCDCTL_USER");
        let password = self.flag_or_env(g.password.clone(), "password", "ETCDCTL_PASSWORD");
        let Some(u) = user else {
            if let Some(p) = password {
                bail!("{} is set but no user is given (--user)", p.source);
            }
            return Ok(None);
        };
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
        Ok(Some(Sourced {
            value: (name, password),
            source: u.source,
        }))
    }

    pub(super) fn duration(
        &self,
        flag: Option<String>,
        flag_name: &'static str,
        env: &'static str,
        default: Duration,
    ) -> Result<Sourced<Duration>> {
        match self.flag_or_env(flag, flag_name, env) {
            Some(s) => Ok(Sourced {
                value: parse_go_duration(&s.value)
                    .with_context(|| format!("{} = {:?}", s.source, s.value))?,
                source: s.source,
            }),
            None => Ok(Sourced {
                value: default,
                source: Source::Default,
            }),
        }
    }
}

/// CA and client pair as far as flags and environment gave them.
pub(super) struct TlsFiles {
    cacert: Option<Sourced<PathBuf>>,
    cert: Option<Sourced<PathBuf>>,
    key: Option<Sourced<PathBuf>>,
}

impl TlsFiles {
    pub(super) fn complete(&self) -> bool {
        self.cacert.is_some() && self.cert.is_some() && self.key.is_some()
    }
}

/// What the manifest adds to the settings flags and environment left open: its loopback client
/// URL, its CA, and a client pair (from one place: never a flag cert with a manifest key).
pub(super) fn fill_from_manifest(
    m: &Manifest,
    endpoints: &mut Option<Sourced<Vec<String>>>,
    tls: &mut TlsFiles,
) {
    let from = |flag: &str| Source::Manifest(m.line_of(flag));
    if endpoints.is_none() {
        if let Some(ep) = m.client_endpoint() {
            let listed = |flag: &str| {
                m.flag(flag)
                    .is_some_and(|v| v.split(',').any(|u| u.trim() == ep))
            };
            let flag = if listed("listen-client-urls") {
                "listen-client-urls"
            } else {
                "advertise-client-urls"
            };
            *endpoints = Some(Sourced {
                value: vec![ep],
                source: from(flag),
            });
        }
    }
    let found = m.client_tls();
    if tls.cacert.is_none() {
        tls.cacert = found.cacert.map(|p| Sourced {
            value: p,
            source: from("trusted-ca-file"),
        });
    }
    if tls.cert.is_none() && tls.key.is_none() {
        if let Some((c, k)) = found.client_pair {
            // kubeadm's healthcheck-client pair is not in the manifest: it is found beside the
            // CA the manifest names.
            let (cert_source, key_source) = if found.healthcheck {
                let beside = Source::Manifest(format!(
                    "kubeadm's healthcheck-client pair beside --trusted-ca-file ({})",
                    m.line_of("trusted-ca-file")
                ));
                (beside.clone(), beside)
            } else {
                (from("cert-file"), from("key-file"))
            };
            tls.cert = Some(Sourced {
                value: c,
                source: cert_source,
            });
            tls.key = Some(Sourced {
                value: k,
                source: key_source,
            });
        }
    }
}

pub(super) fn path_string(p: &Option<PathBuf>) -> Option<String> {
    p.as_ref().map(|p| p.to_string_lossy().into_owned())
}

pub(super) fn split_endpoints(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}
