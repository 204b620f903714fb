//! ACL storage and checks.
//!
//! Nodes share ACL lists through a reference-counted cache, as ZooKeeper's snapshot format
//! expects (`aclRef`, with -1 meaning OPEN_ACL_UNSAFE). Permission checks follow ZooKeeper:
//! a `super` identity passes everything, `world:anyone` matches everyone, `ip` entries match the
//! client address with an optional prefix length, other schemes match ids exactly.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use zooid_proto::{Acl, Id};

/// Reference to an interned ACL list. `OPEN` is ZooKeeper's -1. Files store refs as longs;
/// an i32 keeps a node 8 bytes smaller and still counts two billion distinct lists.
pub type AclRef = i32;
pub const OPEN_ACL_REF: AclRef = -1;

/// Lists are shared (`Arc`) so a request's checks can hold a node's list without copying
/// its strings.
#[derive(Debug, Default, Clone)]
pub struct AclCache {
    by_ref: BTreeMap<AclRef, (Arc<[Acl]>, u64)>,
    by_list: BTreeMap<Arc<[Acl]>, AclRef>,
    max_ref: AclRef,
}

/// OPEN_ACL_UNSAFE, built once.
fn open_list() -> &'static Arc<[Acl]> {
    static OPEN: OnceLock<Arc<[Acl]>> = OnceLock::new();
    OPEN.get_or_init(|| Acl::open_unsafe().into())
}

impl AclCache {
    /// Intern `acl` and take a reference to it.
    pub fn intern(&mut self, acl: &[Acl]) -> AclRef {
        if acl == &open_list()[..] {
            return OPEN_ACL_REF;
        }
        if let Some(&r) = self.by_list.get(acl) {
            self.by_ref.get_mut(&r).expect("acl cache maps agree").1 += 1;
            return r;
        }
        self.max_ref += 1;
        let r = self.max_ref;
        let list: Arc<[Acl]> = acl.into();
        self.by_ref.insert(r, (list.clone(), 1));
        self.by_list.insert(list, r);
        r
    }

    /// Drop one reference; unused lists are forgotten.
    pub fn release(&mut self, r: AclRef) {
        if r == OPEN_ACL_REF {
            return;
        }
        if let Some(entry) = self.by_ref.get_mut(&r) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                let (list, _) = self.by_ref.remove(&r).expect("present");
                self.by_list.remove(&list);
            }
        }
    }

    pub fn get(&self, r: AclRef) -> Vec<Acl> {
        self.shared(r).to_vec()
    }

    /// The list behind `r`, shared; empty if there is none.
    pub fn shared(&self, r: AclRef) -> Arc<[Acl]> {
        if r == OPEN_ACL_REF {
            return open_list().clone();
        }
        self.by_ref
            .get(&r)
            .map(|(l, _)| l.clone())
            .unwrap_or_else(|| Arc::new([]))
    }

    /// `acl` as a shared list: the cache's own if it holds an equal one.
    pub fn share(&self, acl: &[Acl]) -> Arc<[Acl]> {
        if acl == &open_list()[..] {
            return open_list().clone();
        }
        match self.by_list.get_key_value(acl) {
            Some((l, _)) => l.clone(),
            None => acl.into(),
        }
    }

    pub fn with<T>(&self, r: AclRef, f: impl FnOnce(&[Acl]) -> T) -> T {
        if r == OPEN_ACL_REF {
            return f(open_list());
        }
        match self.by_ref.get(&r) {
            Some((l, _)) => f(l),
            None => f(&[]),
        }
    }

    /// Every interned list with its ref, shared, in ref order (for a snapshot written
    /// elsewhere while the cache goes on changing).
    pub fn shared_entries(&self) -> impl Iterator<Item = (AclRef, Arc<[Acl]>)> + '_ {
        self.by_ref.iter().map(|(&r, (l, _))| (r, l.clone()))
    }

    /// Every interned list with its ref, in ref order (the snapshot's ACL section).
    pub fn entries(&self) -> impl Iterator<Item = (AclRef, &[Acl])> {
        self.by_ref.iter().map(|(&r, (l, _))| (r, &l[..]))
    }

    /// Re-create an entry read from a snapshot, with no references yet; nodes loaded after
    /// it take theirs with [`AclCache::add_ref`]. Refs handed out later continue above it.
    pub fn restore(&mut self, r: AclRef, acl: Vec<Acl>) {
        if r == OPEN_ACL_REF {
            return;
        }
        self.max_ref = self.max_ref.max(r);
        let list: Arc<[Acl]> = acl.into();
        self.by_list.entry(list.clone()).or_insert(r);
        self.by_ref.insert(r, (list, 0));
    }

    /// Count one more user of `r`; false if no such list exists.
    pub fn add_ref(&mut self, r: AclRef) -> bool {
        if r == OPEN_ACL_REF {
            return true;
        }
        match self.by_ref.get_mut(&r) {
            Some(e) => {
                e.1 += 1;
                true
            }
            None => false,
        }
    }

    /// Forget lists no node uses (after a snapshot load, as ZooKeeper purges them).
    pub fn purge_unused(&mut self) {
        let unused: Vec<AclRef> = self
            .by_ref
            .iter()
            .filter(|(_, (_, n))| *n == 0)
            .map(|(&r, _)| r)
            .collect();
        for r in unused {
            if let Some((list, _)) = self.by_ref.remove(&r) {
                if self.by_list.get(&list) == Some(&r) {
                    self.by_list.remove(&list);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_ref.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ref.is_empty()
    }
}

/// Whether identities `ids` hold permission `perm` under `acl`.
pub fn check(acl: &[Acl], perm: i32, ids: &[Id]) -> bool {
    if ids.iter().any(|i| i.scheme == "super") {
        return true;
    }
    if acl.is_empty() {
        return true;
    }
    acl.iter().any(|a| {
        a.perms & perm != 0
            && ((a.id.scheme == "world" && a.id.id == "anyone")
                || ids
                    .iter()
                    .any(|i| i.scheme == a.id.scheme && id_matches(&a.id, &i.id)))
    })
}

fn id_matches(acl_id: &Id, client_id: &str) -> bool {
    match acl_id.scheme.as_str() {
        "ip" => ip_matches(&acl_id.id, client_id),
        _ => acl_id.id == client_id,
    }
}

/// `ip:a.b.c.d[/bits]` against a client address, read as ZooKeeper's
/// `IPAuthenticationProvider` reads both (see [`java_v4`]). An IPv6 client matches no
/// pattern, as in ZooKeeper 3.8 and 3.9, whose ids are IPv4 only.
pub fn ip_matches(pattern: &str, client: &str) -> bool {
    let (Some((net, bits)), Some(ip)) = (java_cidr(pattern), java_v4(client)) else {
        return false;
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    net & mask == ip & mask
}

/// Whether an `ip` ACL id is well formed (`IPAuthenticationProvider.isValid`): an IPv4
/// address with an optional prefix length of 0 to 32. ZooKeeper refuses IPv6 ids here.
pub fn ip_is_valid(id: &str) -> bool {
    java_cidr(id).is_some()
}

/// An `ip` id as (address, prefix length), 32 without one.
fn java_cidr(id: &str) -> Option<(u32, u32)> {
    let (addr, bits) = match id.split_once('/') {
        Some((a, b)) => (a, java_int(b).filter(|n| (0..=32).contains(n))? as u32),
        None => (id, 32),
    };
    Some((java_v4(addr)?, bits))
}

/// Four dot-separated numbers of 0 to 255 each, as ZooKeeper's `v4addr2Bytes` takes them
/// with Java's `Integer.parseInt`: a sign and leading zeros are allowed (`+127.0.0.01`).
/// (Java also takes non-ASCII decimal digits; those are refused here.)
fn java_v4(addr: &str) -> Option<u32> {
    let mut out = 0u32;
    let mut parts = 0;
    for part in addr.split('.') {
        parts += 1;
        let v = java_int(part).filter(|v| (0..=255).contains(v))?;
        out = (out << 8) | v as u32;
    }
    (parts == 4).then_some(out)
}

/// Java's `Integer.parseInt(s)`: an optional sign, then one or more decimal digits, within i32.
fn java_int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().try_fold(0i64, |acc, b| {
        acc.checked_mul(10)?
            .checked_add(i64::from(b - b'0'))
            .filter(|v| *v <= 1 << 31)
    })?;
    let v = if s.starts_with('-') {
        -magnitude
    } else {
        magnitude
    };
    i32::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_ranges_match() {
        assert!(ip_matches("10.0.0.0/8", "10.1.2.3"));
        assert!(!ip_matches("10.0.0.0/8", "11.1.2.3"));
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(!ip_matches("300.0.0.1", "127.0.0.1"));
        assert!(ip_is_valid("10.0.0.0/8"));
        assert!(!ip_is_valid("300.1.1.1"));
        assert!(!ip_is_valid("::1"));
        assert!(!ip_is_valid("10.0.0.0/33"));
        // Java's Integer.parseInt forms, as ZooKeeper takes them.
        assert!(ip_is_valid("+127.0.0.1"));
        assert!(ip_is_valid("0127.000.0.01/+8"));
        assert!(ip_is_valid("10.0.0.0/-0"));
        assert!(!ip_is_valid("10.0.0.0/-1"));
        assert!(!ip_is_valid("1.2.3.4."));
        assert!(!ip_is_valid("1.2.3"));
        assert!(!ip_is_valid("1.2.3.+"));
        assert!(ip_matches("0127.000.0.01/+8", "127.9.9.9"));
        assert!(!ip_matches("127.0.0.1", "0:0:0:0:0:0:0:1"));
    }

    #[test]
    fn checks_follow_schemes() {
        let acl = vec![
            Acl::new(1, "digest", "alice:x"),
            Acl::new(31, "ip", "10.0.0.0/8"),
        ];
        let alice = [Id::new("digest", "alice:x"), Id::new("ip", "127.0.0.1")];
        assert!(check(&acl, 1, &alice));
        assert!(!check(&acl, 2, &alice));
        assert!(check(&acl, 2, &[Id::new("ip", "10.9.9.9")]));
        assert!(check(&acl, 16, &[Id::new("super", "")]));
    }

    #[test]
    fn cache_refcounts() {
        let mut c = AclCache::default();
        let l = vec![Acl::new(1, "world", "anyone")];
        let r1 = c.intern(&l);
        let r2 = c.intern(&l);
        assert_eq!(r1, r2);
        assert_eq!(c.intern(&Acl::open_unsafe()), OPEN_ACL_REF);
        c.release(r1);
        assert_eq!(c.len(), 1);
        c.release(r2);
        assert_eq!(c.len(), 0);
    }
}
