//! PostgreSQL's `pgoutput` logical-decoding messages (protocol version 1), as
//! `pg_logical_slot_peek_binary_changes` returns them: one message per row of its result.
//!
//! Only what a change stream of one table needs is decoded: transaction bounds (with the commit's
//! LSN and time), relation descriptions (column names, which columns form the replica identity)
//! and the row changes, whose column values come as text (`'t'`), NULL (`'n'`) or unchanged
//! TOASTed values that were not sent (`'u'`).

/// A column value of a tuple.
#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value the server did not send.
    Unchanged,
    /// The value's text form.
    Text(Vec<u8>),
}

/// A column of a relation.
#[derive(Clone, Debug, PartialEq)]
pub struct RelColumn {
    /// Its name.
    pub name: String,
    /// Whether it is part of the replica identity (the key).
    pub key: bool,
}

/// A decoded message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A transaction begins: the LSN of its commit, its commit time (µs since 2000-01-01).
    Begin {
        /// The commit's LSN.
        final_lsn: u64,
        /// Commit time, microseconds since 2000-01-01 00:00 UTC.
        timestamp: i64,
    },
    /// The transaction commits.
    Commit {
        /// The commit's LSN.
        lsn: u64,
        /// The end of the commit record.
        end_lsn: u64,
    },
    /// A relation's description (sent before its first change in a session).
    Relation {
        /// Its OID.
        oid: u32,
        /// Schema.
        namespace: String,
        /// Name.
        name: String,
        /// Columns.
        columns: Vec<RelColumn>,
    },
    /// A row inserted.
    Insert {
        /// The relation.
        oid: u32,
        /// The new row.
        new: Vec<Datum>,
    },
    /// A row updated: its old key (when the key changed) or old row (REPLICA IDENTITY FULL).
    Update {
        /// The relation.
        oid: u32,
        /// The old key or row, if sent.
        old: Option<Vec<Datum>>,
        /// The new row.
        new: Vec<Datum>,
    },
    /// A row deleted: its key (or whole old row).
    Delete {
        /// The relation.
        oid: u32,
        /// The old key or row.
        old: Vec<Datum>,
    },
    /// Relations truncated.
    Truncate {
        /// Their OIDs.
        oids: Vec<u32>,
    },
    /// Something a single-table change stream does not use (origin, type, logical message).
    Other,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let Some(end) = end else {
            return Err(format!(
                "a message ends early ({} bytes, {} more wanted at {})",
                self.b.len(),
                n,
                self.at
            ));
        };
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        let s = self.take(2)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }
    fn i32(&mut self) -> Result<i32, String> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn i64(&mut self) -> Result<i64, String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(i64::from_be_bytes(a))
    }
    fn string(&mut self) -> Result<String, String> {
        let rest = &self.b[self.at.min(self.b.len())..];
        let Some(n) = rest.iter().position(|c| *c == 0) else {
            return Err("a string without its terminating zero".into());
        };
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.at += n + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Datum>, String> {
        let n = self.i16()?;
        let mut out = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            out.push(match self.u8()? {
                b'n' => Datum::Null,
                b'u' => Datum::Unchanged,
                b't' | b'b' => {
                    let len = self.i32()?;
                    if len < 0 {
                        return Err(format!("a value of negative length {len}"));
                    }
                    Datum::Text(self.take(len as usize)?.to_vec())
                }
                k => return Err(format!("unknown tuple value kind {:?}", k as char)),
            });
        }
        Ok(out)
    }
}

/// Decodes one message.
pub fn decode(bytes: &[u8]) -> Result<Message, String> {
    let mut r = Reader { b: bytes, at: 0 };
    let m = match r.u8()? {
        b'B' => Message::Begin {
            final_lsn: r.i64()? as u64,
            timestamp: r.i64()?,
        },
        b'C' => {
            let _flags = r.u8()?;
            Message::Commit {
                lsn: r.i64()? as u64,
                end_lsn: r.i64()? as u64,
            }
        }
        b'R' => {
            let oid = r.i32()? as u32;
            let namespace = r.string()?;
            let name = r.string()?;
            let _identity = r.u8()?;
            let n = r.i16()?;
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                let flags = r.u8()?;
                let name = r.string()?;
                let _type = r.i32()?;
                let _typmod = r.i32()?;
                columns.push(RelColumn {
                    name,
                    key: flags & 1 == 1,
                });
            }
            Message::Relation {
                oid,
                namespace,
                name,
                columns,
            }
        }
        b'I' => {
            let oid = r.i32()? as u32;
            match r.u8()? {
                b'N' => Message::Insert {
                    oid,
                    new: r.tuple()?,
                },
                k => return Err(format!("an insert with tuple kind {:?}", k as char)),
            }
        }
        b'U' => {
            let oid = r.i32()? as u32;
            let (old, new) = match r.u8()? {
                b'K' | b'O' => {
                    let old = r.tuple()?;
                    match r.u8()? {
                        b'N' => (Some(old), r.tuple()?),
                        k => return Err(format!("an update with tuple kind {:?}", k as char)),
                    }
                }
                b'N' => (None, r.tuple()?),
                k => return Err(format!("an update with tuple kind {:?}", k as char)),
            };
            Message::Update { oid, old, new }
        }
        b'D' => {
            let oid = r.i32()? as u32;
            match r.u8()? {
                b'K' | b'O' => Message::Delete {
                    oid,
                    old: r.tuple()?,
                },
                k => return Err(format!("a delete with tuple kind {:?}", k as char)),
            }
        }
        b'T' => {
            let n = r.i32()?;
            let _options = r.u8()?;
            let mut oids = Vec::new();
            for _ in 0..n.max(0) {
                oids.push(r.i32()? as u32);
            }
            Message::Truncate { oids }
        }
        b'O' | b'Y' | b'M' => Message::Other,
        k => return Err(format!("unknown message type {:?}", k as char)),
    };
    Ok(m)
}

/// An LSN from its text form (`16/B374D848`).
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// An LSN's text form.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(vals: &[Option<&str>]) -> Vec<u8> {
        let mut b = (vals.len() as i16).to_be_bytes().to_vec();
        for v in vals {
            match v {
                None => b.push(b'n'),
                Some(s) => {
                    b.push(b't');
                    b.extend_from_slice(&(s.len() as i32).to_be_bytes());
                    b.extend_from_slice(s.as_bytes());
                }
            }
        }
        b
    }

    #[test]
    fn messages_decode_and_bad_ones_are_errors() {
        let mut b = vec![b'B'];
        b.extend_from_slice(&0x1_0000_0010i64.to_be_bytes());
        b.extend_from_slice(&5i64.to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes());
        assert_eq!(
            decode(&b),
            Ok(Message::Begin {
                final_lsn: 0x1_0000_0010,
                timestamp: 5
            })
        );
        let mut r = vec![b'R'];
        r.extend_from_slice(&16385i32.to_be_bytes());
        r.extend_from_slice(b"public\0products\0d");
        r.extend_from_slice(&2i16.to_be_bytes());
        for (flag, name) in [(1u8, "sku"), (0, "price")] {
            r.push(flag);
            r.extend_from_slice(name.as_bytes());
            r.push(0);
            r.extend_from_slice(&25i32.to_be_bytes());
            r.extend_from_slice(&(-1i32).to_be_bytes());
        }
        let Ok(Message::Relation { name, columns, .. }) = decode(&r) else {
            panic!("relation");
        };
        assert_eq!(name, "products");
        assert!(columns[0].key && !columns[1].key);
        let mut u = vec![b'U'];
        u.extend_from_slice(&16385i32.to_be_bytes());
        u.push(b'K');
        u.extend_from_slice(&tuple(&[Some("a"), None]));
        u.push(b'N');
        u.extend_from_slice(&tuple(&[Some("b"), Some("1.50")]));
        assert_eq!(
            decode(&u),
            Ok(Message::Update {
                oid: 16385,
                old: Some(vec![Datum::Text(b"a".to_vec()), Datum::Null]),
                new: vec![Datum::Text(b"b".to_vec()), Datum::Text(b"1.50".to_vec())],
            })
        );
        // cut anywhere, or of an unknown kind: an error, never a panic
        for n in 0..u.len() {
            assert!(decode(&u[..n]).is_err(), "{n}");
        }
        assert!(decode(b"Z").is_err());
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("x"), None);
    }
}
