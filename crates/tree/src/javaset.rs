//! A model of `java.util.HashSet<String>`'s iteration order.
//!
//! ZooKeeper hands some sets to clients, or acts on them, in the order a Java hash set
//! iterates: a session's ephemeral paths (getEphemerals, and the order closeSession deletes
//! them and fires their watches). To match it, this keeps the same table: `String.hashCode`
//! over UTF-16 units, spread as `h ^ (h >>> 16)`, buckets `hash & (capacity - 1)` in
//! insertion order, doubling past 3/4 load (and, as Java does instead of treeifying a long
//! bin in a small table, when a bin reaches 9 entries below capacity 64). A clone is rebuilt
//! at `tableSizeFor(n / 0.75 + 1)` capacity in the original's iteration order, as
//! `HashMap.clone` does.

#[derive(Debug, Clone)]
pub struct JavaHashSet {
    buckets: Vec<Vec<Box<str>>>,
    len: usize,
}

fn java_hash(s: &str) -> u32 {
    let h = s
        .encode_utf16()
        .fold(0u32, |h, u| h.wrapping_mul(31).wrapping_add(u as u32));
    h ^ (h >> 16)
}

fn table_size_for(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

impl Default for JavaHashSet {
    fn default() -> Self {
        JavaHashSet::with_capacity(16)
    }
}

impl JavaHashSet {
    pub fn with_capacity(capacity: usize) -> Self {
        JavaHashSet {
            buckets: vec![Vec::new(); table_size_for(capacity)],
            len: 0,
        }
    }

    fn bucket_of(&self, s: &str) -> usize {
        java_hash(s) as usize & (self.buckets.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, s: &str) -> bool {
        self.buckets[self.bucket_of(s)].iter().any(|x| &**x == s)
    }

    pub fn insert(&mut self, s: &str) -> bool {
        let b = self.bucket_of(s);
        if self.buckets[b].iter().any(|x| &**x == s) {
            return false;
        }
        self.buckets[b].push(s.into());
        self.len += 1;
        let long_bin = self.buckets[b].len() >= 9 && self.buckets.len() < 64;
        if long_bin {
            self.grow();
        }
        if self.len * 4 > self.buckets.len() * 3 {
            self.grow();
        }
        true
    }

    pub fn remove(&mut self, s: &str) -> bool {
        let b = self.bucket_of(s);
        let Some(i) = self.buckets[b].iter().position(|x| &**x == s) else {
            return false;
        };
        self.buckets[b].remove(i);
        self.len -= 1;
        true
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.buckets);
        self.buckets = vec![Vec::new(); old.len() * 2];
        for s in old.into_iter().flatten() {
            let b = self.bucket_of(&s);
            self.buckets[b].push(s);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.buckets.iter().flatten().map(|s| &**s)
    }

    /// What `HashSet.clone()` gives: the same elements in a table sized for them.
    pub fn java_clone(&self) -> JavaHashSet {
        let mut out = JavaHashSet::with_capacity((self.len as f32 / 0.75 + 1.0) as usize);
        for s in self.iter() {
            out.insert(s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(cap: usize, ops: &[(&str, bool)]) -> Vec<String> {
        let mut s = JavaHashSet::with_capacity(cap);
        for (x, add) in ops {
            if *add {
                s.insert(x);
            } else {
                s.remove(x);
            }
        }
        s.iter().map(str::to_owned).collect()
    }

    #[test]
    fn matches_orders_observed_on_zookeeper() {
        // Children lists of ZooKeeper 3.8.0 (a HashSet of capacity 8 per node).
        let names = [
            "zookeeper",
            "a",
            "p",
            "f4",
            "c19",
            "c19b",
            "t1",
            "t3-0000000006",
            "c15",
        ];
        let ops: Vec<(&str, bool)> = names.iter().map(|n| (*n, true)).collect();
        assert_eq!(
            order(8, &ops),
            [
                "p",
                "a",
                "t3-0000000006",
                "zookeeper",
                "c15",
                "c19",
                "c19b",
                "t1",
                "f4"
            ]
        );
        let mut ops = vec![
            ("n-0000000000", true),
            ("n-0000000001", true),
            ("n-0000000001", false),
        ];
        for n in [
            "n-0000000002",
            "plain",
            "0000000004",
            "n-0000000005",
            "e-0000000006",
            "n-0000000009",
            "n-0000000008",
            "n-0000000011",
            "n-0000000010",
        ] {
            ops.push((n, true));
        }
        assert_eq!(
            order(8, &ops),
            [
                "n-0000000009",
                "e-0000000006",
                "0000000004",
                "n-0000000000",
                "plain",
                "n-0000000011",
                "n-0000000010",
                "n-0000000002",
                "n-0000000005",
                "n-0000000008"
            ]
        );
    }

    #[test]
    fn clone_keeps_elements() {
        let mut s = JavaHashSet::default();
        for i in 0..40 {
            s.insert(&format!("/e{i}"));
        }
        let c = s.java_clone();
        assert_eq!(c.len(), 40);
        assert!(c.contains("/e7"));
    }
}
