//! The `.snap` file `snapshot restore` writes, byte-identical to etcdutl 3.5.1's: a raft
//! snapshot whose payload is the etcd v2 store holding the new members. Mirrors etcd-io/etcd
//! server/etcdserver/api/snap/snapshotter.go and server/etcdserver/api/v2store (its JSON).
//!
//! ```text
//! file          = snappb.Snapshot{1 crc = CRC-32C(data), 2 data = raftpb.Snapshot}
//! raftpb.Snapshot = {1 data = v2 store JSON, 2 metadata = {1 conf_state, 2 index N, 3 term 1}}
//! name          = 0000000000000001-<N as %016x>.snap
//! ```

use crate::etcd::stored_members::{raft_attributes_json, Membership};
use crate::proto::{conf_state, Message};
use crate::text::go_json_string;

/// Events the v2 store's watcher hub keeps; Go serializes the unused slots as `null`.
const EVENT_HISTORY: usize = 1000;
const NO_EXPIRY: &str = "0001-01-01T00:00:00Z";

pub fn file_name(m: &Membership) -> String {
    format!("{:016x}-{:016x}.snap", 1, m.members.len())
}

/// The file's bytes.
pub fn restore_snap(m: &Membership) -> Vec<u8> {
    let voters: Vec<u64> = m.members.iter().map(|x| x.id).collect();
    snap_with(m, &conf_state(&voters))
}

/// The `.snap` of a restore of `m` whose metadata carries `conf` (the preflight's tests write
/// one that disagrees with the members).
pub(crate) fn snap_with(m: &Membership, conf: &Message) -> Vec<u8> {
    let n = m.members.len() as u64;
    let metadata = Message::new().message(1, conf).uint(2, n).uint(3, 1);
    let raft = Message::new()
        .bytes(1, v2_store_json(m).as_bytes())
        .message(2, &metadata)
        .finish();
    Message::new()
        .uint(1, u64::from(crc32c::crc32c(&raft)))
        .bytes(2, &raft)
        .finish()
}

/// A `.snap` file read back: its raft metadata (index, term, voters, learners), the CRC
/// checked.
pub fn read_snap(bytes: &[u8]) -> Result<(u64, u64, Vec<u64>, Vec<u64>), String> {
    use crate::proto::{bytes_field, fields, read_conf_state, uint_field};
    let outer = fields(bytes).ok_or("not a snappb.Snapshot")?;
    let raft = bytes_field(&outer, 2).ok_or("no raft snapshot inside")?;
    if u64::from(crc32c::crc32c(raft)) != uint_field(&outer, 1) {
        return Err("its CRC does not match".to_string());
    }
    let raft = fields(raft).ok_or("the raft snapshot is not a message")?;
    let meta = fields(bytes_field(&raft, 2).ok_or("no metadata")?).ok_or("bad metadata")?;
    let (voters, learners) = read_conf_state(bytes_field(&meta, 1).unwrap_or_default())
        .ok_or("its ConfState is not a message")?;
    Ok((uint_field(&meta, 2), uint_field(&meta, 3), voters, learners))
}

fn node(path: &str, index: usize, value: &str, children: Option<&str>) -> String {
    format!(
        "{{\"Path\":{},\"CreatedIndex\":{index},\"ModifiedIndex\":{index},\"ExpireTime\":\"{NO_EXPIRY}\",\"Value\":{},\"Children\":{}}}",
        go_json_string(path),
        go_json_string(value),
        children.unwrap_or("null")
    )
}

/// The v2 store as Go's encoding/json writes it: members in ID order get indexes 1..N, the
/// `members` map is keyed by hex ID (sorted), the event queue has 1000 slots.
pub fn v2_store_json(m: &Membership) -> String {
    let n = m.members.len();
    let mut by_hex: Vec<(String, usize, String)> = m
        .members
        .iter()
        .enumerate()
        .map(|(i, x)| (format!("{:x}", x.id), i + 1, raft_attributes_json(x)))
        .collect();
    let events: Vec<String> = by_hex
        .iter()
        .map(|(hex, j, attrs)| {
            format!(
                "{{\"action\":\"create\",\"node\":{{\"key\":{},\"value\":{},\"modifiedIndex\":{j},\"createdIndex\":{j}}}}}",
                go_json_string(&format!("/0/members/{hex}/raftAttributes")),
                go_json_string(attrs)
            )
        })
        .chain(std::iter::repeat_n("null".to_string(), EVENT_HISTORY.saturating_sub(n)))
        .collect();
    by_hex.sort_by(|a, b| a.0.cmp(&b.0));
    let members: Vec<String> = by_hex
        .iter()
        .map(|(hex, j, attrs)| {
            let dir = format!("/0/members/{hex}");
            let attr = node(&format!("{dir}/raftAttributes"), *j, attrs, None);
            format!(
                "{}:{}",
                go_json_string(hex),
                node(
                    &dir,
                    *j,
                    "",
                    Some(&format!("{{\"raftAttributes\":{attr}}}"))
                )
            )
        })
        .collect();
    let members_dir = node(
        "/0/members",
        1,
        "",
        Some(&format!("{{{}}}", members.join(","))),
    );
    let zero = node("/0", 0, "", Some(&format!("{{\"members\":{members_dir}}}")));
    let one = node("/1", 0, "", Some("{}"));
    let root = node("/", 0, "", Some(&format!("{{\"0\":{zero},\"1\":{one}}}")));
    format!(
        "{{\"Root\":{root},\"WatcherHub\":{{\"EventHistory\":{{\"Queue\":{{\"Events\":[{}],\"Size\":{n},\"Front\":0,\"Back\":{n},\"Capacity\":{EVENT_HISTORY}}},\"StartIndex\":1,\"LastIndex\":{n}}}}},\"CurrentIndex\":{n},\"Stats\":{{\"getsSuccess\":0,\"getsFail\":0,\"setsSuccess\":0,\"setsFail\":0,\"deleteSuccess\":0,\"deleteFail\":0,\"updateSuccess\":0,\"updateFail\":0,\"createSuccess\":{n},\"createFail\":0,\"compareAndSwapSuccess\":0,\"compareAndSwapFail\":0,\"compareAndDeleteSuccess\":0,\"compareAndDeleteFail\":0,\"expireCount\":0,\"watchers\":0}},\"CurrentVersion\":2}}",
        events.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::stored_members::membership_from_flags as plan;
    use crate::units::hex;
    use sha2::{Digest, Sha256};

    // Sizes and sha256 of the .snap files etcdutl 3.5.1 wrote for the same flags.
    #[test]
    fn snap_files_are_etcdutls() {
        let ic = "m1=http://127.0.0.1:12380,m2=http://127.0.0.2:12380,m3=http://127.0.0.3:12380";
        let m = plan("m2", ic, "tok-restore", "http://127.0.0.2:12380").unwrap();
        assert_eq!(v2_store_json(&m).len(), 7517);
        let snap = restore_snap(&m);
        assert_eq!(snap.len(), 7571);
        assert_eq!(
            hex(&Sha256::digest(&snap)),
            "001844838b3918739757befb257592701d813badbe7ae052485c705635e2a167"
        );
        assert_eq!(file_name(&m), "0000000000000001-0000000000000003.snap");

        let d = plan(
            "default",
            "default=http://localhost:2380",
            "etcd-cluster",
            "http://localhost:2380",
        )
        .unwrap();
        let snap = restore_snap(&d);
        assert_eq!(snap.len(), 6490);
        assert_eq!(
            hex(&Sha256::digest(&snap)),
            "391e233526d2ed237b95d33b9d3c7975cf3db23b1913a478baacdeee4177b533"
        );
    }

    #[test]
    fn snap_reads_back() {
        let ic = "m1=http://127.0.0.1:12380,m2=http://127.0.0.2:12380,m3=http://127.0.0.3:12380";
        let m = plan("m2", ic, "tok-restore", "http://127.0.0.2:12380").unwrap();
        let ids: Vec<u64> = m.members.iter().map(|x| x.id).collect();
        let snap = restore_snap(&m);
        assert_eq!(read_snap(&snap), Ok((3, 1, ids, Vec::new())));
        let mut bad = snap.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        assert!(read_snap(&bad).is_err());
    }
}
