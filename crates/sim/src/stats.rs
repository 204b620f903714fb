//! What a run did, counted: the figures a long run reports (simulated time, faults injected
//! by kind, elections, operations checked) and the finer counters the two simulations keep. Both
//! simulations fill the same struct; a counter a simulation has no use for stays 0.
//!
//! The counters are observations only: counting never draws from the run's random numbers,
//! so adding one does not change what any seed does.

use std::fmt;

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Runs summed into these figures (one per seed and ensemble size).
    pub runs: u64,
    /// Simulated time until each run settled, summed.
    pub sim_ms: u64,
    /// Events popped from the clock's queue.
    pub events: u64,

    // Faults injected.
    /// Members crashed (volatile state lost).
    pub crashes: u64,
    /// Crashed members started again from what they had on disk.
    pub restarts: u64,
    /// Partitions of the members into two sides.
    pub partitions: u64,
    /// Single links cut.
    pub link_cuts: u64,
    /// Quorum-port connections reset (both ends see them closed).
    pub resets: u64,
    /// Crashes that tore an unsynced tail off the log.
    pub torn_tails: u64,
    /// Txns in those torn tails.
    pub torn_txns: u64,
    /// Messages lost: election notifications dropped by the network, quorum packets discarded
    /// by a reset.
    pub dropped: u64,
    /// Election notifications delivered twice.
    pub duplicated: u64,

    // Election.
    /// Election notifications delivered to a live member.
    pub delivered: u64,
    /// Members that decided (a leader, or their role under one).
    pub decisions: u64,
    /// Decisions that followed the ensemble's FOLLOWING/LEADING answers.
    pub by_ensemble: u64,
    /// Members that went back to LOOKING.
    pub look_again: u64,
    /// Decisions of another leader than a member already holds for the same round (FLE allows
    /// them; Zab repairs them).
    pub same_round_splits: u64,
    /// Elections completed: a leader established with a quorum of synced followers.
    pub elections: u64,

    // The cluster simulation (production members, clients).
    /// Reconfigs a client was told committed.
    pub reconfigs_asked: u64,
    /// Reconfig txns' configs activated (each counted once, checked against its quorums).
    pub reconfigs: u64,
    /// Writes a read-only member was sent (each must be refused).
    pub read_only_refusals: u64,
    /// DIFFs a leader served from its log, beyond its in-memory window.
    pub log_reads: u64,
    /// Learners told to TRUNC their log.
    pub trunc: u64,
    /// SNAP streams sent.
    pub snap: u64,
    /// Fsyncs that failed (the member stops, as the server does).
    pub failed_fsyncs: u64,
    /// Wall clock steps.
    pub clock_steps: u64,
    /// Changes of the disks' fsync latency.
    pub slow_disks: u64,
    /// Snapshots members wrote of their trees.
    pub snapshots: u64,
    /// Client operations whose outcome the checker judged.
    pub ops_checked: u64,
    /// Register histories the linearizability search could not decide within its budget.
    pub undecided: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        let Stats {
            runs,
            sim_ms,
            events,
            crashes,
            restarts,
            partitions,
            link_cuts,
            resets,
            torn_tails,
            torn_txns,
            dropped,
            duplicated,
            delivered,
            decisions,
            by_ensemble,
            look_again,
            same_round_splits,
            elections,
            trunc,
            snap,
            failed_fsyncs,
            clock_steps,
            slow_disks,
            snapshots,
            ops_checked,
            undecided,
            reconfigs_asked,
            reconfigs,
            read_only_refusals,
            log_reads,
        } = o;
        self.runs += runs;
        self.sim_ms += sim_ms;
        self.events += events;
        self.crashes += crashes;
        self.restarts += restarts;
        self.partitions += partitions;
        self.link_cuts += link_cuts;
        self.resets += resets;
        self.torn_tails += torn_tails;
        self.torn_txns += torn_txns;
        self.dropped += dropped;
        self.duplicated += duplicated;
        self.delivered += delivered;
        self.decisions += decisions;
        self.by_ensemble += by_ensemble;
        self.look_again += look_again;
        self.same_round_splits += same_round_splits;
        self.elections += elections;
        self.trunc += trunc;
        self.snap += snap;
        self.failed_fsyncs += failed_fsyncs;
        self.clock_steps += clock_steps;
        self.slow_disks += slow_disks;
        self.snapshots += snapshots;
        self.ops_checked += ops_checked;
        self.undecided += undecided;
        self.reconfigs_asked += reconfigs_asked;
        self.reconfigs += reconfigs;
        self.read_only_refusals += read_only_refusals;
        self.log_reads += log_reads;
    }

    /// Faults injected, all kinds together.
    pub fn faults(&self) -> u64 {
        self.crashes
            + self.partitions
            + self.link_cuts
            + self.resets
            + self.torn_tails
            + self.dropped
            + self.duplicated
            + self.failed_fsyncs
            + self.clock_steps
            + self.slow_disks
    }
}

/// `1h 02m 03s`.
fn hms(ms: u64) -> String {
    let s = ms / 1000;
    format!("{}h {:02}m {:02}s", s / 3600, s / 60 % 60, s % 60)
}

/// The summary a run of many seeds prints, one figure group a line, each line indented.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  seeds run        {}", self.runs)?;
        writeln!(
            f,
            "  simulated time   {} ms ({}), {} events",
            self.sim_ms,
            hms(self.sim_ms),
            self.events
        )?;
        writeln!(
            f,
            "  faults           crashes {}, restarts {}, partitions {}, link cuts {}, resets {}, \
             torn tails {} ({} txns), message drops {}, duplicates {}",
            self.crashes,
            self.restarts,
            self.partitions,
            self.link_cuts,
            self.resets,
            self.torn_tails,
            self.torn_txns,
            self.dropped,
            self.duplicated
        )?;
        write!(
            f,
            "  elections        {} completed (leader established)",
            self.elections
        )?;
        if self.decisions > 0 {
            write!(
                f,
                ", {} member decisions ({} by the ensemble's answers)",
                self.decisions, self.by_ensemble
            )?;
        }
        if self.look_again > 0 {
            write!(f, ", {} looked again", self.look_again)?;
        }
        if self.same_round_splits > 0 {
            write!(f, ", {} same-round splits", self.same_round_splits)?;
        }
        if self.ops_checked > 0 {
            write!(
                f,
                "\n  production       {} client operations checked ({} register histories \
                 undecided); {} failed fsyncs, {} wall clock steps, {} disk slowdowns, {} \
                 snapshots written, {} SNAPs sent, {} TRUNCs, {} DIFFs read from a leader's log",
                self.ops_checked,
                self.undecided,
                self.failed_fsyncs,
                self.clock_steps,
                self.slow_disks,
                self.snapshots,
                self.snap,
                self.trunc,
                self.log_reads
            )?;
        }
        if self.reconfigs > 0 {
            write!(
                f,
                "\n  reconfigs        {} activated and checked ({} answered OK to a client)",
                self.reconfigs, self.reconfigs_asked
            )?;
        }
        if self.read_only_refusals > 0 {
            write!(
                f,
                "\n  read-only        {} writes sent to read-only members, all refused",
                self.read_only_refusals
            )?;
        }
        Ok(())
    }
}
