//! Jute, ZooKeeper's binary record encoding.
//!
//! ```text
//! int     4 bytes big-endian two's complement
//! long    8 bytes big-endian two's complement
//! boolean 1 byte (writers emit 0/1, readers take any non-zero byte as true)
//! buffer  int length (-1 = null) then the bytes
//! ustring same as buffer, UTF-8
//! vector  int count (-1 = null) then the elements back to back
//! ```
//!
//! A record is its fields in declaration order with no tag, length or padding. The reader never
//! panics on hostile input: every length is checked against what remains, and vector capacity is
//! bounded by the bytes left, so a forged count cannot make us allocate.

use thiserror::Error;

/// Why a record could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record ends early: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("negative length {len} at offset {offset}")]
    BadLength { offset: usize, len: i32 },
    #[error("string at offset {offset} is not valid UTF-8")]
    BadUtf8 { offset: usize },
    #[error("null where a value is required at offset {offset}")]
    UnexpectedNull { offset: usize },
    #[error("{0}")]
    Invalid(&'static str),
}

pub type Result<T> = std::result::Result<T, DecodeError>;

/// A cursor over a received frame.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn read_bool(&mut self) -> Result<bool> {
        Ok(self.take(1)?[0] != 0)
    }

    pub fn read_i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_i64(&mut self) -> Result<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A buffer that may be null (length -1).
    pub fn read_opt_buffer(&mut self) -> Result<Option<&'a [u8]>> {
        let offset = self.pos;
        let len = self.read_i32()?;
        match len {
            -1 => Ok(None),
            l if l < 0 => Err(DecodeError::BadLength { offset, len }),
            l => Ok(Some(self.take(l as usize)?)),
        }
    }

    /// A buffer; null reads as empty (ZooKeeper treats them alike for data).
    pub fn read_buffer(&mut self) -> Result<&'a [u8]> {
        Ok(self.read_opt_buffer()?.unwrap_or(&[]))
    }

    pub fn read_opt_string(&mut self) -> Result<Option<String>> {
        let offset = self.pos;
        match self.read_opt_buffer()? {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b)
                .map(|s| Some(s.to_owned()))
                .map_err(|_| DecodeError::BadUtf8 { offset }),
        }
    }

    /// A string that must be present.
    pub fn read_string(&mut self) -> Result<String> {
        let offset = self.pos;
        self.read_opt_string()?
            .ok_or(DecodeError::UnexpectedNull { offset })
    }

    /// A vector; null reads as empty. `min_elem` bounds the up-front allocation.
    pub fn read_vec<T>(
        &mut self,
        min_elem: usize,
        mut f: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        Ok(self.read_opt_vec(min_elem, &mut f)?.unwrap_or_default())
    }

    pub fn read_opt_vec<T>(
        &mut self,
        min_elem: usize,
        mut f: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Option<Vec<T>>> {
        let offset = self.pos;
        let count = self.read_i32()?;
        if count == -1 {
            return Ok(None);
        }
        if count < 0 {
            return Err(DecodeError::BadLength { offset, len: count });
        }
        let count = count as usize;
        let cap = count.min(self.remaining() / min_elem.max(1));
        let mut v = Vec::with_capacity(cap);
        for _ in 0..count {
            v.push(f(self)?);
        }
        Ok(Some(v))
    }
}

/// Appends jute encodings to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    pub fn with_buf(buf: Vec<u8>) -> Self {
        Writer { buf }
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn write_bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }

    pub fn write_i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn write_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn write_buffer(&mut self, v: &[u8]) {
        self.write_len(v.len());
        self.buf.extend_from_slice(v);
    }

    pub fn write_opt_buffer(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.write_i32(-1),
            Some(b) => self.write_buffer(b),
        }
    }

    pub fn write_string(&mut self, v: &str) {
        self.write_buffer(v.as_bytes());
    }

    pub fn write_len(&mut self, len: usize) {
        let len = i32::try_from(len).expect("jute lengths are bounded by the frame limit");
        self.write_i32(len);
    }

    pub fn write_vec<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.write_len(items.len());
        for it in items {
            f(self, it);
        }
    }

    pub fn write_strings<S: AsRef<str>>(&mut self, items: &[S]) {
        self.write_len(items.len());
        for s in items {
            self.write_string(s.as_ref());
        }
    }

    /// Reserve a 4-byte frame length, to be filled by [`Writer::finish_frame`].
    pub fn begin_frame(&mut self) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        at
    }

    pub fn finish_frame(&mut self, at: usize) {
        let len = (self.buf.len() - at - 4) as i32;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// A record with a jute encoding.
pub trait Record: Sized {
    fn read(r: &mut Reader<'_>) -> Result<Self>;
    fn write(&self, w: &mut Writer);

    fn decode(bytes: &[u8]) -> Result<Self> {
        Self::read(&mut Reader::new(bytes))
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        let mut w = Writer::new();
        w.write_i32(-2);
        w.write_i64(0x0102030405060708);
        w.write_bool(true);
        w.write_string("/a");
        w.write_opt_buffer(None);
        w.write_strings(&["x", "yz"]);
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.read_i32().unwrap(), -2);
        assert_eq!(r.read_i64().unwrap(), 0x0102030405060708);
        assert!(r.read_bool().unwrap());
        assert_eq!(r.read_string().unwrap(), "/a");
        assert_eq!(r.read_opt_buffer().unwrap(), None);
        assert_eq!(r.read_vec(4, |r| r.read_string()).unwrap(), vec!["x", "yz"]);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn hostile_lengths_are_errors() {
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff, 1]);
        assert!(matches!(
            r.read_buffer(),
            Err(DecodeError::Truncated { .. })
        ));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xfe]);
        assert!(matches!(
            r.read_buffer(),
            Err(DecodeError::BadLength { .. })
        ));
        // A huge vector count with no elements behind it must not allocate or panic.
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(r.read_vec(4, |r| r.read_i32()).is_err());
        let mut r = Reader::new(&[0, 0, 0, 1, 0xc3]);
        assert!(matches!(r.read_string(), Err(DecodeError::BadUtf8 { .. })));
    }
}
