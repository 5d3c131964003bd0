//! How flags, environment and manifest merge.

use super::resolver::Resolver;
use super::*;
use crate::cli::GlobalArgs;

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
        hex: false,
        manifest: None,
        verbose: false,
        s3: crate::cli::S3Args {
            s3_endpoint: None,
            s3_region: None,
            s3_endpoint_ca: None,
            s3_skip_ssl_verify: false,
            s3_bucket_lookup: None,
        },
    }
}

/// A resolver that never looks at the machine's real /etc/kubernetes.
fn resolver(g: GlobalArgs, env: Vec<(String, String)>) -> Resolver {
    Resolver::new(g, env, PathBuf::from("/nonexistent/default/etcd.yaml"))
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
    let mut r = resolver(g, e);
    assert_eq!(r.output().unwrap(), OutputFormat::Json);
    let c = r.connection().unwrap();
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
    let c = resolver(g, vec![]).connection().unwrap();
    assert_eq!(c.endpoints.value, vec!["127.0.0.1:2379"]);
    assert!(!c.wants_tls());
    assert_eq!(c.dial_timeout.value, DEFAULT_DIAL_TIMEOUT);
    assert_eq!(c.command_timeout.value, DEFAULT_COMMAND_TIMEOUT);
}

#[test]
fn explicit_missing_manifest_is_an_error_naming_it() {
    let mut g = global();
    g.manifest = Some(PathBuf::from("/nonexistent/etcd.yaml"));
    let err = resolver(g, vec![]).connection().unwrap_err();
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
    let c = resolver(g, vec![]).connection().unwrap();
    assert_eq!(c.user.unwrap().value, ("root".into(), "secret".into()));

    let mut g = global();
    g.endpoints = Some("x:1".into());
    let e = env(&[("ETCDCTL_USER", "alice"), ("ETCDCTL_PASSWORD", "pw")]);
    let c = resolver(g, e).connection().unwrap();
    assert_eq!(c.user.unwrap().value, ("alice".into(), "pw".into()));

    let mut g = global();
    g.endpoints = Some("x:1".into());
    g.user = Some("bob".into());
    assert!(resolver(g, vec![]).connection().is_err());
}

#[test]
fn bad_env_values_are_errors_naming_the_variable() {
    let e = env(&[("ETCDCTL_WRITE_OUT", "yaml")]);
    let err = resolver(global(), e).output().unwrap_err();
    assert!(format!("{err:#}").contains("ETCDCTL_WRITE_OUT"));

    let mut g = global();
    g.endpoints = Some("x:1".into());
    let e = env(&[("ETCDCTL_DIAL_TIMEOUT", "abc")]);
    let err = resolver(g, e).connection().unwrap_err();
    assert!(
        format!("{err:#}").contains("ETCDCTL_DIAL_TIMEOUT"),
        "{err:#}"
    );
}
