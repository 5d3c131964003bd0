//! etcd as a systemd unit: `Environment=ETCD_*` settings and the flags of `ExecStart`
//! (continued lines joined); a `--config-file` replaces both (`Manifest::from_text`).

use std::collections::BTreeMap;
use std::path::Path;

use super::pod::parse_flags;
use super::words::shell_words;
use super::{Kind, Manifest};

/// Whether `text` is a systemd unit rather than YAML.
pub(super) fn is_unit(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with("ExecStart="))
        || text.contains("[Service]")
}

impl Manifest {
    /// A systemd unit: `Environment=ETCD_*` settings, then the flags of `ExecStart` (flags win,
    /// as in etcd), and a `--config-file` it names.
    pub(super) fn systemd(path: &Path, text: &str) -> Manifest {
        // Join continuation lines.
        let joined = text.replace("\\\n", " ");
        let mut flags = BTreeMap::new();
        let mut exec = Vec::new();
        for line in joined.lines().map(str::trim) {
            if let Some(env) = line.strip_prefix("Environment=") {
                for word in shell_words(env) {
                    if let Some((k, v)) = word.split_once('=') {
                        if let Some(name) = k.strip_prefix("ETCD_") {
                            flags
                                .insert(name.to_ascii_lowercase().replace('_', "-"), v.to_string());
                        }
                    }
                }
            } else if let Some(cmd) = line.strip_prefix("ExecStart=") {
                exec = shell_words(cmd.trim_start_matches(['-', '@', '+', '!']));
            }
        }
        flags.extend(parse_flags(&exec));
        Manifest::bare(path, text, Kind::SystemdUnit, flags)
    }
}
