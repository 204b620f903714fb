//! Adler-32, the checksum ZooKeeper puts on every txn log entry and over snapshot streams.

const MOD: u32 = 65521;

/// A running Adler-32.
#[derive(Debug, Clone, Copy)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32 { a: 1, b: 0 }
    }
}

impl Adler32 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        // 5552 bytes is the most that can be summed before the 32-bit b may overflow.
        for chunk in bytes.chunks(5552) {
            for &x in chunk {
                self.a += x as u32;
                self.b += self.a;
            }
            self.a %= MOD;
            self.b %= MOD;
        }
    }

    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }
}

/// Adler-32 of `bytes`.
pub fn adler32(bytes: &[u8]) -> u32 {
    let mut a = Adler32::new();
    a.update(bytes);
    a.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let big = vec![0xffu8; 100_000];
        let mut a = Adler32::new();
        for c in big.chunks(7) {
            a.update(c);
        }
        assert_eq!(a.value(), adler32(&big));
    }
}
