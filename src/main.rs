//! The etcdops binary: parse, run, print the error chain once, map to an exit code.

use std::process::ExitCode;

use clap::FromArgMatches;
use etcdops::cli::Cli;
use etcdops::exit::{Hinted, Outcome, ERROR, OK};

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = etcdops::cli::command(&argv)
        .try_get_matches_from(&argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version go to stdout and succeed; usage errors are exit 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { ERROR } else { OK });
        }
    };
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let result = etcdops::run(cli, env);
    etcdops::fsutil::wait_if_signalled();
    match result {
        Ok(outcome) => {
            match &outcome {
                Outcome::Ok => {}
                Outcome::Bad(message) => eprintln!("error: {message}"),
                Outcome::BadHint(message, hint) | Outcome::Incomplete(message, hint) => {
                    eprintln!("error: {message}\nhint: {hint}")
                }
            }
            ExitCode::from(outcome.code())
        }
        Err(err) if is_broken_pipe(&err) => ExitCode::from(OK),
        Err(err) => {
            match err.downcast_ref::<Hinted>() {
                Some(h) => eprintln!("error: {:#}\nhint: {}", h.error, h.hint),
                None => eprintln!("error: {err:#}"),
            }
            ExitCode::from(ERROR)
        }
    }
}

/// `etcdops ... | head` closes stdout early; that is not an error worth a message.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
