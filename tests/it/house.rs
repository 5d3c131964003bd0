//! The rules of the layout, checked on the source itself (docs/architecture.md describes them):
//! every room imports only rooms on lower floors, no command imports another, library rooms
//! never import `output`, and no function in `src/` is longer than 100 lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::repo;

/// The floors of docs/architecture.md, bottom up: a room may import rooms on lower floors only.
const FLOORS: &[(u8, &[&str])] = &[
    (
        1,
        &[
            "buf",
            "cli",
            "exit",
            "proto",
            "regular",
            "release",
            "text",
            "timestamp",
            "units",
        ],
    ),
    (2, &["fsutil", "output", "tls"]),
    (3, &["bolt", "manifest", "pki"]),
    (4, &["etcd"]),
    (5, &["remote", "snap", "wal"]),
    (6, &["revlog", "settings"]),
    (7, &["client"]),
    (8, &["commands"]),
    (9, &["lib"]),
    (10, &["main"]),
];

/// The rooms that present results: only they may import `output`.
const PRESENTERS: &[&str] = &["commands", "settings", "lib", "main"];

const MAX_FUNCTION_LINES: usize = 100;

fn floor_of(room: &str) -> Option<u8> {
    FLOORS
        .iter()
        .find(|(_, rooms)| rooms.contains(&room))
        .map(|(floor, _)| *floor)
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The code of a file without its test module and without comments (a doc link is not an
/// import), one entry per line.
fn code_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push(code.to_string());
    }
    out
}

/// `room` and, under `src/commands/`, the command: `src/commands/snapshot_restore/preflight.rs`
/// is room `commands`, command `snapshot_restore`.
fn place(rel: &Path) -> (String, Option<String>) {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let room = parts[0].clone();
    let command =
        (room == "commands" && parts.len() > 1 && parts[1] != "mod").then(|| parts[1].clone());
    (room, command)
}

/// The rooms a line names through `crate::ROOM`.
fn crate_rooms(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .filter(|(i, _)| !line[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        .filter_map(|(i, m)| {
            let rest = &line[i + m.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// The commands a file of command `own` names: `crate::commands::X`, and `super::X` from a
/// command's top file (whose `super` is `commands`).
fn commands_named(line: &str, top_file: bool) -> Vec<String> {
    let mut named = Vec::new();
    let mut paths = vec!["crate::commands::"];
    if top_file {
        paths.push("super::");
    } else {
        paths.push("super::super::");
    }
    for path in paths {
        for (i, m) in line.match_indices(path) {
            if line[..i].ends_with("super::") || line[..i].ends_with(|c: char| c.is_alphanumeric())
            {
                continue;
            }
            let name: String = line[i + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != "super" {
                named.push(name);
            }
        }
    }
    named
}

/// What breaks the import rules, one line each.
fn import_violations(src: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for file in sources(src) {
        let rel = file.strip_prefix(src).unwrap().to_path_buf();
        let (room, command) = place(&rel);
        let Some(floor) = floor_of(&room) else {
            bad.push(format!(
                "{}: room {room} is on no floor of the table",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let top_file = rel.components().count() == 2;
        for (n, line) in code_lines(&text).iter().enumerate() {
            let at = format!("src/{}:{}", rel.display(), n + 1);
            for other in crate_rooms(line) {
                if other == room {
                    continue;
                }
                match floor_of(&other) {
                    Some(f) if f >= floor => bad.push(format!(
                        "{at}: {room} (floor {floor}) imports {other} (floor {f})"
                    )),
                    None => bad.push(format!("{at}: {other} is on no floor of the table")),
                    _ => {}
                }
                if other == "output" && !PRESENTERS.contains(&room.as_str()) {
                    bad.push(format!("{at}: library room {room} imports output"));
                }
            }
            if let Some(own) = &command {
                for other in commands_named(line, top_file) {
                    if &other != own && is_command(src, &other) {
                        bad.push(format!("{at}: command {own} imports command {other}"));
                    }
                }
            }
        }
    }
    bad
}

fn is_command(src: &Path, name: &str) -> bool {
    let dir = src.join("commands");
    dir.join(format!("{name}.rs")).is_file() || dir.join(name).is_dir()
}

/// Functions longer than `limit` lines: (lines, where), counted from the `fn` line to its
/// closing brace, test modules left out.
fn long_functions(src: &Path, limit: usize) -> Vec<(usize, String)> {
    let mut over = Vec::new();
    for file in sources(src) {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<String> = text
            .lines()
            .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
            .map(without_literals)
            .collect();
        let mut i = 0;
        while i < lines.len() {
            let Some(name) = fn_name(&lines[i]) else {
                i += 1;
                continue;
            };
            let (mut depth, mut started, mut j) = (0i64, false, i);
            while j < lines.len() {
                let l = &lines[j];
                depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
                started |= l.contains('{');
                if (started && depth <= 0) || (!started && l.trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            let n = j - i + 1;
            if started && n > limit {
                let rel = file.strip_prefix(src.parent().unwrap()).unwrap();
                over.push((n, format!("{}:{} {name}", rel.display(), i + 1)));
            }
            i = if started { j + 1 } else { i + 1 };
        }
    }
    over
}

/// A line without string and char literals and without its comment, so that braces in them do
/// not count.
fn without_literals(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            '\'' if matches!(chars.clone().nth(1), Some('\'')) => {
                chars.next();
                chars.next();
            }
            '\'' if chars.peek() == Some(&'\\') => {
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => break,
            c => out.push(c),
        }
    }
    out
}

/// The name of the function a line begins, if it begins one.
fn fn_name(line: &str) -> Option<String> {
    let mut words = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        words = words.strip_prefix(prefix).unwrap_or(words);
    }
    for prefix in ["const ", "async ", "unsafe "] {
        words = words.strip_prefix(prefix).unwrap_or(words);
    }
    let rest = words.strip_prefix("fn ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Bulk buffers (what a snapshot's bytes are read into or written from) come from
/// `buf::AlignedBuf` and its reader and writer: an allocator's `Vec` or `BufReader` starts a few
/// bytes past a cache line, where the kernel copies several times slower (docs/performance.md).
fn unaligned_bulk_buffers(src: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for file in sources(src) {
        let rel = file.strip_prefix(src).unwrap();
        if rel == Path::new("buf.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in code_lines(&text).iter().enumerate() {
            let bulk_vec = line.find("vec![0u8; ").is_some_and(|i| {
                let size = &line[i..];
                let size = &size[..size.find(']').unwrap_or(size.len())];
                size.contains("<<") || size.contains("CHUNK") || size.contains("BUFFER")
            });
            if bulk_vec
                || line.contains("BufReader::with_capacity(")
                || line.contains("BufWriter::with_capacity(")
            {
                bad.push(format!("src/{}:{}: {}", rel.display(), n + 1, line.trim()));
            }
        }
    }
    bad
}

#[test]
fn bulk_buffers_are_aligned() {
    let bad = unaligned_bulk_buffers(&repo().join("src"));
    assert!(
        bad.is_empty(),
        "use crate::buf::AlignedBuf:\n{}",
        bad.join("\n")
    );
}

#[test]
fn rooms_import_only_rooms_below_them() {
    let bad = import_violations(&repo().join("src"));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn no_function_is_longer_than_100_lines() {
    let over = long_functions(&repo().join("src"), MAX_FUNCTION_LINES);
    let listed: Vec<String> = over.iter().map(|(n, w)| format!("{n} {w}")).collect();
    assert!(listed.is_empty(), "{}", listed.join("\n"));
}

/// The checks themselves catch what they are for, on a small tree made for it.
#[test]
fn the_rules_catch_what_they_forbid() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("commands/mod.rs", "pub mod a;\npub mod b;\n");
    write("commands/a.rs", "use super::b::run;\n");
    write(
        "commands/b.rs",
        "use crate::commands::a;\n// crate::main in a comment\n",
    );
    write(
        "bolt/mod.rs",
        "use crate::etcd::status;\nuse crate::output::emit;\n",
    );
    write(
        "etcd/mod.rs",
        "use crate::bolt::Db;\n#[cfg(test)]\nuse crate::commands::a;\n",
    );
    let mut bad = import_violations(&src);
    bad.sort();
    let by_file: BTreeMap<&str, usize> = bad.iter().fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l.split(':').next().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(
        by_file,
        BTreeMap::from([
            ("src/bolt/mod.rs", 2),
            ("src/commands/a.rs", 1),
            ("src/commands/b.rs", 1)
        ]),
        "{bad:#?}"
    );
    let body = (0..101)
        .map(|i| format!("    let _x{i} = \"}}\";\n"))
        .collect::<String>();
    write(
        "units.rs",
        &format!("pub fn long() {{\n{body}}}\nfn short() {{}}\n"),
    );
    let over = long_functions(&src, MAX_FUNCTION_LINES);
    assert_eq!(over, [(103, "src/units.rs:1 long".to_string())]);
    write("etcd/restore.rs", "let b = vec![0u8; 1 << 20];\nlet r = BufReader::with_capacity(8, f);\nlet small = vec![0u8; 8];\n");
    assert_eq!(unaligned_bulk_buffers(&src).len(), 2);
}
