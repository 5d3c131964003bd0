//! The restored data dir read back before it goes in place: what etcd checks when it boots
//! restored data, mirrored offline (no etcd 3.6/3.7 binary runs here; etcd-io/etcd v3.6.14
//! and v3.7.1 `server/etcdserver/bootstrap.go`, `server/storage/schema/schema.go`):
//!
//! - the `members` bucket, the WAL's ConfChange entries, the last WAL snapshot's ConfState and
//!   the `.snap` file's ConfState name the same members (3.6 boots raft from the `.snap` and
//!   the WAL, the cluster from `members`; 3.7 builds raft's ConfState from `members`, so a
//!   mismatch is a cluster that disagrees with itself);
//! - every member value parses as etcd's Member JSON, and none is a learner;
//! - `meta/consistent_index` is at least the WAL snapshot's index (below it, etcd 3.6 refuses
//!   the db: "database file … does not match with snapshot"), `meta/term` at least 1;
//! - `meta/storageVersion` and `cluster/clusterVersion` are those of the snapshot (the schema
//!   check of the release that runs it reads them; the restore's refusal of an older target
//!   was made on them).

use std::io::Read;
use std::path::Path;

use crate::bolt::Db;
use crate::etcd::schema;
use crate::etcd::stored_members::read_stored;

/// What the restore meant to write.
pub struct Expect<'a> {
    /// The member IDs of the decided membership.
    pub members: &'a [u64],
    pub storage_version: Option<&'a str>,
    pub cluster_version: Option<&'a str>,
}

/// The WAL records of a restore are a few hundred bytes per member.
const WAL_HEAD: u64 = 1 << 20;

/// One line saying what matched, or every problem found.
pub fn check(db: &Path, wal: &Path, snap: &Path, expect: &Expect) -> Result<String, Vec<String>> {
    let mut problems = Vec::new();
    let mut want = expect.members.to_vec();
    want.sort_unstable();
    let same = |what: &str, mut ids: Vec<u64>| {
        ids.sort_unstable();
        (ids != want).then(|| {
            format!(
                "{what} names {} where the restore wrote {}",
                hex_list(&ids),
                hex_list(&want)
            )
        })
    };
    let (index, term) = match read_wal(wal) {
        Ok(f) => {
            problems.extend(same(
                "the WAL's ConfChange entries",
                f.conf_changes.iter().map(|c| c.0).collect(),
            ));
            let (index, term, voters, learners) = f.snapshot.unwrap_or_default();
            problems.extend(same("the last WAL snapshot's voters", voters));
            if !learners.is_empty() {
                problems.push(format!(
                    "the last WAL snapshot has learners {}",
                    hex_list(&learners)
                ));
            }
            (index, term)
        }
        Err(e) => {
            problems.push(format!("{}: {e}", wal.display()));
            (0, 0)
        }
    };
    match std::fs::read(snap).map_err(|e| e.to_string()).and_then(|b| crate::snap::read_snap(&b)) {
        Ok((i, t, voters, _)) if (i, t) == (index, term) => {
            problems.extend(same("the .snap file's voters", voters))
        }
        Ok((i, t, ..)) => problems.push(format!("the .snap file is at index {i}, term {t}; the WAL snapshot at index {index}, term {term}")),
        Err(e) => problems.push(format!("{}: {e}", snap.display())),
    }
    let summary = check_db(db, expect, index, &mut problems);
    if problems.is_empty() {
        Ok(format!(
            "members = WAL = .snap ({}), {summary}, WAL snapshot at index {index}",
            want.len()
        ))
    } else {
        Err(problems)
    }
}

fn read_wal(path: &Path) -> Result<crate::wal::WalFacts, String> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(WAL_HEAD).read_to_end(&mut head))
        .map_err(|e| e.to_string())?;
    crate::wal::read_records(&head)
}

/// The database's side: members, consistent index and term, versions.
fn check_db(path: &Path, expect: &Expect, wal_index: u64, problems: &mut Vec<String>) -> String {
    let mut db = match Db::open_file(path) {
        Ok(db) => db,
        Err(e) => {
            problems.push(format!("{}: {e}", path.display()));
            return String::new();
        }
    };
    match read_stored(&mut db) {
        Ok(stored) => {
            let mut ids: Vec<u64> = stored.iter().map(|m| m.id).collect();
            ids.sort_unstable();
            let mut want = expect.members.to_vec();
            want.sort_unstable();
            if ids != want {
                problems.push(format!(
                    "the members bucket names {} where the restore wrote {}",
                    hex_list(&ids),
                    hex_list(&want)
                ));
            }
            let learners: Vec<u64> = stored
                .iter()
                .filter(|m| m.is_learner)
                .map(|m| m.id)
                .collect();
            if !learners.is_empty() {
                problems.push(format!(
                    "the members bucket has learners {}",
                    hex_list(&learners)
                ));
            }
        }
        Err(e) => problems.push(format!("the members bucket: {e}")),
    }
    let mut get = |bucket: &[u8], key: &[u8]| db.get(bucket, key).ok().flatten();
    let index = get(schema::BUCKET_META, schema::META_CONSISTENT_INDEX)
        .and_then(|v| schema::be_u64(&v))
        .unwrap_or(0);
    let term = get(schema::BUCKET_META, schema::META_TERM)
        .and_then(|v| schema::be_u64(&v))
        .unwrap_or(0);
    if index < wal_index {
        problems.push(format!(
            "meta/consistent_index {index} is below the WAL snapshot index {wal_index}"
        ));
    }
    if term < 1 {
        problems.push("meta/term is missing or 0".to_string());
    }
    let text = |v: Option<Vec<u8>>| v.map(|b| String::from_utf8_lossy(&b).into_owned());
    for (what, found, want) in [
        (
            "meta/storageVersion",
            text(get(schema::BUCKET_META, schema::META_STORAGE_VERSION)),
            expect.storage_version,
        ),
        (
            "cluster/clusterVersion",
            text(get(schema::BUCKET_CLUSTER, schema::CLUSTER_VERSION)),
            expect.cluster_version,
        ),
    ] {
        if found.as_deref() != want {
            problems.push(format!("{what} is {found:?}; the snapshot has {want:?}"));
        }
    }
    format!("consistent index {index}, term {term}")
}

fn hex_list(ids: &[u64]) -> String {
    let v: Vec<String> = ids.iter().map(|i| format!("{i:x}")).collect();
    format!("[{}]", v.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::stored_members::membership_from_flags as plan;

    /// A dir whose WAL and .snap name other members than its database, and a version that is
    /// not the snapshot's: every mismatch is named; the consistent dir passes.
    #[test]
    fn mismatches_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let example = include_bytes!("../../../examples/k8s-small.db");
        let db = dir.path().join("db");
        std::fs::write(&db, &example[..example.len() - 32]).unwrap();
        let stored: Vec<u64> = {
            let mut d = Db::open_file(&db).unwrap();
            read_stored(&mut d).unwrap().iter().map(|m| m.id).collect()
        };
        let m = plan(
            "m1",
            "m1=http://127.0.0.1:12380,m2=http://127.0.0.2:12380",
            "tok",
            "http://127.0.0.1:12380",
        )
        .unwrap();
        let (wal, snap) = (dir.path().join("wal"), dir.path().join("snap"));
        std::fs::write(&wal, crate::wal::restore_records(&m, true)).unwrap();
        std::fs::write(&snap, crate::snap::restore_snap(&m)).unwrap();
        let ids: Vec<u64> = m.members.iter().map(|x| x.id).collect();
        let expect = Expect {
            members: &ids,
            storage_version: Some("3.6.0"),
            cluster_version: Some("3.5.0"),
        };
        let problems = check(&db, &wal, &snap, &expect).unwrap_err();
        let text = problems.join("\n");
        assert!(text.contains("the members bucket names"), "{text}");
        assert!(text.contains("meta/storageVersion is None"), "{text}");
        assert_eq!(problems.len(), 2, "{text}");
        // The same WAL and .snap for the members the database holds: consistent.
        let one = crate::etcd::stored_members::Membership {
            members: m
                .members
                .iter()
                .take(1)
                .cloned()
                .map(|mut x| {
                    x.id = stored[0];
                    x
                })
                .collect(),
            ..m.clone()
        };
        std::fs::write(&wal, crate::wal::restore_records(&one, true)).unwrap();
        std::fs::write(&snap, crate::snap::restore_snap(&one)).unwrap();
        let expect = Expect {
            members: &stored,
            storage_version: None,
            cluster_version: Some("3.5.0"),
        };
        let ok = check(&db, &wal, &snap, &expect).unwrap();
        assert!(ok.starts_with("members = WAL = .snap (1)"), "{ok}");
    }
}
