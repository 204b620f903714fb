//! Authentication schemes and session credentials.
//!
//! Digest ids are `user:base64(sha1("user:password"))`. Session passwords are not stored: like
//! ZooKeeper, every member derives them from the session id with Java's `java.util.Random`
//! seeded by `id ^ 0xB3415C00`, so a client can move to any member with the same password.

use base64::Engine;
use sha1::{Digest, Sha1};
use zooid_proto::Id;

/// `DigestAuthenticationProvider.generateDigest`.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Whether a `digest` ACL id is well formed (`user:hash`).
pub fn digest_is_valid(id: &str) -> bool {
    id.split(':').count() == 2
}

/// The name `whoAmI` reports for an id (`getUserName`).
pub fn user_name(id: &Id) -> String {
    match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or("").to_owned(),
        _ => id.id.clone(),
    }
}

/// Identities in the order ZooKeeper's hash set of them iterates (whoAmI reports that order):
/// by bucket of the jute `Id.hashCode` in a table of 16 (more as it grows), then by insertion.
pub fn java_set_order(ids: &[Id]) -> Vec<&Id> {
    fn string_hash(s: &str) -> u32 {
        s.encode_utf16()
            .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(c as u32))
    }
    let mut capacity = 16usize;
    while ids.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let bucket = |id: &Id| {
        let h = 17u32
            .wrapping_mul(37)
            .wrapping_add(string_hash(&id.scheme))
            .wrapping_mul(37)
            .wrapping_add(string_hash(&id.id));
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    };
    let mut out: Vec<&Id> = ids.iter().collect();
    out.sort_by_key(|id| bucket(id));
    out
}

/// ZooKeeper's session password: 16 bytes of `new Random(id ^ 0xB3415C00).nextBytes`.
pub fn session_password(session_id: i64) -> [u8; 16] {
    let mut rng = JavaRandom::new(session_id ^ 0xB341_5C00);
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < out.len() {
        let mut rnd = rng.next_i32();
        for _ in 0..4.min(out.len() - i) {
            out[i] = rnd as u8;
            rnd >>= 8;
            i += 1;
        }
    }
    out
}

/// `java.util.Random`'s 48-bit linear congruential generator.
struct JavaRandom {
    seed: u64,
}

impl JavaRandom {
    const MULT: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;

    fn new(seed: i64) -> Self {
        JavaRandom {
            seed: (seed as u64 ^ Self::MULT) & Self::MASK,
        }
    }

    fn next_i32(&mut self) -> i32 {
        self.seed = (self.seed.wrapping_mul(Self::MULT).wrapping_add(0xB)) & Self::MASK;
        (self.seed >> 16) as u32 as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_zookeeper() {
        // zkCli's documented example: super:admin.
        assert_eq!(
            digest_id("super:admin"),
            "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="
        );
    }

    #[test]
    fn identities_iterate_in_java_hash_order() {
        // Both orders were observed on ZooKeeper 3.8.0.
        let ip = Id::new("ip", "127.0.0.1");
        let a = Id::new("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
        let b = Id::new("digest", "alice:V55/p2T0OpjQ+low3NVAH4aLvm0=");
        assert_eq!(java_set_order(&[ip.clone(), a.clone()]), vec![&a, &ip]);
        assert_eq!(java_set_order(&[ip.clone(), b.clone()]), vec![&ip, &b]);
    }

    #[test]
    fn java_random_matches_java() {
        // new java.util.Random(42).nextInt() == -1170105035
        let mut r = JavaRandom::new(42);
        assert_eq!(r.next_i32(), -1170105035);
        assert_eq!(session_password(1).len(), 16);
    }
}
