//! The command line end to end on the built binary with a scrubbed environment: `--help` of
//! every command (snapshotted), and the usage-error side of the exit-status table.

use crate::common::run::etcdops;

const COMMANDS: &[&[&str]] = &[
    &[],
    &["health"],
    &["status"],
    &["members"],
    &["endpoint"],
    &["endpoint", "health"],
    &["endpoint", "status"],
    &["member"],
    &["member", "list"],
    &["snapshot"],
    &["snapshot", "save"],
    &["snapshot", "status"],
    &["snapshot", "restore"],
    &["endpoint", "hashkv"],
    &["alarm"],
    &["alarm", "list"],
    &["alarm", "disarm"],
    &["compact"],
    &["defrag"],
    &["recover-space"],
    &["check"],
    &["check", "consistency"],
    &["cert-expiry"],
    &["manifest-read"],
    &["completion"],
];

#[test]
fn help_of_every_command() {
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        let r = etcdops(&args, &[]);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(r.stderr.is_empty(), "{args:?}: {}", r.stderr);
        let name = if command.is_empty() {
            "help".to_string()
        } else {
            format!("help_{}", command.join("_"))
        };
        insta::assert_snapshot!(name, r.stdout);
    }
}

#[test]
fn usage_errors_exit_2_with_one_line_or_clap_usage() {
    let r = etcdops(&[], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = etcdops(&["--bogus", "health"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--bogus"));
    let r = etcdops(&["health", "-w", "yaml"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("yaml"));

    for (args, env, needle) in [
        (
            &[
                "health",
                "--dial-timeout",
                "abc",
                "--endpoints",
                "127.0.0.1:1",
            ][..],
            &[][..],
            "--dial-timeout",
        ),
        (
            &["health", "--endpoints", "127.0.0.1:1"][..],
            &[("ETCDCTL_WRITE_OUT", "yaml")][..],
            "ETCDCTL_WRITE_OUT",
        ),
        (
            &["health", "--endpoints", "unix:///x"][..],
            &[][..],
            "unix:///x",
        ),
        (
            &["health", "--manifest", "/nonexistent/etcd.yaml"][..],
            &[][..],
            "/nonexistent/etcd.yaml",
        ),
        (
            &["members", "--endpoints", "127.0.0.1:1", "--user", "root"][..],
            &[][..],
            "password",
        ),
    ] {
        let r = etcdops(args, env);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert_eq!(r.error_lines(), 1, "{args:?}: {}", r.stderr);
        let others = r
            .stderr
            .lines()
            .filter(|l| !l.starts_with("hint: "))
            .count();
        assert_eq!(
            others, 1,
            "{args:?}: one error line, a hint may follow: {}",
            r.stderr
        );
        assert!(
            r.stderr.starts_with("error: ") && r.stderr.contains(needle),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty());
    }
}

#[test]
fn version_and_completions() {
    let r = etcdops(&["--version"], &[]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout.trim(),
        format!("etcdops {}", env!("CARGO_PKG_VERSION"))
    );
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let r = etcdops(&["completion", shell], &[]);
        assert_eq!(r.code, 0, "{shell}: {r:?}");
        assert!(r.stdout.contains("etcdops"), "{shell}");
        assert!(r.stdout.contains("snapshot"), "{shell}");
    }
    let r = etcdops(&["completion", "tcsh"], &[]);
    assert_eq!(r.code, 2);
}

#[test]
fn unreachable_endpoint_is_a_row_in_health_and_an_error_in_members() {
    let dead = format!("http://127.0.0.1:{}", crate::common::cluster::free_port());
    let r = etcdops(&["health", "-w", "json", "--endpoints", &dead], &[]);
    assert_eq!(r.code, 1, "{r:?}");
    let rows = r.json();
    assert_eq!(rows[0]["endpoint"], dead.as_str());
    assert_eq!(rows[0]["health"], false);
    let r = etcdops(&["members", "--endpoints", &dead], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1);
}

/// Whole transcripts of `completion` (bash, and a shell clap does not know) and of a usage
/// error.
mod transcripts {
    use crate::common::run::{assert_transcript, Transcript};

    #[test]
    fn completion_bash() {
        assert_transcript!(
            "completion_bash",
            Transcript::run(&["completion", "bash"], &[])
        );
    }

    #[test]
    fn completion_unknown_shell() {
        assert_transcript!(
            "completion_unknown_shell",
            Transcript::run(&["completion", "tcsh"], &[])
        );
    }

    #[test]
    fn unknown_output_format() {
        assert_transcript!(
            "unknown_output_format",
            Transcript::run(&["health", "-w", "yaml"], &[])
        );
    }
}
