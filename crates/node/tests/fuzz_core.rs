//! Seeded random input to the core: well-formed requests of every type, then the same frames
//! truncated, bit-flipped and with random opcodes, across several connections, with
//! persistence acknowledged at random points. The core must never panic, and the tree's
//! digest must always equal a from-scratch recomputation. A failure prints its seed.

mod common;

use common::{addr, connect_frame, frame};
use zooid_node::{Action, Core, CoreConfig, Input};
use zooid_proto::{Acl, AuthPacket, CreateRequest, MultiOp, OpCode, ReadOp, Request, SetWatches};
use zooid_tree::{node_digest, DataTree};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

const PATHS: &[&str] = &[
    "/",
    "/a",
    "/a/b",
    "/a/b/c",
    "/b",
    "/zookeeper",
    "/zookeeper/quota",
    "bad",
    "/a/",
    "/c",
];

fn random_request(rng: &mut Rng) -> (i32, Request) {
    let path = rng.pick(PATHS).to_string();
    let acl = match rng.below(4) {
        0 => Acl::open_unsafe(),
        1 => Acl::read_unsafe(),
        2 => vec![Acl::new(31, "digest", "u:x")],
        _ => vec![],
    };
    let create = |rng: &mut Rng, op: OpCode| CreateRequest {
        op,
        path: rng.pick(PATHS).to_string(),
        data: (rng.below(5) > 0).then(|| vec![7; rng.below(20) as usize]),
        acl: acl.clone(),
        flags: rng.below(8) as i32,
        ttl: (op == OpCode::CreateTtl).then(|| rng.below(3000) as i64 - 1),
    };
    let ops = [1, 15, 19, 21];
    match rng.below(22) {
        0..=3 => {
            let op = OpCode::from_i32(*rng.pick(&ops)).unwrap();
            (op.code(), Request::Create(create(rng, op)))
        }
        4 => (
            2,
            Request::Delete {
                path,
                version: rng.below(3) as i32 - 1,
            },
        ),
        5 => (
            3,
            Request::Exists {
                path,
                watch: rng.below(2) == 0,
            },
        ),
        6 => (
            4,
            Request::GetData {
                path,
                watch: rng.below(2) == 0,
            },
        ),
        7 => (
            5,
            Request::SetData {
                path,
                data: Some(vec![1, 2]),
                version: rng.below(3) as i32 - 1,
            },
        ),
        8 => (6, Request::GetAcl { path }),
        9 => (
            7,
            Request::SetAcl {
                path,
                acl,
                version: -1,
            },
        ),
        10 => (
            8,
            Request::GetChildren {
                path,
                watch: rng.below(2) == 0,
            },
        ),
        11 => (12, Request::GetChildren2 { path, watch: true }),
        12 => (9, Request::Sync { path }),
        13 => {
            let n = rng.below(4);
            let ops = (0..n)
                .map(|_| match rng.below(4) {
                    0 => MultiOp::Create(create(rng, OpCode::Create)),
                    1 => MultiOp::Delete {
                        path: rng.pick(PATHS).to_string(),
                        version: -1,
                    },
                    2 => MultiOp::SetData {
                        path: rng.pick(PATHS).to_string(),
                        data: None,
                        version: -1,
                    },
                    _ => MultiOp::Check {
                        path: rng.pick(PATHS).to_string(),
                        version: 0,
                    },
                })
                .collect();
            (14, Request::Multi(ops))
        }
        14 => (
            22,
            Request::MultiRead(vec![
                ReadOp::GetData { path },
                ReadOp::GetChildren { path: "/".into() },
            ]),
        ),
        15 => (
            106,
            Request::AddWatch {
                path,
                mode: rng.below(3) as i32,
            },
        ),
        16 => (
            18,
            Request::RemoveWatches {
                path,
                watcher_type: rng.below(6) as i32,
            },
        ),
        17 => (
            101,
            Request::SetWatches(SetWatches {
                relative_zxid: rng.below(10) as i64,
                data: vec![path.clone()],
                exist: vec![path.clone()],
                child: vec![path],
                ..Default::default()
            }),
        ),
        18 => (
            100,
            Request::Auth(AuthPacket {
                auth_type: 0,
                scheme: rng.pick(&["digest", "ip", "nope"]).to_string(),
                auth: b"u:p".to_vec(),
            }),
        ),
        19 => (104, Request::GetAllChildrenNumber { path }),
        20 => (103, Request::GetEphemerals { prefix: path }),
        _ => (
            if rng.below(2) == 0 { -11 } else { 107 },
            if rng.below(2) == 0 {
                Request::CloseSession
            } else {
                Request::WhoAmI
            },
        ),
    }
}

fn mutate(rng: &mut Rng, mut f: Vec<u8>) -> Vec<u8> {
    match rng.below(4) {
        0 => {
            let n = rng.below(f.len() as u64 + 1) as usize;
            f.truncate(n);
        }
        1 if !f.is_empty() => {
            let i = rng.below(f.len() as u64) as usize;
            f[i] ^= 1 << rng.below(8);
        }
        2 if f.len() >= 8 => {
            let op = rng.below(300) as i32 - 20;
            f[4..8].copy_from_slice(&op.to_be_bytes());
        }
        _ => {
            let n = rng.below(12);
            for _ in 0..n {
                f.push(rng.next() as u8);
            }
        }
    }
    f
}

fn check_digest(core: &Core, seed: u64) {
    let tree: &DataTree = core.tree();
    let mut sum = 0u64;
    tree.walk(|p, n| sum = sum.wrapping_add(node_digest(p, n)));
    assert_eq!(sum as i64, tree.digest(), "digest drifted (seed {seed})");
}

fn run(seed: u64, steps: usize) -> (usize, usize) {
    let cfg = CoreConfig {
        extended_types_enabled: true,
        container_check_interval_ms: 50,
        tick_ms: 100,
        min_session_timeout_ms: 200,
        ..Default::default()
    };
    let mut now = 1_000_000i64;
    let mut core = Core::new(cfg, DataTree::new(), now);
    let mut rng = Rng(seed | 1);
    let addr = addr(40000);
    let mut next_conn = 1u64;
    let mut open: Vec<u64> = Vec::new();
    let mut unpersisted: Option<i64> = None;
    let (mut sends, mut max_nodes) = (0usize, 0usize);
    for step in 0..steps {
        now += rng.below(30) as i64;
        match rng.below(20) {
            0 => {
                let conn = next_conn;
                next_conn += 1;
                core.handle(now, Input::Connect { conn, addr });
                let mut bytes = connect_frame(0, &[0; 16], 300);
                if rng.below(5) == 0 {
                    bytes = mutate(&mut rng, bytes);
                }
                core.handle(
                    now,
                    Input::Frame {
                        conn,
                        frame: &bytes,
                    },
                );
                open.push(conn);
            }
            1 if !open.is_empty() => {
                let i = rng.below(open.len() as u64) as usize;
                let conn = open.swap_remove(i);
                core.handle(now, Input::Disconnect { conn });
            }
            2 => core.handle(now, Input::Tick),
            3 | 4 => {
                if let Some(z) = unpersisted.take() {
                    core.handle(now, Input::Persisted { zxid: z });
                }
            }
            _ if !open.is_empty() => {
                let conn = *rng.pick(&open);
                let (op, req) = random_request(&mut rng);
                let mut bytes = frame(step as i32, op, &req);
                if rng.below(4) == 0 {
                    bytes = mutate(&mut rng, bytes);
                }
                core.handle(
                    now,
                    Input::Frame {
                        conn,
                        frame: &bytes,
                    },
                );
            }
            _ => {}
        }
        for a in core.take_actions() {
            match a {
                Action::Append { zxid, .. } => unpersisted = Some(zxid),
                Action::Close { conn } => {
                    open.retain(|&c| c != conn);
                    core.handle(now, Input::Disconnect { conn });
                }
                Action::Send { .. } => sends += 1,
                Action::Forward { .. } | Action::Revalidate { .. } => {
                    panic!("seed {seed}: a standalone core forwarded to a leader")
                }
            }
        }
        max_nodes = max_nodes.max(core.tree().node_count());
        if step % 64 == 0 {
            check_digest(&core, seed);
        }
    }
    if let Some(z) = unpersisted {
        core.handle(now, Input::Persisted { zxid: z });
    }
    check_digest(&core, seed);
    (sends, max_nodes)
}

#[test]
fn random_and_mutated_requests_never_panic() {
    let seeds: u64 = std::env::var("ZOOID_FUZZ_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let (mut sends, mut max_nodes) = (0, 0);
    for seed in 0..seeds {
        let result = std::panic::catch_unwind(|| {
            run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF, 2000)
        });
        match result {
            Ok((s, n)) => {
                sends += s;
                max_nodes = max_nodes.max(n);
            }
            Err(_) => {
                panic!("core fuzz failed with seed {seed}; rerun with this seed to reproduce")
            }
        }
    }
    // The run must have reached the interesting states, not bounced off the handshake.
    assert!(sends > seeds as usize * 100, "only {sends} frames sent");
    assert!(max_nodes > 6, "the tree never grew past {max_nodes} nodes");
}
