//! Fast Leader Election through faults: the CI amount of seeds (see the crate's docs for
//! more, and for replaying one).

use zooid_sim::{run, run_seeds_from_env, Which};

#[test]
fn three_voters_and_an_observer_elect_one_leader_through_faults() {
    run_seeds_from_env(Which::Election, 3);
}

#[test]
fn five_voters_and_an_observer_elect_one_leader_through_faults() {
    run_seeds_from_env(Which::Election, 5);
}

#[test]
fn a_seed_replays_identically() {
    let a = run(Which::Election, 5, 42, false);
    let b = run(Which::Election, 5, 42, false);
    assert_eq!(a, b);
}
