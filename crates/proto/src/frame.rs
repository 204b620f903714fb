//! Incremental frame decoding: `int len` then `len` bytes, in both directions.
//!
//! The decoder never buffers more than `max_len + 4` bytes for one frame; a length that is
//! negative or above the limit is an error and the caller closes the connection (ZooKeeper's
//! "Len error"). Before a session exists the first four bytes may instead be a four-letter word.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length {len} is outside 0..={max}")]
    BadLength { len: i64, max: u32 },
}

/// Take one complete frame from the front of `buf`, if there is one. Returns the payload range.
pub fn next_frame(buf: &[u8], max_len: u32) -> Result<Option<(usize, usize)>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 || len as u32 > max_len {
        return Err(FrameError::BadLength {
            len: len as i64,
            max: max_len,
        });
    }
    let end = 4 + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((4, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere() {
        let msg = [0, 0, 0, 3, b'a', b'b', b'c', 0];
        for cut in 0..4 {
            assert_eq!(next_frame(&msg[..cut], 10), Ok(None));
        }
        assert_eq!(next_frame(&msg[..6], 10), Ok(None));
        assert_eq!(next_frame(&msg, 10), Ok(Some((4, 7))));
        assert!(next_frame(&[0xff, 0, 0, 0], 10).is_err());
        assert!(next_frame(&[0, 0, 0, 11], 10).is_err());
    }
}
