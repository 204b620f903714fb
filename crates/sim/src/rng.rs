//! The simulation's only source of randomness: splitmix64, seeded once per run. Every choice
//! (histories, delays, faults, workload) is drawn from it in event order, so one seed replays
//! one run exactly. Adding a draw anywhere changes every seed's run after it: do so knowingly
//! (the regression seeds in `tests/` name what they must still reach).

/// splitmix64: small, seedable, good enough to drive a simulation.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p` / 1000.
    pub fn permille(&mut self, p: u64) -> bool {
        self.below(1000) < p
    }
}
