//! Production members (the server's `Member`, with its real core, tree and encodings)
//! through faults, with clients whose histories are checked: the CI amount of seeds and the
//! regression seeds (see the crate's docs for more, and for replaying one).

use zooid_sim::{run, run_seeds_from_env, Which};

#[test]
fn three_voters_and_an_observer_serve_linearizable_histories_through_faults() {
    let stats = run_seeds_from_env(Which::Cluster, 3);
    assert!(stats.ops_checked > 0);
}

#[test]
fn five_voters_and_an_observer_serve_linearizable_histories_through_faults() {
    let stats = run_seeds_from_env(Which::Cluster, 5);
    assert!(stats.ops_checked > 0);
}

#[test]
fn a_seed_replays_identically() {
    let a = run(Which::Cluster, 3, 7, false);
    let b = run(Which::Cluster, 3, 7, false);
    assert_eq!(a, b);
}

/// The checks catch a member whose acknowledged writes are not durable: with every fsync
/// reporting success and keeping nothing, crashes lose acknowledged writes, and some seed
/// among the first few hundred fails on it.
#[test]
fn the_checks_catch_acknowledgement_before_fsync() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let found = (0..400).find_map(|seed| {
        let run = || {
            zooid_sim::cluster::Cluster::new(seed, 3, false)
                .with_lying_fsync()
                .run()
        };
        catch_unwind(AssertUnwindSafe(run)).err().map(|p| {
            let text = p.downcast_ref::<String>().cloned().unwrap_or_default();
            (seed, text)
        })
    });
    std::panic::set_hook(quiet);
    let (seed, text) = found.expect("no seed caught the lying fsync");
    println!(
        "seed {seed} caught it: {}",
        text.lines().next().unwrap_or("")
    );
    assert!(text.starts_with(&format!("seed {seed}:")), "{text}");
}
