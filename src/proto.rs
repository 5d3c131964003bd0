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
}
