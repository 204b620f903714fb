//! A latency histogram with log-linear buckets, in the manner of HdrHistogram.
//!
//! ```text
//! value v (ns)        bucket index
//! v < 128             v                                  (exact)
//! v >= 128            e = floor(log2 v), s = e - 7
//!                     (s + 1) * 128 + ((v >> s) - 128)   (128 linear steps per power of two)
//! ```
//!
//! Every power of two is split into 128 equal buckets, so a reported value is never more than
//! 1/128 (0.8 %) above the true one, over the whole `u64` range, in 7,424 counters (58 KiB).
//! Recording is an index computation and an increment; no allocation after the first record.
//! Percentiles report the highest value of the bucket holding the rank (clamped to the exact
//! maximum), so they never understate a latency.

/// Linear steps per power of two, as a bit count.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Bucket count: the exact range below `SUB`, then one block of `SUB` for each exponent 7..=63.
pub const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Empty until the first record, so unused histograms cost nothing.
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

fn index_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let shift = e - SUB_BITS;
    let mantissa = (v >> shift) - SUB;
    ((shift as u64 + 1) * SUB + mantissa) as usize
}

/// The smallest value that lands in bucket `i`.
fn lowest_of(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = i / SUB - 1;
    (i % SUB + SUB) << shift
}

/// The largest value that lands in bucket `i`.
fn highest_of(i: usize) -> u64 {
    if (i as u64) < SUB {
        return i as u64;
    }
    let shift = i as u64 / SUB - 1;
    lowest_of(i) + ((1u64 << shift) - 1)
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Record one value (nanoseconds, by convention).
    pub fn record(&mut self, v: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
            self.min = u64::MAX;
        }
        self.counts[index_of(v)] += 1;
        self.count += 1;
        self.sum += v as u128;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at percentile `p` (0..=100): the smallest bucket bound such that at least
    /// `p` % of the records are at or below it.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        if p <= 0.0 {
            return self.min;
        }
        let p = p.min(100.0);
        // Multiply first: p99.9 of 1000 records is rank 999, not 1000 after rounding error.
        let rank = ((p * self.count as f64) / 100.0 - 1e-9).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest_of(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Add every record of `other` to this histogram.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
            self.min = u64::MAX;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        for v in 0..SUB {
            let i = index_of(v);
            assert_eq!(lowest_of(i), v);
            assert_eq!(highest_of(i), v);
        }
    }

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        for i in 0..BUCKETS - 1 {
            assert_eq!(highest_of(i) + 1, lowest_of(i + 1), "gap after bucket {i}");
            assert_eq!(index_of(lowest_of(i)), i);
            assert_eq!(index_of(highest_of(i)), i);
        }
        assert_eq!(index_of(u64::MAX), BUCKETS - 1);
        assert_eq!(highest_of(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn relative_error_is_below_one_percent() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = x >> (x % 60);
            let i = index_of(v);
            assert!(lowest_of(i) <= v && v <= highest_of(i));
            let width = highest_of(i) - lowest_of(i);
            assert!(
                width as f64 <= lowest_of(i) as f64 / 128.0 + 1.0,
                "bucket {i} too wide for {v}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.min(), 1000);
        assert_eq!(h.max(), 100_000_000);
        for (p, want) in [
            (50.0, 50_000_000.0),
            (99.0, 99_000_000.0),
            (99.9, 99_900_000.0),
        ] {
            let got = h.percentile(p) as f64;
            assert!(
                got >= want && got <= want * 1.008,
                "p{p}: got {got}, want about {want}"
            );
        }
        assert_eq!(h.percentile(100.0), 100_000_000);
        assert_eq!(h.percentile(0.0), 1000);
        assert!((h.mean() - 50_000_500.0).abs() < 1.0);
    }

    #[test]
    fn a_single_outlier_is_the_max_and_not_the_p99() {
        let mut h = Histogram::new();
        for _ in 0..999 {
            h.record(200_000);
        }
        h.record(50_000_000);
        for p in [50.0, 99.0, 99.9] {
            let v = h.percentile(p);
            assert!((200_000..=201_600).contains(&v), "p{p} = {v}");
        }
        assert_eq!(h.percentile(99.99), 50_000_000);
        assert_eq!(h.max(), 50_000_000);
    }

    #[test]
    fn merge_equals_recording_into_one() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in 0..5000u64 {
            let v = v * v * 37;
            if v % 3 == 0 {
                a.record(v);
            } else {
                b.record(v);
            }
            all.record(v);
        }
        let mut merged = Histogram::new();
        merged.merge(&a);
        merged.merge(&Histogram::new());
        merged.merge(&b);
        assert_eq!(merged.count(), all.count());
        assert_eq!(merged.min(), all.min());
        assert_eq!(merged.max(), all.max());
        for p in [1.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            assert_eq!(merged.percentile(p), all.percentile(p));
        }
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h = Histogram::new();
        assert_eq!(h.percentile(99.0), 0);
        assert_eq!(h.min(), 0);
        assert_eq!(h.max(), 0);
        assert_eq!(h.mean(), 0.0);
    }
}
