//! A minimal protobuf writer that emits fields the way etcd's gogo-generated code does: in
//! ascending field order, with the fields gogo marks non-nullable written even when zero, and
//! repeated integers unpacked. prost's proto3 encoding would drop the zeros and break
//! byte-compatibility with etcd's WAL and `.snap` files.

/// An encoded message under construction.
#[derive(Debug, Default, Clone)]
pub struct Message(Vec<u8>);

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Message {
    pub fn new() -> Message {
        Message::default()
    }

    /// A message that will hold about `n` bytes (one allocation for a large value).
    pub fn with_capacity(n: usize) -> Message {
        Message(Vec::with_capacity(n))
    }

    /// A varint field, written even when zero.
    pub fn uint(mut self, field: u32, v: u64) -> Message {
        varint(&mut self.0, u64::from(field) << 3);
        varint(&mut self.0, v);
        self
    }

    /// A bool field, written even when false.
    pub fn boolean(self, field: u32, v: bool) -> Message {
        self.uint(field, u64::from(v))
    }

    /// Each value as its own field (unpacked repeated).
    pub fn repeated_uint(mut self, field: u32, values: &[u64]) -> Message {
        for v in values {
            self = self.uint(field, *v);
        }
        self
    }

    /// A length-delimited field (bytes or an embedded message).
    pub fn bytes(mut self, field: u32, v: &[u8]) -> Message {
        varint(&mut self.0, (u64::from(field) << 3) | 2);
        varint(&mut self.0, v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub fn message(self, field: u32, m: &Message) -> Message {
        self.bytes(field, &m.0)
    }

    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// One field read back: a varint, or length-delimited bytes (fixed-width fields are skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn read_varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// The fields of an encoded message in order, (number, value); `None` when it is not one.
pub fn fields(b: &[u8]) -> Option<Vec<(u32, Field<'_>)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let tag = read_varint(b, &mut i)?;
        let number = u32::try_from(tag >> 3).ok()?;
        match tag & 7 {
            0 => out.push((number, Field::Varint(read_varint(b, &mut i)?))),
            1 => i = i.checked_add(8).filter(|&e| e <= b.len())?,
            2 => {
                let len = usize::try_from(read_varint(b, &mut i)?).ok()?;
                let end = i.checked_add(len).filter(|&e| e <= b.len())?;
                out.push((number, Field::Bytes(&b[i..end])));
                i = end;
            }
            5 => i = i.checked_add(4).filter(|&e| e <= b.len())?,
            _ => return None,
        }
    }
    Some(out)
}

/// The varint field `number` (the last one, as protobuf reads it), 0 when absent.
pub fn uint_field(f: &[(u32, Field<'_>)], number: u32) -> u64 {
    f.iter()
        .rev()
        .find_map(|(n, v)| match v {
            Field::Varint(x) if *n == number => Some(*x),
            _ => None,
        })
        .unwrap_or(0)
}

/// The length-delimited field `number` (the last one), if present.
pub fn bytes_field<'a>(f: &[(u32, Field<'a>)], number: u32) -> Option<&'a [u8]> {
    f.iter().rev().find_map(|(n, v)| match v {
        Field::Bytes(b) if *n == number => Some(*b),
        _ => None,
    })
}

/// Voters (field 1) and learners (field 2) of a `raftpb.ConfState`, packed or not.
pub fn read_conf_state(b: &[u8]) -> Option<(Vec<u64>, Vec<u64>)> {
    let mut voters = Vec::new();
    let mut learners = Vec::new();
    for (n, v) in fields(b)? {
        let list = match n {
            1 => &mut voters,
            2 => &mut learners,
            _ => continue,
        };
        match v {
            Field::Varint(x) => list.push(x),
            Field::Bytes(packed) => {
                let mut i = 0;
                while i < packed.len() {
                    list.push(read_varint(packed, &mut i)?);
                }
            }
        }
    }
    Some((voters, learners))
}

/// `raftpb.ConfState{voters (unpacked), auto_leave = false}` — the only shape restore writes.
pub fn conf_state(voters: &[u64]) -> Message {
    Message::new().repeated_uint(1, voters).boolean(5, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_fields_are_written() {
        assert_eq!(
            Message::new().uint(1, 0).uint(2, 0).finish(),
            [0x08, 0x00, 0x10, 0x00]
        );
        assert_eq!(Message::new().uint(1, 300).finish(), [0x08, 0xac, 0x02]);
        assert_eq!(conf_state(&[1, 2]).finish(), [0x08, 1, 0x08, 2, 0x28, 0]);
    }

    #[test]
    fn fields_read_back_what_was_written() {
        let m = Message::new()
            .uint(1, 300)
            .bytes(2, b"ab")
            .message(3, &conf_state(&[7, 9]))
            .finish();
        let f = fields(&m).unwrap();
        assert_eq!(uint_field(&f, 1), 300);
        assert_eq!(bytes_field(&f, 2), Some(&b"ab"[..]));
        assert_eq!(
            read_conf_state(bytes_field(&f, 3).unwrap()),
            Some((vec![7, 9], vec![]))
        );
        // Packed voters, as protobuf-go (etcd 3.7's etcdutl) writes them.
        assert_eq!(
            read_conf_state(&[0x0a, 2, 7, 9]),
            Some((vec![7, 9], vec![]))
        );
        assert_eq!(fields(&[0x0a, 5, 1]), None);
        assert_eq!(fields(&[0xff]), None);
    }
}
