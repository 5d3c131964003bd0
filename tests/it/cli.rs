//! The command line end to end on the built binary with a scrubbed environment: `--help` of
//! every command (snapshotted), and the usage-error side of the exit-status table.

use crate::common::run::etcdops;
use crate::common::s;

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
    &["snapshot", "follow"],
    &["snapshot", "log"],
    &["snapshot", "verify"],
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

/// clap's own checks of the definition, and one it does not make: a command's argument named
/// as a global one (`snapshot log --key`, or a positional `key`, against the client key file)
/// panics when it is read, in front of a user.
#[test]
fn the_command_line_definition_is_sound() {
    let cli = etcdops::cli::command(&[]);
    cli.clone().debug_assert();
    let globals: Vec<String> = cli
        .get_arguments()
        .filter(|a| a.is_global_set())
        .flat_map(|a| {
            [
                Some(a.get_id().to_string()),
                a.get_long().map(str::to_string),
            ]
        })
        .flatten()
        .collect();
    fn walk(cmd: &clap::Command, globals: &[String], path: &str, clashes: &mut Vec<String>) {
        for sub in cmd.get_subcommands() {
            let here = format!("{path} {}", sub.get_name());
            for a in sub.get_arguments().filter(|a| !a.is_global_set()) {
                let names = [Some(a.get_id().as_str()), a.get_long()];
                for name in names.into_iter().flatten() {
                    if globals.iter().any(|g| g == name) {
                        clashes.push(format!("{here}: {name}"));
                    }
                }
            }
            walk(sub, globals, &here, clashes);
        }
    }
    let mut clashes = Vec::new();
    walk(&cli, &globals, "etcdops", &mut clashes);
    assert!(
        clashes.is_empty(),
        "flags named as global ones: {clashes:?}"
    );
}

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

/// #28 item 15: each command's help lists its own flags first, then the global groups under
/// their headings; an offline command lists no etcd connection flags (they stay accepted), a
/// command without s3:// no object-storage flags; `snapshot diff` says what OLD and NEW are;
/// bash completion offers `systemd|cronjob` after `schedule print` and the shells after
/// `completion`.
#[test]
fn help_shows_what_each_command_uses() {
    let help = |args: &[&str]| {
        let mut a = args.to_vec();
        a.push("--help");
        let r = etcdops(&a, &[]);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        r.stdout
    };
    let offline: [&[&str]; 7] = [
        &["snapshot", "status"],
        &["snapshot", "verify"],
        &["snapshot", "restore"],
        &["snapshot", "ls"],
        &["snapshot", "diff"],
        &["schedule", "print"],
        &["manifest-read"],
    ];
    for args in offline {
        let text = help(args);
        assert!(
            !text.contains("--endpoints") && !text.contains("--cacert"),
            "{args:?}: {text}"
        );
    }
    for args in [&["health"][..], &["snapshot", "save"], &["cert-expiry"]] {
        let text = help(args);
        let own = text.find("Options:").unwrap();
        let connection = text.find("Connection to etcd (online commands):").unwrap();
        let global = text.find("Global options:").unwrap();
        assert!(own < connection && own < global, "{args:?}: {text}");
        assert!(text.contains("--endpoints"), "{args:?}: {text}");
    }
    assert!(!help(&["health"]).contains("--s3-endpoint"));
    assert!(help(&["snapshot", "save"]).contains("--s3-endpoint"));
    // Hidden is not refused: an offline command still accepts (and ignores) a connection flag.
    let example = crate::common::repo().join("examples/k8s-small.db");
    let r = etcdops(
        &[
            "snapshot",
            "status",
            &s(&example),
            "--endpoints",
            "https://127.0.0.1:1",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let diff = help(&["snapshot", "diff"]);
    assert!(
        diff.contains("The earlier snapshot") && diff.contains("The later snapshot"),
        "{diff}"
    );

    let script = etcdops(&["completion", "bash"], &[]).stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etcdops.bash");
    std::fs::write(&file, script).unwrap();
    let complete = |words: &str, cword: usize| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _etcdops etcdops \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                s(&file)
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let kinds = complete("etcdops schedule print ''", 3);
    assert!(
        kinds.contains(&"systemd".to_string()) && kinds.contains(&"cronjob".to_string()),
        "{kinds:?}"
    );
    let shells = complete("etcdops completion ''", 2);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.contains(&shell.to_string()), "{shells:?}");
    }
}
