//! A Leader-role core and Learner-role cores wired together by hand, as the server wires them:
//! a learner's `Forward` becomes the leader's `Input::Forwarded`; the leader's `Append` is
//! logged and, when the test commits, the leader gets `Persisted` and every learner `Apply`;
//! a forwarded sync is answered with `SyncDone` once what the leader had proposed before it
//! is committed; `Revalidate` is answered from the leader's `revalidate`; learners' touches
//! reach the leader's `touch_session`. Clients are checked through the frames the cores send.

mod common;

use std::collections::{BTreeMap, VecDeque};

use common::{addr, connect_frame, frame, reply};
use zooid_node::{auth, Action, ConnId, Core, CoreConfig, Input, Role};
use zooid_proto::{
    Acl, AuthPacket, ConnectResponse, CreateRequest, ErrorCode, EventType, MultiOp, OpCode, Reader,
    Record, ReplyHeader, Request, Stat, Txn, TxnEntry, WatcherEvent,
};
use zooid_tree::DataTree;

const LEADER: usize = 0;
/// The first zxid of epoch 1, where an established leader numbers from.
const EPOCH1: i64 = (1 << 32) | 1;
const T0: i64 = 1_700_000_000_000;
const TIMEOUT: i32 = 10_000;

/// What a client connection received.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Frame(Vec<u8>),
    Close,
}

/// A client connection to one member, with the xid its next request gets.
#[derive(Debug, Clone, Copy)]
struct Client {
    node: usize,
    conn: ConnId,
    xid: i32,
}

fn cfg(server_id: u8) -> CoreConfig {
    CoreConfig {
        server_id,
        ..Default::default()
    }
}

/// Member 0 is the leader (or a standalone server), the others learners.
struct Ensemble {
    now: i64,
    cores: Vec<Core>,
    /// Logged by the leader, not yet committed.
    log: VecDeque<TxnEntry>,
    /// Committed, in order.
    history: Vec<TxnEntry>,
    last_proposed: i64,
    committed: i64,
    /// Forwarded syncs: the learner, and the last zxid the leader had proposed then.
    syncs: VecDeque<(usize, i64)>,
    /// Re-attaches waiting for the leader: (learner, session, timeout).
    revalidations: VecDeque<(usize, i64, i32)>,
    /// Every Forward and Revalidate, with the learner that sent it.
    forwards: Vec<(usize, Action)>,
    out: BTreeMap<(usize, ConnId), Vec<Ev>>,
    next_conn: ConnId,
}

impl Ensemble {
    fn with_cores(cores: Vec<Core>) -> Ensemble {
        Ensemble {
            now: T0,
            cores,
            log: VecDeque::new(),
            history: Vec::new(),
            last_proposed: 0,
            committed: 0,
            syncs: VecDeque::new(),
            revalidations: VecDeque::new(),
            forwards: Vec::new(),
            out: BTreeMap::new(),
            next_conn: 1,
        }
    }

    /// A leader (server 1, numbering from epoch 1) and learners with these server ids.
    fn new(learners: &[u8]) -> Ensemble {
        let mut leader = Core::with_role(cfg(1), DataTree::new(), T0, Role::Leader);
        leader.set_next_zxid(EPOCH1);
        let mut cores = vec![leader];
        for &sid in learners {
            cores.push(Core::with_role(
                cfg(sid),
                DataTree::new(),
                T0,
                Role::Learner,
            ));
        }
        Ensemble::with_cores(cores)
    }

    /// One standalone server, numbering as the ensemble's leader does.
    fn standalone(server_id: u8) -> Ensemble {
        let mut core = Core::new(cfg(server_id), DataTree::new(), T0);
        core.set_next_zxid(EPOCH1);
        Ensemble::with_cores(vec![core])
    }

    fn leader(&mut self) -> &mut Core {
        &mut self.cores[LEADER]
    }

    /// Carry out every member's actions until none is left.
    fn pump(&mut self) {
        loop {
            let mut idle = true;
            for n in 0..self.cores.len() {
                for a in self.cores[n].take_actions() {
                    idle = false;
                    self.route(n, a);
                }
            }
            if idle {
                return;
            }
        }
    }

    fn route(&mut self, n: usize, a: Action) {
        let now = self.now;
        match a {
            Action::Send { conn, frame } => self
                .out
                .entry((n, conn))
                .or_default()
                .push(Ev::Frame(frame)),
            Action::Close { conn } => {
                self.out.entry((n, conn)).or_default().push(Ev::Close);
                self.cores[n].handle(now, Input::Disconnect { conn });
            }
            Action::Append { zxid, entry } => {
                assert_ne!(self.cores[n].role(), Role::Learner, "a learner proposed");
                let e = TxnEntry::decode(&entry).expect("a log entry");
                assert_eq!(e.header.zxid, zxid);
                assert!(zxid > self.last_proposed, "zxids go up");
                self.last_proposed = zxid;
                self.log.push_back(e);
            }
            Action::Forward {
                session_id,
                cxid,
                op,
                ref body,
                ref auth,
            } => {
                assert_eq!(self.cores[n].role(), Role::Learner, "only learners forward");
                if op == OpCode::Sync.code() {
                    self.syncs.push_back((n, self.last_proposed));
                } else {
                    let from = u64::from(self.cores[n].config().server_id);
                    self.cores[LEADER].handle(
                        now,
                        Input::Forwarded {
                            from,
                            session_id,
                            cxid,
                            op,
                            body,
                            auth: auth.clone().unwrap_or_default(),
                        },
                    );
                }
                self.forwards.push((n, a));
            }
            Action::Revalidate {
                session_id,
                timeout_ms,
            } => {
                assert_eq!(self.cores[n].role(), Role::Learner, "only learners ask");
                self.revalidations.push_back((n, session_id, timeout_ms));
                self.forwards.push((n, a));
            }
        }
    }

    /// Commit everything logged (and whatever that leads to), answering forwarded syncs as
    /// the txns they wait for commit; then every member's tree must agree.
    fn commit(&mut self) {
        self.pump();
        loop {
            while self
                .syncs
                .front()
                .is_some_and(|&(_, z)| z <= self.committed)
            {
                let (n, _) = self.syncs.pop_front().expect("checked");
                self.cores[n].handle(self.now, Input::SyncDone);
                self.pump();
            }
            let Some(e) = self.log.pop_front() else { break };
            let zxid = e.header.zxid;
            self.cores[LEADER].handle(self.now, Input::Persisted { zxid });
            self.committed = zxid;
            for n in 1..self.cores.len() {
                self.cores[n].handle(self.now, Input::Apply { entry: e.clone() });
            }
            self.history.push(e);
            self.pump();
        }
        let digest = self.cores[LEADER].tree().digest();
        for (n, core) in self.cores.iter().enumerate() {
            assert_eq!(
                core.stats.digest_mismatches, 0,
                "member {n}: digest mismatch"
            );
            assert_eq!(core.tree().digest(), digest, "member {n}'s tree differs");
            assert_eq!(
                core.last_zxid(),
                self.cores[LEADER].last_zxid(),
                "member {n}"
            );
        }
    }

    /// The leader answers the re-attaches learners asked about.
    fn answer_revalidations(&mut self) {
        while let Some((n, session_id, timeout)) = self.revalidations.pop_front() {
            let from = u64::from(self.cores[n].config().server_id);
            let valid = self.cores[LEADER].revalidate(from, session_id, timeout, self.now);
            self.cores[n].handle(self.now, Input::Revalidated { session_id, valid });
            self.pump();
        }
    }

    /// Learners' touches reach the leader, time passes and every member ticks.
    fn advance(&mut self, ms: i64) {
        for n in 1..self.cores.len() {
            for (session, _) in self.cores[n].take_touched() {
                self.cores[LEADER].touch_session(session, self.now);
            }
        }
        self.now += ms;
        for n in 0..self.cores.len() {
            self.cores[n].handle(self.now, Input::Tick);
        }
        self.pump();
    }

    fn open(&mut self, node: usize) -> Client {
        let conn = self.next_conn;
        self.next_conn += 1;
        let addr = addr(40000 + conn as u16);
        self.cores[node].handle(self.now, Input::Connect { conn, addr });
        self.pump();
        Client { node, conn, xid: 1 }
    }

    fn send_raw(&mut self, c: &Client, bytes: &[u8]) {
        let input = Input::Frame {
            conn: c.conn,
            frame: bytes,
        };
        self.cores[c.node].handle(self.now, input);
        self.pump();
    }

    /// Connect with a ConnectRequest for `session` (0: a new one).
    fn connect(&mut self, node: usize, session: i64, passwd: &[u8]) -> Client {
        let c = self.open(node);
        self.send_raw(&c, &connect_frame(session, passwd, TIMEOUT));
        c
    }

    /// A client with a new, committed session.
    fn session(&mut self, node: usize) -> (Client, i64) {
        let c = self.connect(node, 0, &[0; 16]);
        self.commit();
        let ev = self.take(&c);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let resp = connect_response(&ev[0]);
        assert_ne!(resp.session_id, 0);
        (c, resp.session_id)
    }

    /// Send a request; returns its xid.
    fn send(&mut self, c: &mut Client, op: OpCode, req: &Request) -> i32 {
        let xid = c.xid;
        c.xid += 1;
        self.send_raw(c, &frame(xid, op.code(), req));
        xid
    }

    /// Send a plain create; returns its xid.
    fn send_create(&mut self, c: &mut Client, path: &str, data: &[u8], flags: i32) -> i32 {
        self.send(
            c,
            OpCode::Create,
            &create(path, data, flags, OpCode::Create),
        )
    }

    fn disconnect(&mut self, c: &Client) {
        self.cores[c.node].handle(self.now, Input::Disconnect { conn: c.conn });
        self.pump();
    }

    /// What the client received since the last call.
    fn take(&mut self, c: &Client) -> Vec<Ev> {
        self.out.remove(&(c.node, c.conn)).unwrap_or_default()
    }

    /// The frames the client received since the last call; it must not have been closed.
    fn frames(&mut self, c: &Client) -> Vec<Vec<u8>> {
        self.take(c)
            .into_iter()
            .map(|e| match e {
                Ev::Frame(f) => f,
                Ev::Close => panic!("client {c:?} was closed"),
            })
            .collect()
    }

    /// The one reply the client received since the last call.
    fn one_reply(&mut self, c: &Client) -> (ReplyHeader, Vec<u8>) {
        let frames = self.frames(c);
        assert_eq!(frames.len(), 1, "expected one reply, got {frames:?}");
        let (h, body) = reply(&frames[0]);
        (h, body.to_vec())
    }
}

fn connect_response(ev: &Ev) -> ConnectResponse {
    let Ev::Frame(f) = ev else {
        panic!("expected a ConnectResponse, got {ev:?}")
    };
    ConnectResponse::decode(&f[4..]).expect("a ConnectResponse")
}

/// The refusal of a re-attach: all zero, then the connection closes.
fn is_refusal(ev: &[Ev]) -> bool {
    ev.len() == 2 && ev[1] == Ev::Close && {
        let r = connect_response(&ev[0]);
        (r.session_id, r.timeout_ms, r.passwd.as_slice()) == (0, 0, &[0u8; 16][..])
    }
}

/// The watch event in a notification frame.
fn event(f: &[u8]) -> (i32, String) {
    let (h, body) = reply(f);
    assert_eq!(h.xid, -1, "not a notification");
    let e = WatcherEvent::decode(body).expect("a watcher event");
    (e.event_type, e.path)
}

fn events(frames: &[Vec<u8>]) -> Vec<(i32, String)> {
    frames.iter().map(|f| event(f)).collect()
}

fn ev(t: EventType, path: &str) -> (i32, String) {
    (t as i32, path.into())
}

fn create(path: &str, data: &[u8], flags: i32, op: OpCode) -> Request {
    Request::Create(CreateRequest {
        op,
        path: path.into(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags,
        ttl: None,
    })
}

fn get_data(path: &str, watch: bool) -> Request {
    Request::GetData {
        path: path.into(),
        watch,
    }
}

fn set_data(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData {
        path: path.into(),
        data: Some(data.to_vec()),
        version,
    }
}

fn delete(path: &str, version: i32) -> Request {
    Request::Delete {
        path: path.into(),
        version,
    }
}

/// The data of a getData reply body.
fn data_of(body: &[u8]) -> Vec<u8> {
    let mut r = Reader::new(body);
    let data = r.read_opt_buffer().unwrap().unwrap_or_default().to_vec();
    Stat::read(&mut r).expect("a stat");
    data
}

const EPHEMERAL: i32 = 1;
const SEQUENTIAL: i32 = 2;

#[test]
fn a_session_opened_on_a_learner_is_created_through_the_leader() {
    let mut e = Ensemble::new(&[2, 3]);
    let mut c = e.connect(1, 0, &[0; 16]);
    // Sent before the session exists: it waits for the session.
    let x = e.send(
        &mut c,
        OpCode::Exists,
        &Request::Exists {
            path: "/".into(),
            watch: false,
        },
    );
    assert!(e.take(&c).is_empty(), "answered before the session exists");
    let (
        n,
        Action::Forward {
            session_id: session,
            cxid,
            op,
            body,
            auth,
        },
    ) = e.forwards.last().cloned().expect("a forward")
    else {
        panic!("expected a createSession forward")
    };
    assert_eq!((n, cxid, op), (1, 0, OpCode::CreateSession.code()));
    assert_eq!(body, TIMEOUT.to_be_bytes());
    assert_eq!(auth, None);
    assert_eq!(
        session >> 56,
        2,
        "the session id starts with the learner's id"
    );
    // The leader made the createSession txn; nothing is committed yet.
    assert_eq!(e.log.len(), 1);
    assert_eq!(e.log[0].header.session_id, session);
    assert_eq!(e.log[0].header.zxid, EPOCH1);
    assert_eq!(
        e.log[0].txn,
        Txn::CreateSession {
            timeout_ms: TIMEOUT
        }
    );
    assert_eq!(e.cores[1].tree().sessions().len(), 0);

    // Committed on the leader and applied on the other learner: still nothing.
    let entry = e.log.pop_front().expect("checked");
    let now = e.now;
    e.leader().handle(now, Input::Persisted { zxid: EPOCH1 });
    e.cores[2].handle(
        now,
        Input::Apply {
            entry: entry.clone(),
        },
    );
    e.pump();
    assert!(
        e.take(&c).is_empty(),
        "answered before the txn was applied here"
    );
    // Applied here: the ConnectResponse, then the request that waited.
    e.cores[1].handle(
        now,
        Input::Apply {
            entry: entry.clone(),
        },
    );
    e.committed = EPOCH1;
    e.history.push(entry);
    e.commit();
    let ev = e.take(&c);
    assert_eq!(ev.len(), 2, "{ev:?}");
    let resp = connect_response(&ev[0]);
    assert_eq!(resp.session_id, session);
    assert_eq!(resp.timeout_ms, TIMEOUT);
    assert_eq!(resp.passwd, auth::session_password(session));
    assert_eq!(resp.read_only, Some(false));
    let Ev::Frame(f) = &ev[1] else { panic!() };
    let (h, _) = reply(f);
    assert_eq!((h.xid, h.zxid, h.err), (x, EPOCH1, 0));
    for core in &e.cores {
        assert_eq!(core.session_count(), 1);
        assert_eq!(core.tree().sessions().get(&session), Some(&TIMEOUT));
    }

    // The other learner names its sessions after itself.
    let (_, other) = e.session(2);
    assert_eq!(other >> 56, 3);
    assert_ne!(other, session);
}

/// One client's requests, pipelined in batches, and everything it receives; with the error
/// code of each reply by xid.
fn write_script(e: &mut Ensemble, node: usize) -> (Vec<Ev>, BTreeMap<i32, i32>) {
    let mut c = e.connect(node, 0, &[0; 16]);
    e.commit();
    let send = |e: &mut Ensemble, c: &mut Client, op: OpCode, req: Request| {
        e.now += 3;
        e.send(c, op, &req);
    };
    let plain = |path: &str| {
        MultiOp::Create(CreateRequest {
            op: OpCode::Create,
            path: path.into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: None,
        })
    };
    // Each write is checked against the ones still in flight.
    send(
        e,
        &mut c,
        OpCode::Create,
        create("/a", b"1", 0, OpCode::Create),
    );
    send(
        e,
        &mut c,
        OpCode::Create,
        create("/a", b"2", 0, OpCode::Create),
    );
    let eph = create("/a/e-", b"", EPHEMERAL | SEQUENTIAL, OpCode::Create2);
    send(e, &mut c, OpCode::Create2, eph);
    send(e, &mut c, OpCode::GetData, get_data("/a", true));
    e.commit();
    send(e, &mut c, OpCode::SetData, set_data("/a", b"3", 0));
    send(e, &mut c, OpCode::SetData, set_data("/a", b"4", 0));
    let ok = Request::Multi(vec![
        plain("/b"),
        MultiOp::SetData {
            path: "/a".into(),
            data: Some(b"5".to_vec()),
            version: -1,
        },
        MultiOp::Check {
            path: "/a".into(),
            version: 2,
        },
        MultiOp::Delete {
            path: "/b".into(),
            version: 0,
        },
    ]);
    send(e, &mut c, OpCode::Multi, ok);
    let failing = Request::Multi(vec![
        plain("/c"),
        MultiOp::Delete {
            path: "/nope".into(),
            version: -1,
        },
        MultiOp::SetData {
            path: "/a".into(),
            data: None,
            version: -1,
        },
    ]);
    send(e, &mut c, OpCode::Multi, failing);
    e.commit();
    send(e, &mut c, OpCode::Delete, delete("/a", -1));
    // A create whose body is cut short, and createSession's opcode on an open session.
    let mut bad = frame(
        c.xid,
        OpCode::Create.code(),
        &create("/d", b"", 0, OpCode::Create),
    );
    bad.truncate(bad.len() - 3);
    let mut bad2 = frame(c.xid + 1, OpCode::CreateSession.code(), &Request::Ping);
    bad2.extend_from_slice(&TIMEOUT.to_be_bytes());
    c.xid += 2;
    e.send_raw(&c, &bad);
    e.send_raw(&c, &bad2);
    e.commit();
    let digest = Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: b"u:p".to_vec(),
    });
    send(e, &mut c, OpCode::Auth, digest);
    let secret = Request::Create(CreateRequest {
        op: OpCode::Create,
        path: "/s".into(),
        data: None,
        acl: vec![Acl::new(31, "auth", "")],
        flags: 0,
        ttl: None,
    });
    send(e, &mut c, OpCode::Create, secret);
    send(
        e,
        &mut c,
        OpCode::GetAcl,
        Request::GetAcl { path: "/s".into() },
    );
    send(e, &mut c, OpCode::SetData, set_data("/s", b"6", -1));
    send(
        e,
        &mut c,
        OpCode::Create,
        create("/own", b"", EPHEMERAL, OpCode::Create),
    );
    e.commit();
    let children = Request::GetChildren2 {
        path: "/".into(),
        watch: false,
    };
    send(e, &mut c, OpCode::GetChildren2, children);
    send(e, &mut c, OpCode::Delete, delete("/a/e-0000000000", -1));
    send(e, &mut c, OpCode::Delete, delete("/a", 5));
    send(e, &mut c, OpCode::Delete, delete("/a", 2));
    e.commit();
    send(e, &mut c, OpCode::CloseSession, Request::CloseSession);
    e.commit();
    let ev = e.take(&c);
    let mut errs = BTreeMap::new();
    for f in &ev[1..] {
        if let Ev::Frame(f) = f {
            let (h, _) = reply(f);
            if h.xid > 0 {
                assert!(errs.insert(h.xid, h.err).is_none(), "xid {} twice", h.xid);
            }
        }
    }
    (ev, errs)
}

#[test]
fn writes_through_a_learner_answer_as_on_a_standalone_server() {
    // The same requests at the same times from the same session id (server 2 made it).
    let mut s = Ensemble::standalone(2);
    let (expected, errs) = write_script(&mut s, 0);
    let mut e = Ensemble::new(&[2, 3]);
    let (got, got_errs) = write_script(&mut e, 1);
    let heads = |evs: &[Ev]| -> Vec<String> {
        evs.iter()
            .skip(1)
            .map(|e| match e {
                Ev::Frame(f) => format!("{:?}", reply(f).0),
                Ev::Close => "close".into(),
            })
            .collect()
    };
    assert_eq!(heads(&got), heads(&expected));
    assert_eq!(got.len(), expected.len());
    for (i, (g, x)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, x, "frame {i} differs");
    }
    assert_eq!(got_errs, errs);
    assert_eq!(e.cores[1].tree().digest(), s.cores[0].tree().digest());

    // And the standalone answers are the right ones.
    use ErrorCode as E;
    let want = [
        E::Ok,               // create /a
        E::NodeExists,       // create /a again, checked against the pending create
        E::Ok,               // ephemeral sequential create2
        E::Ok,               // getData /a
        E::Ok,               // setData /a v0
        E::BadVersion,       // setData /a v0 again: the pending version is 1
        E::Ok,               // multi
        E::Ok,               // a failed multi answers in its results
        E::NotEmpty,         // delete /a
        E::MarshallingError, // truncated create
        E::MarshallingError, // createSession on an open session
        E::Ok,               // auth
        E::Ok,               // create /s
        E::Ok,               // getAcl /s
        E::Ok,               // setData /s as its creator
        E::Ok,               // ephemeral /own
        E::Ok,               // getChildren2 /
        E::Ok,               // delete the ephemeral
        E::BadVersion,       // delete /a v5
        E::Ok,               // delete /a v2
        E::Ok,               // closeSession
    ]
    .map(E::code);
    assert_eq!(errs.values().copied().collect::<Vec<_>>(), want);
    assert_eq!(got.last(), Some(&Ev::Close));
    // The watch fired before the setData's reply.
    let notes: Vec<_> = got
        .iter()
        .filter_map(|e| match e {
            Ev::Frame(f) if reply(f).0.xid == -1 => Some(event(f)),
            _ => None,
        })
        .collect();
    assert_eq!(notes, [ev(EventType::NodeDataChanged, "/a")]);
    // closeSession took the ephemeral with it, everywhere.
    for core in &e.cores {
        assert!(core.tree().get("/own").is_none());
        assert!(core.tree().get("/s").is_some());
        assert_eq!(core.session_count(), 0);
    }
}

#[test]
fn reads_wait_behind_their_own_connections_forwarded_writes_only() {
    let mut e = Ensemble::new(&[2]);
    let (mut a, _) = e.session(1);
    let (mut b, _) = e.session(1);
    let w = e.send_create(&mut a, "/x", b"hi", 0);
    let r = e.send(&mut a, OpCode::GetData, &get_data("/x", false));
    let p = e.send(&mut a, OpCode::Ping, &Request::Ping);
    assert!(e.take(&a).is_empty(), "a read overtook a write");
    // Another connection is answered at once, from what is committed.
    e.send(&mut b, OpCode::GetData, &get_data("/x", false));
    let (h, _) = e.one_reply(&b);
    assert_eq!(h.err, ErrorCode::NoNode.code());

    e.commit();
    let frames = e.frames(&a);
    assert_eq!(frames.len(), 3, "{frames:?}");
    let (hw, body) = reply(&frames[0]);
    assert_eq!((hw.xid, hw.err), (w, 0));
    assert_eq!(Reader::new(body).read_string().unwrap(), "/x");
    let (hr, body) = reply(&frames[1]);
    assert_eq!((hr.xid, hr.zxid, hr.err), (r, hw.zxid, 0));
    assert_eq!(data_of(body), b"hi");
    let (hp, _) = reply(&frames[2]);
    assert_eq!((hp.xid, hp.err), (-2, 0), "ping {p} answered last");
    e.send(&mut b, OpCode::GetData, &get_data("/x", false));
    let (h, body) = e.one_reply(&b);
    assert_eq!((h.err, data_of(&body)), (0, b"hi".to_vec()));
}

#[test]
fn the_leader_orders_conflicting_writes_from_two_learners() {
    let mut e = Ensemble::new(&[2, 3]);
    let (mut a, _) = e.session(1);
    let (mut b, _) = e.session(2);
    let x = e.send_create(&mut a, "/r", b"a", 0);
    let y = e.send_create(&mut b, "/r", b"b", 0);
    let z = e.send(&mut b, OpCode::SetData, &set_data("/r", b"b", 0));
    let w = e.send(&mut a, OpCode::SetData, &set_data("/r", b"a", 0));
    e.commit();
    let got: Vec<_> = e.frames(&a).iter().map(|f| reply(f).0).collect();
    assert_eq!(
        got.iter().map(|h| (h.xid, h.err)).collect::<Vec<_>>(),
        [(x, 0), (w, ErrorCode::BadVersion.code())]
    );
    let got_b: Vec<_> = e.frames(&b).iter().map(|f| reply(f).0).collect();
    assert_eq!(
        got_b.iter().map(|h| (h.xid, h.err)).collect::<Vec<_>>(),
        [(y, ErrorCode::NodeExists.code()), (z, 0)]
    );
    // One zxid each, in the order the leader received them.
    let zxids = [got[0].zxid, got_b[0].zxid, got_b[1].zxid, got[1].zxid];
    assert!(zxids.windows(2).all(|p| p[1] == p[0] + 1), "{zxids:x?}");
    for core in &e.cores {
        assert_eq!(
            core.tree().get("/r").unwrap().data.as_deref(),
            Some(&b"b"[..])
        );
    }
}

#[test]
fn watches_on_one_learner_fire_for_writes_through_another_or_the_leader() {
    let mut e = Ensemble::new(&[2, 3]);
    let (mut a, _) = e.session(1);
    let (mut b, _) = e.session(2);
    let (mut l, _) = e.session(LEADER);
    let exists = Request::Exists {
        path: "/w".into(),
        watch: true,
    };
    e.send(&mut a, OpCode::Exists, &exists);
    let children = Request::GetChildren {
        path: "/".into(),
        watch: true,
    };
    e.send(&mut a, OpCode::GetChildren, &children);
    assert_eq!(e.frames(&a).len(), 2);

    let w = e.send_create(&mut b, "/w", b"", 0);
    assert!(e.take(&a).is_empty());
    e.commit();
    let mut fired = events(&e.frames(&a));
    fired.sort();
    assert_eq!(
        fired,
        [
            ev(EventType::NodeCreated, "/w"),
            ev(EventType::NodeChildrenChanged, "/")
        ]
    );
    assert_eq!(e.one_reply(&b).0.xid, w);

    e.send(&mut a, OpCode::GetData, &get_data("/w", true));
    assert_eq!(e.one_reply(&a).0.err, 0);
    let s = e.send(&mut l, OpCode::SetData, &set_data("/w", b"new", -1));
    e.commit();
    assert_eq!(
        events(&e.frames(&a)),
        [ev(EventType::NodeDataChanged, "/w")]
    );
    assert_eq!(e.one_reply(&l).0.xid, s);
    // Fired watches are gone: the next write notifies nobody.
    e.send(&mut b, OpCode::Delete, &delete("/w", -1));
    e.commit();
    assert!(e.take(&a).is_empty());
}

#[test]
fn sync_on_a_learner_is_answered_at_sync_done() {
    let mut e = Ensemble::new(&[2, 3]);
    let (mut a, _) = e.session(1);
    let (mut b, _) = e.session(2);
    // Nothing outstanding: still answered only when the leader's SYNC comes back.
    let s = e.send(&mut a, OpCode::Sync, &Request::Sync { path: "/".into() });
    let Some((1, Action::Forward { op, cxid, body, .. })) = e.forwards.last().cloned() else {
        panic!("the sync was not forwarded")
    };
    assert_eq!((op, cxid), (OpCode::Sync.code(), s));
    assert_eq!(
        Request::decode(op, &body).unwrap(),
        Request::Sync { path: "/".into() }
    );
    assert!(e.take(&a).is_empty(), "sync answered before SyncDone");
    e.commit();
    let (h, body) = e.one_reply(&a);
    assert_eq!((h.xid, h.err), (s, 0));
    assert_eq!(Reader::new(&body).read_string().unwrap(), "/");

    // A write through the other learner is in flight when the sync is forwarded: the sync's
    // answer comes after it is applied here, and a read behind the sync sees it.
    let w = e.send_create(&mut b, "/s", b"x", 0);
    let s = e.send(&mut a, OpCode::Sync, &Request::Sync { path: "/s".into() });
    let r = e.send(&mut a, OpCode::GetData, &get_data("/s", false));
    assert!(e.take(&a).is_empty());
    e.commit();
    let (hw, _) = e.one_reply(&b);
    assert_eq!(hw.xid, w);
    let frames = e.frames(&a);
    assert_eq!(frames.len(), 2);
    let (h, body) = reply(&frames[0]);
    assert_eq!((h.xid, h.zxid, h.err), (s, hw.zxid, 0));
    assert_eq!(Reader::new(body).read_string().unwrap(), "/s");
    let (h, body) = reply(&frames[1]);
    assert_eq!((h.xid, h.err), (r, 0));
    assert_eq!(data_of(body), b"x");
}

#[test]
fn reattaching_on_a_learner_asks_the_leader() {
    let mut e = Ensemble::new(&[2, 3]);
    let (a, session) = e.session(1);
    let pw = auth::session_password(session);
    e.disconnect(&a);

    // On the other learner: the leader is asked; frames sent meanwhile wait.
    let mut b = e.connect(2, session, &pw);
    assert_eq!(e.revalidations, [(2, session, TIMEOUT)]);
    assert!(matches!(
        e.forwards.last(),
        Some((2, Action::Revalidate { session_id, timeout_ms: TIMEOUT })) if *session_id == session
    ));
    let x = e.send(&mut b, OpCode::GetData, &get_data("/", false));
    let y = e.send_create(&mut b, "/e", b"", EPHEMERAL);
    assert!(e.take(&b).is_empty(), "answered before the leader did");
    assert!(e.log.is_empty(), "a write went ahead of the re-attach");
    e.answer_revalidations();
    let ev = e.take(&b);
    assert_eq!(ev.len(), 2, "{ev:?}");
    let resp = connect_response(&ev[0]);
    assert_eq!((resp.session_id, resp.timeout_ms), (session, TIMEOUT));
    assert_eq!(resp.passwd, pw);
    let Ev::Frame(f) = &ev[1] else { panic!() };
    assert_eq!((reply(f).0.xid, reply(f).0.err), (x, 0));
    e.commit();
    let (h, _) = e.one_reply(&b);
    assert_eq!((h.xid, h.err), (y, 0));
    let owner = e.cores[2].tree().stat("/e").unwrap().ephemeral_owner;
    assert_eq!(owner, session);

    // Again on the same learner while b is open there: b is closed at once.
    let mut c = e.connect(2, session, &pw);
    assert_eq!(e.take(&b), [Ev::Close]);
    assert!(e.take(&c).is_empty());
    e.answer_revalidations();
    assert_eq!(connect_response(&e.take(&c)[0]).session_id, session);

    // A wrong password is refused without asking the leader.
    let asked = e.forwards.len();
    let mut wrong = pw;
    wrong[0] ^= 1;
    let d = e.connect(1, session, &wrong);
    assert!(is_refusal(&e.take(&d)), "wrong password accepted");
    assert_eq!(e.forwards.len(), asked);
    assert!(e.revalidations.is_empty());

    // Once the session is closed, the leader says no.
    e.send(&mut c, OpCode::CloseSession, &Request::CloseSession);
    e.commit();
    assert_eq!(e.take(&c).last(), Some(&Ev::Close));
    let f = e.connect(2, session, &pw);
    assert_eq!(e.revalidations.len(), 1);
    assert!(e.take(&f).is_empty());
    e.answer_revalidations();
    assert!(is_refusal(&e.take(&f)), "a closed session re-attached");
    for core in &e.cores {
        assert_eq!(core.session_count(), 0);
        assert!(core.tree().get("/e").is_none());
    }
}

#[test]
fn a_learner_never_expires_sessions() {
    let mut e = Ensemble::new(&[2]);
    let (c, session) = e.session(1);
    e.now += 10 * TIMEOUT as i64;
    e.cores[1].handle(e.now, Input::Tick);
    assert!(e.cores[1].take_actions().is_empty());
    assert_eq!(e.cores[1].session_count(), 1);
    // The leader does; the learner closes the connection when the closeSession comes.
    let now = e.now;
    e.leader().handle(now, Input::Tick);
    e.pump();
    assert_eq!(e.log.len(), 1);
    assert_eq!(e.log[0].header.session_id, session);
    assert!(matches!(e.log[0].txn, Txn::CloseSession { .. }));
    assert!(e.take(&c).is_empty());
    e.commit();
    assert_eq!(e.take(&c), [Ev::Close]);
    assert_eq!(e.cores[1].session_count(), 0);
}

#[test]
fn an_expiry_answers_no_request_in_flight() {
    let mut e = Ensemble::new(&[2]);
    let (mut c, _) = e.session(1);
    e.now += 10 * TIMEOUT as i64;
    let now = e.now;
    e.leader().handle(now, Input::Tick);
    e.pump();
    // A write reaches the leader after its closeSession (cxid 0); the client numbers its
    // requests from 0, so the closeSession and the write share the cxid.
    c.xid = 0;
    e.send_create(&mut c, "/late", b"", 0);
    assert_eq!(e.log.len(), 2);
    assert_eq!(e.log[0].header.cxid, 0);
    let expired = ErrorCode::SessionExpired.code();
    assert_eq!(e.log[1].txn, Txn::Error { err: expired });
    e.commit();
    // The connection closes with the session; the write is not answered as a success.
    assert_eq!(e.take(&c), [Ev::Close]);
}

#[test]
fn the_leader_expires_untouched_sessions_and_learners_follow() {
    let mut e = Ensemble::new(&[2]);
    let (mut idle, i) = e.session(1);
    let (mut busy, b) = e.session(1);
    e.send_create(&mut idle, "/idle", b"", EPHEMERAL);
    e.send_create(&mut busy, "/busy", b"", EPHEMERAL);
    e.commit();
    let exists = Request::Exists {
        path: "/idle".into(),
        watch: true,
    };
    e.send(&mut busy, OpCode::Exists, &exists);
    assert_eq!(e.frames(&idle).len(), 1);
    assert_eq!(e.frames(&busy).len(), 2);

    // busy pings; its touches reach the leader. idle says nothing.
    let mut expired_at = None;
    for step in 0..3 * TIMEOUT as i64 / 2000 {
        e.send_raw(&busy, &frame(-2, OpCode::Ping.code(), &Request::Ping));
        assert_eq!(e.frames(&busy).len(), 1, "ping");
        e.advance(2000);
        if !e.log.is_empty() && expired_at.is_none() {
            expired_at = Some(step);
            assert_eq!(e.log.len(), 1);
            assert_eq!(e.log[0].header.session_id, i);
            let Txn::CloseSession { paths } = &e.log[0].txn else {
                panic!("expected a closeSession")
            };
            assert_eq!(paths.as_deref(), Some(&["/idle".to_string()][..]));
            assert!(e.take(&idle).is_empty(), "closed before the txn committed");
            e.commit();
            assert_eq!(e.take(&idle), [Ev::Close]);
            let fired = events(&e.frames(&busy));
            assert_eq!(fired, [ev(EventType::NodeDeleted, "/idle")]);
        }
    }
    let step = expired_at.expect("the idle session never expired");
    assert!((4..=6).contains(&step), "expired after {step} ticks");
    for core in &e.cores {
        assert_eq!(core.session_count(), 1);
        assert!(core.tree().get("/idle").is_none());
        assert!(core.tree().get("/busy").is_some());
        assert!(core.tree().sessions().contains_key(&b));
    }
    // busy still works.
    let x = e.send(&mut busy, OpCode::GetData, &get_data("/busy", false));
    assert_eq!(e.one_reply(&busy).0.xid, x);
}

#[test]
fn the_leader_fails_forwarded_requests_it_cannot_take() {
    let mut e = Ensemble::new(&[2]);
    let (_, session) = e.session(1);
    let body = {
        let f = frame(0, 1, &create("/x", b"", 0, OpCode::Create));
        f[8..].to_vec()
    };
    let forward = |e: &mut Ensemble, session_id: i64, cxid: i32, body: &[u8]| {
        let now = e.now;
        e.leader().handle(
            now,
            Input::Forwarded {
                from: 2,
                session_id,
                cxid,
                op: OpCode::Create.code(),
                body,
                auth: vec![],
            },
        );
        e.pump();
        let entry = e.log.back().cloned().expect("an error txn");
        e.commit();
        entry
    };
    // A session the leader does not know has expired.
    let entry = forward(&mut e, 0x0200_0000_0000_0999, 7, &body);
    assert_eq!(entry.header.session_id, 0x0200_0000_0000_0999);
    assert_eq!(entry.header.cxid, 7);
    let expired = ErrorCode::SessionExpired.code();
    assert_eq!(entry.txn, Txn::Error { err: expired });
    // A body that does not decode.
    let entry = forward(&mut e, session, 8, &body[..body.len() - 2]);
    assert_eq!(entry.header.cxid, 8);
    let marshalling = ErrorCode::MarshallingError.code();
    assert_eq!(entry.txn, Txn::Error { err: marshalling });
    for core in &e.cores {
        assert!(core.tree().get("/x").is_none());
    }

    // End to end: a learner that still has a session the leader has forgotten (say, from
    // before a leader change) lets its client back in; the leader answers its writes with
    // SESSIONEXPIRED.
    let ghost = 0x0200_0000_0000_0042;
    let mut tree = e.cores[LEADER].tree().clone();
    tree.restore_session(ghost, TIMEOUT);
    e.cores[1] = Core::with_role(cfg(2), tree, e.now, Role::Learner);
    let mut c = e.connect(1, ghost, &auth::session_password(ghost));
    assert_eq!(e.revalidations, [(1, ghost, TIMEOUT)]);
    e.revalidations.clear();
    let input = Input::Revalidated {
        session_id: ghost,
        valid: true,
    };
    e.cores[1].handle(e.now, input);
    e.pump();
    assert_eq!(connect_response(&e.take(&c)[0]).session_id, ghost);
    let x = e.send_create(&mut c, "/x", b"", 0);
    let entry = e.log.back().cloned().expect("an error txn");
    assert_eq!(
        (entry.header.cxid, &entry.txn),
        (x, &Txn::Error { err: expired })
    );
    assert!(e.take(&c).is_empty());
    e.commit();
    let (h, _) = e.one_reply(&c);
    assert_eq!((h.xid, h.err), (x, expired));
}

#[test]
fn applies_at_or_below_the_last_zxid_are_ignored() {
    let mut e = Ensemble::new(&[2]);
    let (mut c, _) = e.session(1);
    e.send_create(&mut c, "/x", b"1", 0);
    e.commit();
    e.take(&c);
    let learner = &mut e.cores[1];
    let (last, digest) = (learner.last_zxid(), learner.tree().digest());
    let mut stale = e.history.clone();
    // A different txn at an old zxid changes nothing either.
    let mut forged = e.history[1].clone();
    forged.header.zxid = 1;
    forged.txn = Txn::Delete {
        path: "/x".into(),
        container: false,
    };
    forged.header.op = OpCode::Delete.code();
    stale.push(forged);
    for entry in stale {
        learner.handle(e.now, Input::Apply { entry });
        assert!(learner.take_actions().is_empty());
        assert_eq!(
            (learner.last_zxid(), learner.tree().digest()),
            (last, digest)
        );
    }
    assert!(learner.tree().get("/x").is_some());
    // So are answers nobody asked for.
    learner.handle(e.now, Input::SyncDone);
    let input = Input::Revalidated {
        session_id: 0x42,
        valid: true,
    };
    learner.handle(e.now, input);
    assert!(learner.take_actions().is_empty());
    // And the learner goes on as before.
    e.send(&mut c, OpCode::SetData, &set_data("/x", b"2", 0));
    e.commit();
    assert_eq!(e.one_reply(&c).0.err, 0);
}

#[test]
fn into_tree_keeps_the_data_and_drops_the_watches() {
    let mut e = Ensemble::new(&[2]);
    let (mut a, session) = e.session(1);
    e.send_create(&mut a, "/d", b"data", 0);
    e.commit();
    e.send(&mut a, OpCode::GetData, &get_data("/d", true));
    let children = Request::GetChildren {
        path: "/".into(),
        watch: true,
    };
    e.send(&mut a, OpCode::GetChildren, &children);
    assert_eq!(e.frames(&a).len(), 3);
    assert!(e.cores[1].tree().watches.contains(session, "/d", 2));
    let (last, digest) = (e.cores[1].last_zxid(), e.cores[1].tree().digest());

    let tree = e.cores.remove(1).into_tree();
    assert_eq!(tree.get("/d").unwrap().data.as_deref(), Some(&b"data"[..]));
    assert_eq!((tree.last_zxid(), tree.digest()), (last, digest));
    assert_eq!(tree.watches.total(), 0);
    assert!(tree.sessions().contains_key(&session));

    // The next role's core: the client re-attaches and reads the data, and is told about
    // changes only once it watches again.
    let next = Core::with_role(cfg(2), tree, e.now, Role::Leader);
    let mut n = Ensemble::with_cores(vec![next]);
    n.now = e.now;
    let mut b = n.connect(0, session, &auth::session_password(session));
    assert_eq!(connect_response(&n.take(&b)[0]).session_id, session);
    n.send(&mut b, OpCode::GetData, &get_data("/d", false));
    let (h, body) = n.one_reply(&b);
    assert_eq!((h.err, data_of(&body)), (0, b"data".to_vec()));
    let x = n.send(&mut b, OpCode::SetData, &set_data("/d", b"new", -1));
    n.commit();
    assert_eq!(n.one_reply(&b).0.xid, x, "a dropped watch fired");
    n.send(&mut b, OpCode::GetData, &get_data("/d", true));
    n.frames(&b);
    n.send(&mut b, OpCode::SetData, &set_data("/d", b"newer", -1));
    n.commit();
    let frames = n.frames(&b);
    assert_eq!(frames.len(), 2);
    assert_eq!(events(&frames[..1]), [ev(EventType::NodeDataChanged, "/d")]);
}

/// ZooKeeper's checkSession: once a session re-attached on another member, requests from
/// its old connection get SESSIONMOVED and change nothing; the new connection writes.
#[test]
fn a_session_that_moved_answers_its_old_connection_session_moved() {
    let mut e = Ensemble::new(&[2, 3]);
    let (mut a, session) = e.session(1);
    let pw = auth::session_password(session);
    // The client moves to the other learner while its old connection is still open there.
    let mut b = e.connect(2, session, &pw);
    e.answer_revalidations();
    assert_eq!(connect_response(&e.take(&b)[0]).session_id, session);
    let x = e.send_create(&mut a, "/from-old", b"", 0);
    e.commit();
    let (h, _) = e.one_reply(&a);
    assert_eq!((h.xid, h.err), (x, ErrorCode::SessionMoved.code()));
    let y = e.send_create(&mut b, "/from-new", b"", 0);
    e.commit();
    let (h, _) = e.one_reply(&b);
    assert_eq!((h.xid, h.err), (y, 0));
    for core in &e.cores {
        assert!(core.tree().get("/from-old").is_none());
        assert!(core.tree().get("/from-new").is_some());
    }
    // A client of the leader itself that re-attached there owns it again.
    let mut c = e.connect(0, session, &pw);
    assert_eq!(connect_response(&e.take(&c)[0]).session_id, session);
    let z = e.send_create(&mut b, "/from-b-again", b"", 0);
    e.commit();
    assert_eq!(
        e.one_reply(&b).0.err,
        ErrorCode::SessionMoved.code(),
        "xid {z}"
    );
    let w = e.send_create(&mut c, "/from-leader-client", b"", 0);
    e.commit();
    assert_eq!(e.one_reply(&c).0.err, 0, "xid {w}");
}
