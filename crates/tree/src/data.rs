//! A znode's data behind one thin pointer: the length is stored in front of the bytes.
//!
//! A `Box<[u8]>` is a pointer and a length, 16 bytes in every node; this is 8, and `Option`
//! of it too. The 4-byte length header usually costs nothing: 100 bytes of data take the same
//! 112-byte block from the allocator with or without it.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;

/// Bytes before the data: its length, a `u32`.
const HEADER: usize = 4;

/// Owned, immutable bytes. Changing a node's data replaces the whole value.
pub struct Data(NonNull<u8>);

// SAFETY: `Data` owns its allocation outright, as a `Box<[u8]>` does, and never hands out
// mutable access to it, so moving it to or sharing it with another thread is sound.
unsafe impl Send for Data {}
// SAFETY: see above; shared access is read-only.
unsafe impl Sync for Data {}

impl Data {
    pub fn new(bytes: &[u8]) -> Data {
        // Znode data comes in frames whose length is an i32, so it always fits.
        let len = u32::try_from(bytes.len()).expect("znode data is under 4 GiB");
        let layout = Self::layout(bytes.len());
        // SAFETY: the layout's size is at least HEADER, so it is not zero.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        // SAFETY: the allocation holds HEADER + len bytes, aligned for a u32; the header and
        // the copied bytes fill it exactly, and the source cannot overlap a fresh block.
        unsafe {
            ptr.as_ptr().cast::<u32>().write(len);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr().add(HEADER), bytes.len());
        }
        Data(ptr)
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(HEADER + len, std::mem::align_of::<u32>())
            .expect("a layout under 4 GiB is valid")
    }

    pub fn len(&self) -> usize {
        // SAFETY: `new` wrote the header at the start of the allocation, aligned for a u32,
        // and nothing changes it while `self` lives.
        unsafe { self.0.as_ptr().cast::<u32>().read() as usize }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes, initialised by `new`, follow the header; they live as long as
        // `self` and are never written again.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(HEADER), self.len()) }
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `alloc` with exactly this layout (the length has not
        // changed since), and is freed only here, once.
        unsafe { dealloc(self.0.as_ptr(), Self::layout(self.len())) }
    }
}

impl Clone for Data {
    fn clone(&self) -> Data {
        Data::new(self.as_slice())
    }
}

impl Deref for Data {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Data) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Data {}

/// As the bytes would print (`[1, 2, 3]`).
impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl From<&[u8]> for Data {
    fn from(bytes: &[u8]) -> Data {
        Data::new(bytes)
    }
}

impl From<Vec<u8>> for Data {
    fn from(bytes: Vec<u8>) -> Data {
        Data::new(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_one_pointer_and_keeps_its_bytes() {
        assert_eq!(std::mem::size_of::<Data>(), 8);
        assert_eq!(std::mem::size_of::<Option<Data>>(), 8);
        for len in [0usize, 1, 3, 4, 5, 12, 100, 4096, 1 << 20] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let d = Data::from(bytes.clone());
            assert_eq!(d.len(), len);
            assert_eq!(d.is_empty(), len == 0);
            assert_eq!(&*d, &bytes[..]);
            let c = d.clone();
            drop(d);
            assert_eq!(c.as_slice(), &bytes[..]);
            assert_eq!(c, Data::from(&bytes[..]));
        }
        assert_eq!(format!("{:?}", Data::from(&b"\x01\x02"[..])), "[1, 2]");
        assert_ne!(Data::from(&b"a"[..]), Data::from(&b"b"[..]));
    }
}
