//! `zooid-sim`: many seeds of the ensemble simulations, for nightly runs and for replaying
//! one failure with its events printed. Prints the figures of each simulation and ensemble
//! size (seeds, simulated time, faults injected by kind, elections, operations checked) and, for
//! a failure, its seed, what broke and the command that replays it. Exits 1 if any seed
//! failed, 2 on a usage error.

use std::cell::RefCell;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use zooid_sim::{try_run, Failure, Stats, Which, VOTERS};

const USAGE: &str = "\
usage: zooid-sim --check HISTORY
       zooid-sim [--which election|cluster|all] [--members N] [--seeds N] [--from S] [--jobs N]
       zooid-sim --seed S [--which election|cluster|all] [--members N] [--trace]

  --check     judge a history the fault harness recorded (tests/faults/) and exit
  --which     the simulation to run (default all)
  --members   voters in the ensemble, an observer joins them (3 or 5; default both)
  --seeds     how many seeds per simulation and ensemble size (default 10000)
  --from      the first seed (default 0)
  --seed      run this one seed only (a replay)
  --trace     print each run's events (meant for --seed)
  --jobs      threads to run seeds on (default 1)
";

/// Failures printed in full; the rest are listed by seed.
const SHOWN_FAILURES: usize = 5;

struct Args {
    which: Vec<Which>,
    members: Vec<usize>,
    first: u64,
    count: u64,
    trace: bool,
    jobs: u64,
}

/// The arguments; `None` for `--help`.
fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        which: Which::ALL.to_vec(),
        members: vec![3, 5],
        first: 0,
        count: 10_000,
        trace: false,
        jobs: 1,
    };
    let mut it = std::env::args().skip(1);
    let mut one_seed = None;
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        if flag == "--trace" {
            args.trace = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} takes a number, not {value:?}"))
        };
        match flag.as_str() {
            "--which" if value == "all" => args.which = Which::ALL.to_vec(),
            "--which" => {
                args.which = vec![Which::parse(&value).ok_or(format!(
                    "--which takes election, cluster or all, not {value:?}"
                ))?]
            }
            "--members" => {
                let n = number()? as usize;
                if !VOTERS.contains(&n) {
                    return Err(format!("--members takes 3 or 5 (at most {})", VOTERS.end()));
                }
                args.members = vec![n];
            }
            "--seeds" => args.count = number()?,
            "--from" => args.first = number()?,
            "--seed" => one_seed = Some(number()?),
            "--jobs" => args.jobs = number()?.max(1),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if let Some(seed) = one_seed {
        args.first = seed;
        args.count = 1;
    }
    Ok(Some(args))
}

thread_local! {
    /// Where the last panic on this thread happened.
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Failures are reported once, by the summary: the hook only notes where a panic happened.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        PANIC_AT.with(|p| *p.borrow_mut() = at);
    }));
}

/// One seed; a panic other than a failed check of the simulation's (an assertion in a
/// protocol core, say) says where it happened.
fn run_seed(which: Which, voters: usize, seed: u64, trace: bool) -> Result<Stats, Failure> {
    try_run(which, voters, seed, trace).map_err(|mut f| {
        let at = PANIC_AT.with(|p| p.borrow_mut().take());
        if let Some(at) = at.filter(|_| !f.message.starts_with(&format!("seed {seed}: "))) {
            f.message = format!("panicked at {at}: {}", f.message);
        }
        f
    })
}

/// Seeds `first..first + count` of one simulation and size, on `jobs` threads.
fn run_block(which: Which, voters: usize, args: &Args) -> (Stats, Vec<Failure>) {
    let next = AtomicU64::new(args.first);
    let end = args.first + args.count;
    let total = Mutex::new((Stats::default(), Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..args.jobs.min(args.count.max(1)) {
            s.spawn(|| {
                let mut stats = Stats::default();
                let mut failures = Vec::new();
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    match run_seed(which, voters, seed, args.trace) {
                        Ok(s) => stats.add(&s),
                        Err(f) => failures.push(f),
                    }
                }
                let mut t = total.lock().unwrap();
                t.0.add(&stats);
                t.1.extend(failures);
            });
        }
    });
    let (stats, mut failures) = total.into_inner().unwrap();
    failures.sort_by_key(|f| f.seed);
    (stats, failures)
}

/// `--check FILE`: judge a recorded history; 0 when it passes, 1 when it does not.
fn check(path: &str) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("zooid-sim: cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    match zooid_sim::history::judge(&text, 20_000_000) {
        Ok(j) => {
            println!(
                "history {path}: linearizable: {} registers, {} operations ({} unknown), {} \
                 sequential creates, {} registers undecided",
                j.registers, j.operations, j.unknown, j.created, j.undecided
            );
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("history {path}: VIOLATION: {why}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.len() == 3 && argv[1] == "--check" {
        return check(&argv[2]);
    }
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("zooid-sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    quiet_panics();
    let started = Instant::now();
    let mut grand = Stats::default();
    let mut failed = Vec::new();
    for &which in &args.which {
        for &voters in &args.members {
            let t = Instant::now();
            let (stats, failures) = run_block(which, voters, &args);
            let verdict = if failures.is_empty() {
                "ok".to_string()
            } else {
                format!("{} FAILED", failures.len())
            };
            println!(
                "{which}, {voters} voters + 1 observer, seeds {}..{}: {verdict} in {:.1} s",
                args.first,
                args.first + args.count,
                t.elapsed().as_secs_f64()
            );
            println!("{stats}");
            grand.add(&stats);
            failed.extend(failures);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "total: {} runs, {} failed, {} faults injected, wall time {wall:.1} s",
        grand.runs + failed.len() as u64,
        failed.len(),
        grand.faults()
    );
    if args.which.len() * args.members.len() > 1 {
        println!("{grand}");
    }
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    println!();
    for f in failed.iter().take(SHOWN_FAILURES) {
        println!("FAILED: {f}\n");
    }
    if failed.len() > SHOWN_FAILURES {
        let rest: Vec<String> = failed[SHOWN_FAILURES..]
            .iter()
            .map(|f| format!("{} {}/{}", f.which, f.voters, f.seed))
            .collect();
        println!("also failed (simulation voters/seed): {}", rest.join(", "));
    }
    ExitCode::FAILURE
}
