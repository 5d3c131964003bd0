//! The restored data dir read back before it goes in place: what etcd checks when it boots
//! restored data, mirrored offline (no etcd 3.6/3.7 binary runs here; etcd-io/etcd v3.6.14
//! and v3.7.1 `server/etcdserver/bootstrap.go`, `server/storage/schema/schema.go`):
//!
//! - the `members` bucket, the WAL's ConfChange entries, the last WAL snapshot's ConfState and
//!   the `.snap` file's ConfState name the same members (3.6 boots raft from the `.snap` and
//!   the WAL, the cluster from `members`; 3.7 builds raft's ConfState from `members`, so a
//!   mismatch is a cluster that disagrees with itself);
//! - every `members` key is a hex member ID and its value etcd's Member JSON with the same
//!   `id` (etcd keys its member map by the key and unmarshals the JSON over it, v3.6.14
//!   `server/storage/schema/membership.go` 111-117, v3.7.1 98-104: a JSON `id` of its own
//!   would be one member under two IDs); no learner in `members`, the WAL snapshot or the
//!   `.snap`;
//! - `meta/consistent_index` is at least the WAL snapshot's index (below it, etcd 3.6 refuses
//!   the db: "database file … does not match with snapshot"), `meta/term` at least 1;
//! - `meta/storageVersion` and `cluster/clusterVersion` are those of the snapshot (the schema
//!   check of the release that runs it reads them; the restore's refusal of an older target
//!   was made on them);
//! - the schema check of etcd 3.6/3.7 accepts the data: the version `schema.go`
//!   `UnsafeDetectSchemaVersion` detects (92-108) has a migration plan to the release that
//!   will run it (`Validate` 35-44 at boot, `Migrate` 60-79 when the cluster version moves;
//!   `release::schema_plan`). That release is the restore's target when known
//!   (`--etcd-version`, the manifest's image), else the oldest etcd of 3.6 or later that the
//!   data needs; a 3.5 target has no schema check. Data whose version cannot be detected (no
//!   `storageVersion`, `term` 0) is refused: `Validate` only warns, but `Migrate` fails with
//!   "cannot detect storage schema version", so 3.6 would never move its schema.

use std::io::Read;
use std::path::Path;

use crate::bolt::Db;
use crate::etcd::schema;
use crate::etcd::stored_members::{read_member_entries, StoredMember};
use crate::release::{data_needs, detect_schema, schema_plan, Release};

/// What the restore meant to write.
pub struct Expect<'a> {
    /// The member IDs of the decided membership.
    pub members: &'a [u64],
    pub storage_version: Option<&'a str>,
    pub cluster_version: Option<&'a str>,
    /// The release that will run the data, when the restore knows it.
    pub target: Option<Release>,
}

/// The WAL records of a restore are a few hundred bytes per member.
const WAL_HEAD: u64 = 1 << 20;

/// The first release with a schema check.
const SCHEMA_SINCE: Release = Release::new(3, 6, 0);

/// One line saying what matched, or every problem found.
pub fn check(db: &Path, wal: &Path, snap: &Path, expect: &Expect) -> Result<String, Vec<String>> {
    let mut problems = Vec::new();
    let mut want = expect.members.to_vec();
    want.sort_unstable();
    let (index, term) = check_wal(wal, &want, &mut problems);
    check_snap(snap, (index, term), &want, &mut problems);
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

/// `what names […] where the restore wrote […]`, when the sorted IDs differ from `want`.
fn differ(what: &str, mut ids: Vec<u64>, want: &[u64]) -> Option<String> {
    ids.sort_unstable();
    (ids != want).then(|| {
        format!(
            "{what} names {} where the restore wrote {}",
            hex_list(&ids),
            hex_list(want)
        )
    })
}

/// The WAL's ConfChange entries and its last snapshot; returns that snapshot's index and term.
fn check_wal(wal: &Path, want: &[u64], problems: &mut Vec<String>) -> (u64, u64) {
    let facts = match read_wal(wal) {
        Ok(f) => f,
        Err(e) => {
            problems.push(format!("{}: {e}", wal.display()));
            return (0, 0);
        }
    };
    let changes = facts.conf_changes.iter().map(|c| c.0).collect();
    problems.extend(differ("the WAL's ConfChange entries", changes, want));
    let (index, term, voters, learners) = facts.snapshot.unwrap_or_default();
    problems.extend(differ("the last WAL snapshot's voters", voters, want));
    if !learners.is_empty() {
        problems.push(format!(
            "the last WAL snapshot has learners {}",
            hex_list(&learners)
        ));
    }
    (index, term)
}

/// The `.snap` file: at the WAL snapshot's index and term, the same voters, no learners.
fn check_snap(snap: &Path, (index, term): (u64, u64), want: &[u64], problems: &mut Vec<String>) {
    let read = std::fs::read(snap)
        .map_err(|e| e.to_string())
        .and_then(|b| crate::snap::read_snap(&b));
    match read {
        Ok((i, t, voters, learners)) if (i, t) == (index, term) => {
            problems.extend(differ("the .snap file's voters", voters, want));
            if !learners.is_empty() {
                problems.push(format!(
                    "the .snap file has learners {}",
                    hex_list(&learners)
                ));
            }
        }
        Ok((i, t, ..)) => problems.push(format!(
            "the .snap file is at index {i}, term {t}; the WAL snapshot at index {index}, term {term}"
        )),
        Err(e) => problems.push(format!("{}: {e}", snap.display())),
    }
}

fn read_wal(path: &Path) -> Result<crate::wal::WalFacts, String> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(WAL_HEAD).read_to_end(&mut head))
        .map_err(|e| e.to_string())?;
    crate::wal::read_records(&head)
}

/// The database's side: members, consistent index and term, versions, the schema check.
fn check_db(path: &Path, expect: &Expect, wal_index: u64, problems: &mut Vec<String>) -> String {
    let mut db = match Db::open_file(path) {
        Ok(db) => db,
        Err(e) => {
            problems.push(format!("{}: {e}", path.display()));
            return String::new();
        }
    };
    check_members(&mut db, expect.members, problems);
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
    let storage = text(get(schema::BUCKET_META, schema::META_STORAGE_VERSION));
    let cluster = text(get(schema::BUCKET_CLUSTER, schema::CLUSTER_VERSION));
    for (what, found, want) in [
        ("meta/storageVersion", &storage, expect.storage_version),
        ("cluster/clusterVersion", &cluster, expect.cluster_version),
    ] {
        if found.as_deref() != want {
            problems.push(format!("{what} is {found:?}; the snapshot has {want:?}"));
        }
    }
    let schema = check_schema(
        storage.as_deref(),
        cluster.as_deref(),
        term,
        expect.target,
        problems,
    );
    format!("consistent index {index}, term {term}, {schema}")
}

/// The `members` bucket as etcd 3.6/3.7 read it (the module doc): keys against the
/// restore's members, each key against its JSON, no learners.
fn check_members<S: crate::bolt::ReadAt>(db: &mut Db<S>, want: &[u64], problems: &mut Vec<String>) {
    let entries = match read_member_entries(db) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("the members bucket: {e}"));
            return;
        }
    };
    let (mut ids, mut learners) = (Vec::new(), Vec::new());
    for (key, value) in &entries {
        let shown = crate::text::escape(&String::from_utf8_lossy(key));
        // etcd's types.IDFromString: strconv.ParseUint(key, 16, 64), no sign.
        let id = std::str::from_utf8(key)
            .ok()
            .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|k| u64::from_str_radix(k, 16).ok());
        let Some(id) = id else {
            problems.push(format!(
                "the members bucket key {shown} is not a member ID in hex"
            ));
            continue;
        };
        ids.push(id);
        match StoredMember::parse(key, value) {
            Ok(m) if m.id != id => problems.push(format!(
                "the members bucket holds member {id:x} (its key) whose JSON says id {:x}",
                m.id
            )),
            Ok(m) => learners.extend(m.is_learner.then_some(id)),
            Err(e) => problems.push(format!("{e} (not etcd's Member JSON)")),
        }
    }
    let mut want = want.to_vec();
    want.sort_unstable();
    problems.extend(differ("the members bucket", ids, &want));
    if !learners.is_empty() {
        problems.push(format!(
            "the members bucket has learners {}",
            hex_list(&learners)
        ));
    }
}

/// etcd 3.6/3.7's schema check (the module doc) for the release that will run the data;
/// returns what was checked.
fn check_schema(
    storage: Option<&str>,
    cluster: Option<&str>,
    term: u64,
    target: Option<Release>,
    problems: &mut Vec<String>,
) -> String {
    let binary = match target {
        Some(t) => t.minor_only(),
        None => data_needs(storage, cluster)
            .map_or(SCHEMA_SINCE, |(r, _)| r)
            .max(SCHEMA_SINCE),
    };
    if binary < SCHEMA_SINCE {
        return format!("no schema check (etcd {})", binary.short());
    }
    let Some(current) = detect_schema(storage, term) else {
        problems.push(format!(
            "etcd {} cannot detect the schema version: no meta/storageVersion and meta/term is 0 (its Migrate fails: \"cannot detect storage schema version: missing term information\")",
            binary.short()
        ));
        return String::new();
    };
    match schema_plan(current, binary) {
        Ok(()) => format!(
            "schema {} opens on etcd {}",
            current.short(),
            binary.short()
        ),
        Err(e) => {
            problems.push(format!(
                "etcd {} refuses schema {} ({}): {e}",
                binary.short(),
                current.short(),
                match storage {
                    Some(v) if detect_schema(Some(v), 0).is_some() =>
                        format!("meta/storageVersion {}", crate::text::escape(v)),
                    _ => "no meta/storageVersion, meta/term set".to_string(),
                }
            ));
            String::new()
        }
    }
}

fn hex_list(ids: &[u64]) -> String {
    let v: Vec<String> = ids.iter().map(|i| format!("{i:x}")).collect();
    format!("[{}]", v.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::stored_members::{member_json, membership_from_flags as plan, Membership};
    use crate::proto::{conf_state, Message};

    const TWO: &str = "m1=http://127.0.0.1:12380,m2=http://127.0.0.2:12380";

    /// A data dir restored by the restore's own code: the bundled 3.5.1 snapshot edited by
    /// `etcd::restore::edit_db` for two members, then `storageVersion` set when given (as a
    /// 3.6/3.7 snapshot has it), the WAL and `.snap` written by `wal` and `snap`.
    struct Restored {
        _dir: tempfile::TempDir,
        db: std::path::PathBuf,
        wal: std::path::PathBuf,
        snap: std::path::PathBuf,
        m: Membership,
        ids: Vec<u64>,
        storage: Option<&'static str>,
        target: Option<Release>,
    }

    impl Restored {
        fn new(storage: Option<&'static str>) -> Restored {
            let dir = tempfile::tempdir().unwrap();
            let example = include_bytes!("../../../examples/k8s-small.db");
            let db = dir.path().join("db");
            std::fs::write(&db, &example[..example.len() - 32]).unwrap();
            let m = plan("m1", TWO, "tok", "http://127.0.0.1:12380").unwrap();
            let src = crate::bolt::FileSource::open(&db).unwrap();
            let checks = crate::etcd::status::Checks {
                integrity: true,
                hash: false,
                user_keys: false,
            };
            let status = crate::etcd::status::status(&src, checks).unwrap();
            drop(src);
            crate::etcd::restore::edit_db(&db, &m, &status, None).unwrap();
            if let Some(v) = storage {
                set(&db, b"meta", b"storageVersion", Some(v.as_bytes()));
            }
            let (wal, snap) = (dir.path().join("wal"), dir.path().join("snap"));
            std::fs::write(&wal, crate::wal::restore_records(&m, true)).unwrap();
            std::fs::write(&snap, crate::snap::restore_snap(&m)).unwrap();
            let ids = m.members.iter().map(|x| x.id).collect();
            Restored {
                _dir: dir,
                db,
                wal,
                snap,
                m,
                ids,
                storage,
                target: None,
            }
        }

        fn check(&self) -> Result<String, Vec<String>> {
            let expect = Expect {
                members: &self.ids,
                storage_version: self.storage,
                cluster_version: Some("3.5.0"),
                target: self.target,
            };
            check(&self.db, &self.wal, &self.snap, &expect)
        }

        /// Member `i`'s JSON as the restore wrote it.
        fn member(&self, i: usize) -> serde_json::Value {
            serde_json::from_str(&member_json(&self.m.members[i])).unwrap()
        }

        fn key(&self, i: usize) -> Vec<u8> {
            format!("{:x}", self.ids[i]).into_bytes()
        }
    }

    /// Put (or, with `None`, delete) one entry of a top-level bucket, with the bbolt writer.
    fn set(db: &Path, bucket: &[u8], key: &[u8], value: Option<&[u8]>) {
        use crate::bolt::reader::bucket_root;
        use crate::bolt::writer::Writer;
        use crate::bolt::{bucket_entries, Entry};
        let mut d = Db::open_file(db).unwrap();
        let meta = *d.meta();
        let root = d.root();
        let mut top = bucket_entries(&mut d, &root).unwrap();
        let at = top.iter().position(|e| e.key == bucket).unwrap();
        let mut entries = bucket_entries(&mut d, &bucket_root(&top[at].value).unwrap()).unwrap();
        entries.retain(|e| e.key != key);
        if let Some(v) = value {
            entries.push(Entry {
                key: key.to_vec(),
                value: v.to_vec(),
                bucket: false,
            });
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let mut w = Writer::new(&meta);
        top[at].value = w.bucket_value(&entries, 0);
        let new_root = w.tree(&top);
        drop(d);
        let file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
        w.commit(&file, &meta, new_root).unwrap();
    }

    fn hex(ids: &[u64]) -> String {
        hex_list(ids)
    }

    #[test]
    fn a_restored_dir_passes() {
        let r = Restored::new(None);
        let ok = r.check().unwrap();
        assert_eq!(
            ok,
            "members = WAL = .snap (2), consistent index 2, term 1, schema 3.5 opens on etcd 3.6, WAL snapshot at index 2"
        );
        let mut r = Restored::new(Some("3.7.0"));
        assert!(r.check().unwrap().contains("schema 3.7 opens on etcd 3.7"));
        r.target = Some(Release::new(3, 5, 30));
        assert!(r.check().unwrap().contains("no schema check (etcd 3.5)"));
    }

    /// A mismatch names what the restore wrote, so the message is built from the sorted IDs.
    fn names(r: &Restored, what: &str, found: &[u64]) -> String {
        let mut want = r.ids.clone();
        want.sort_unstable();
        let mut found = found.to_vec();
        found.sort_unstable();
        format!(
            "{what} names {} where the restore wrote {}",
            hex(&found),
            hex(&want)
        )
    }

    #[test]
    fn members_and_versions_other_than_the_restore_wrote_are_refused() {
        let r = Restored::new(None);
        set(&r.db, b"members", &r.key(1), None);
        set(&r.db, b"meta", b"storageVersion", Some(b"3.6.0"));
        assert_eq!(
            r.check().unwrap_err(),
            [
                names(&r, "the members bucket", &r.ids[..1]),
                "meta/storageVersion is Some(\"3.6.0\"); the snapshot has None".to_string(),
            ]
        );
    }

    #[test]
    fn wal_conf_changes_naming_other_members_are_refused() {
        let r = Restored::new(None);
        let other = plan(
            "m1",
            "m1=http://127.0.0.1:12380,m3=http://127.0.0.3:12380",
            "tok",
            "http://127.0.0.1:12380",
        )
        .unwrap();
        let changes: Vec<u64> = other.members.iter().map(|x| x.id).collect();
        // The snapshot record still names the restore's members: only the entries differ.
        let wal = crate::wal::records_with(&other, Some(&conf_state(&r.ids)));
        std::fs::write(&r.wal, wal).unwrap();
        let want = names(&r, "the WAL's ConfChange entries", &changes);
        assert_eq!(r.check().unwrap_err(), [want]);
    }

    #[test]
    fn wal_snapshot_voters_other_than_the_members_are_refused() {
        let r = Restored::new(None);
        let wal = crate::wal::records_with(&r.m, Some(&conf_state(&r.ids[..1])));
        std::fs::write(&r.wal, wal).unwrap();
        let want = names(&r, "the last WAL snapshot's voters", &r.ids[..1]);
        assert_eq!(r.check().unwrap_err(), [want]);
    }

    #[test]
    fn snap_voters_other_than_the_members_are_refused() {
        let r = Restored::new(None);
        std::fs::write(
            &r.snap,
            crate::snap::snap_with(&r.m, &conf_state(&r.ids[1..])),
        )
        .unwrap();
        let want = names(&r, "the .snap file's voters", &r.ids[1..]);
        assert_eq!(r.check().unwrap_err(), [want]);
    }

    /// `raftpb.ConfState{voters, learners}`.
    fn with_learners(voters: &[u64], learners: &[u64]) -> Message {
        Message::new()
            .repeated_uint(1, voters)
            .repeated_uint(2, learners)
            .boolean(5, false)
    }

    #[test]
    fn learners_are_refused_in_members_wal_and_snap() {
        let r = Restored::new(None);
        let mut learner = r.member(1);
        learner["isLearner"] = true.into();
        let value = serde_json::to_vec(&learner).unwrap();
        set(&r.db, b"members", &r.key(1), Some(&value));
        let one = hex(&r.ids[1..]);
        assert_eq!(
            r.check().unwrap_err(),
            [format!("the members bucket has learners {one}")]
        );

        let r = Restored::new(None);
        let (voters, learners) = (&r.ids[..1], &r.ids[1..]);
        let snap = crate::snap::snap_with(&r.m, &with_learners(voters, learners));
        std::fs::write(&r.snap, snap).unwrap();
        assert_eq!(
            r.check().unwrap_err(),
            [
                names(&r, "the .snap file's voters", voters),
                format!("the .snap file has learners {one}"),
            ]
        );

        let r = Restored::new(None);
        let wal = crate::wal::records_with(&r.m, Some(&with_learners(voters, learners)));
        std::fs::write(&r.wal, wal).unwrap();
        assert_eq!(
            r.check().unwrap_err(),
            [
                names(&r, "the last WAL snapshot's voters", voters),
                format!("the last WAL snapshot has learners {one}"),
            ]
        );
    }

    #[test]
    fn consistent_index_below_the_wal_snapshot_is_refused() {
        let r = Restored::new(None);
        set(
            &r.db,
            b"meta",
            b"consistent_index",
            Some(&1u64.to_be_bytes()),
        );
        assert_eq!(
            r.check().unwrap_err(),
            ["meta/consistent_index 1 is below the WAL snapshot index 2"]
        );
    }

    #[test]
    fn term_0_is_refused() {
        // With storageVersion the schema is known without the term: only the term is wrong.
        let r = Restored::new(Some("3.6.0"));
        set(&r.db, b"meta", b"term", Some(&0u64.to_be_bytes()));
        assert_eq!(r.check().unwrap_err(), ["meta/term is missing or 0"]);
    }

    #[test]
    fn data_of_no_detectable_schema_is_refused() {
        // No storageVersion and no term: etcd 3.6 cannot say which schema the data has.
        let r = Restored::new(None);
        set(&r.db, b"meta", b"term", None);
        assert_eq!(
            r.check().unwrap_err(),
            [
                "meta/term is missing or 0",
                "etcd 3.6 cannot detect the schema version: no meta/storageVersion and meta/term is 0 (its Migrate fails: \"cannot detect storage schema version: missing term information\")",
            ]
        );
    }

    #[test]
    fn a_schema_newer_than_the_target_is_refused() {
        let mut r = Restored::new(Some("3.7.0"));
        r.target = Some(Release::new(3, 6, 5));
        assert_eq!(
            r.check().unwrap_err(),
            ["etcd 3.6 refuses schema 3.7 (meta/storageVersion 3.7.0): version \"3.7.0\" is not supported"]
        );
        let mut r = Restored::new(Some("3.8.0"));
        r.target = Some(Release::new(3, 7, 1));
        assert_eq!(
            r.check().unwrap_err(),
            ["etcd 3.7 refuses schema 3.8 (meta/storageVersion 3.8.0): version \"3.8.0\" is not supported"]
        );
        // No target: checked for the release the data needs, which opens it.
        r.target = None;
        assert!(r.check().unwrap().contains("schema 3.8 opens on etcd 3.8"));
    }

    #[test]
    fn a_member_value_that_is_not_member_json_is_refused() {
        let r = Restored::new(None);
        set(&r.db, b"members", &r.key(0), Some(b"{\"id\":\"m1\"}"));
        let problems = r.check().unwrap_err();
        let key = String::from_utf8(r.key(0)).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(
            p.starts_with(&format!(
                "members bucket, key {key}: member JSON: invalid type"
            )) && p.ends_with("(not etcd's Member JSON)"),
            "{p}"
        );
    }

    #[test]
    fn a_member_key_other_than_its_json_id_is_refused() {
        let r = Restored::new(None);
        // Member 1's JSON under member 0's key: the keys still name the restore's members.
        let value = serde_json::to_vec(&r.member(1)).unwrap();
        set(&r.db, b"members", &r.key(0), Some(&value));
        assert_eq!(
            r.check().unwrap_err(),
            [format!(
                "the members bucket holds member {:x} (its key) whose JSON says id {:x}",
                r.ids[0], r.ids[1]
            )]
        );
        let r = Restored::new(None);
        let value = serde_json::to_vec(&r.member(1)).unwrap();
        set(&r.db, b"members", b"+m1", Some(&value));
        assert_eq!(
            r.check().unwrap_err(),
            ["the members bucket key +m1 is not a member ID in hex"]
        );
    }
}
