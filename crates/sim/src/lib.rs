//! Deterministic simulation of a zooid ensemble: 3 or 5 voters and an observer, each the
//! production [`Member`](zooid_member::Member) (node core, tree, election, Zab roles, txn and
//! snapshot encodings) over a simulated network, disk and clock, with faults, while clients
//! speak the client protocol to them; invariants are checked as it runs and the clients'
//! histories at the end. One seed fixes a whole run (timing, faults, workload), so a failure
//! replays exactly.
//!
//! ```text
//! cluster.rs   production members, clients and faults (the ensemble's main test)
//! linear.rs    the history checker: linearizable registers, sequential names
//! history.rs   the same checker over histories the real-process fault harness recorded
//! election.rs  Fast Leader Election alone, under harsher election-port faults, with a
//!              minimal stand-in for Zab after deciding
//! ensemble.rs  what the election simulation is made of: members, the election port, rng
//! clock.rs     simulated time: the event queue
//! net.rs       cut links, partitions; the election port
//! stats.rs     what runs did, counted
//! ```
//!
//! Running it:
//!
//! ```text
//! cargo test -p zooid-sim                        the CI amount: 500 election and 200 cluster
//!                                                seeds per ensemble size, the checker's tests
//! ZOOID_SIM_SEEDS=K cargo test -p zooid-sim      seeds 0..K per ensemble size instead
//! ZOOID_SIM_SEED=N ZOOID_SIM_TRACE=1 cargo test -p zooid-sim --test cluster -- --nocapture
//!                                                seed N only (both sizes), printing events
//! cargo run --release -p zooid-sim -- --seeds 20000        the nightly amount
//! cargo run --release -p zooid-sim -- --which cluster --members 5 --seed N --trace   replay one
//! ```
//!
//! This crate is a test harness: nothing in the product may depend on it.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub mod clock;
pub mod cluster;
pub mod election;
pub mod ensemble;
pub mod history;
pub mod linear;
pub mod net;
pub mod rng;
pub mod stats;

pub use stats::Stats;

/// Which simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Which {
    Election,
    Cluster,
}

impl Which {
    pub const ALL: [Which; 2] = [Which::Election, Which::Cluster];

    pub fn name(self) -> &'static str {
        match self {
            Which::Election => "election",
            Which::Cluster => "cluster",
        }
    }

    pub fn parse(s: &str) -> Option<Which> {
        Which::ALL.into_iter().find(|w| w.name() == s)
    }

    /// Seeds per ensemble size `cargo test` runs.
    pub fn ci_seeds(self) -> u64 {
        match self {
            Which::Election => 500,
            Which::Cluster => 200,
        }
    }
}

impl fmt::Display for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Ensemble sizes (voters; one observer joins them) the simulations accept.
pub const VOTERS: std::ops::RangeInclusive<usize> = 3..=9;

/// Run `seed` of simulation `which` with `voters` voters and an observer; `trace` prints its
/// events. Panics with `seed N: ...` when an invariant breaks (or a protocol core panics).
pub fn run(which: Which, voters: usize, seed: u64, trace: bool) -> Stats {
    assert!(
        VOTERS.contains(&voters),
        "{voters} voters: not in {VOTERS:?}"
    );
    match which {
        Which::Election => election::Sim::new(seed, voters, trace).run(),
        Which::Cluster => cluster::Cluster::new(seed, voters, trace).run(),
    }
}

/// A run that broke an invariant, or in which a protocol core panicked.
#[derive(Debug, Clone)]
pub struct Failure {
    pub which: Which,
    pub voters: usize,
    pub seed: u64,
    /// The panic's message: `seed N: t=T ms: what broke` and a dump of the members, from the
    /// simulation's own checks; the bare message from anywhere else.
    pub message: String,
}

impl Failure {
    /// The command that replays this run with its events printed.
    pub fn replay_command(&self) -> String {
        format!(
            "cargo run --release -p zooid-sim -- --which {} --members {} --seed {} --trace",
            self.which, self.voters, self.seed
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} simulation, {} voters + 1 observer, seed {} failed: {}\n  replay: {}\n  \
             or: ZOOID_SIM_SEED={} ZOOID_SIM_TRACE=1 cargo test -p zooid-sim --test {} -- \
             --nocapture",
            self.which,
            self.voters,
            self.seed,
            self.message,
            self.replay_command(),
            self.seed,
            self.which
        )
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// [`run`], with a failure returned rather than raised. The panic still reaches the panic
/// hook (which prints it, unless the caller installed a quieter one).
pub fn try_run(which: Which, voters: usize, seed: u64, trace: bool) -> Result<Stats, Failure> {
    catch_unwind(AssertUnwindSafe(|| run(which, voters, seed, trace))).map_err(|p| Failure {
        which,
        voters,
        seed,
        message: panic_message(p.as_ref()),
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

/// For `cargo test`: run the seeds the environment asks for (`ZOOID_SIM_SEED=N` only seed N,
/// else `ZOOID_SIM_SEEDS=K` seeds 0..K, else [`Which::ci_seeds`]), tracing when
/// `ZOOID_SIM_TRACE` is set; print the figures. Panics at the first failure with how to
/// replay it.
pub fn run_seeds_from_env(which: Which, voters: usize) -> Stats {
    let trace = std::env::var_os("ZOOID_SIM_TRACE").is_some();
    let seeds: Vec<u64> = match env_u64("ZOOID_SIM_SEED") {
        Some(one) => vec![one],
        None => (0..env_u64("ZOOID_SIM_SEEDS").unwrap_or(which.ci_seeds())).collect(),
    };
    let started = std::time::Instant::now();
    let mut total = Stats::default();
    for &seed in &seeds {
        match try_run(which, voters, seed, trace) {
            Ok(stats) => total.add(&stats),
            Err(failure) => panic!("{failure}"),
        }
    }
    println!(
        "{which} simulation, {voters} voters + 1 observer: {} seeds in {:.2?}\n{total}",
        seeds.len(),
        started.elapsed()
    );
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_says_how_to_replay_it() {
        let f = try_run(Which::Cluster, 2, 17, false).unwrap_err();
        assert_eq!((f.which, f.voters, f.seed), (Which::Cluster, 2, 17));
        assert!(f.message.contains("2 voters"), "{}", f.message);
        let text = f.to_string();
        assert!(
            text.contains(
                "cargo run --release -p zooid-sim -- --which cluster --members 2 --seed 17"
            ),
            "{text}"
        );
        assert!(text.contains("ZOOID_SIM_SEED=17"), "{text}");
    }

    #[test]
    fn which_parses_its_names() {
        for w in Which::ALL {
            assert_eq!(Which::parse(w.name()), Some(w));
        }
        assert_eq!(Which::parse("all"), None);
    }
}
