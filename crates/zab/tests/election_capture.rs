//! [`Election`] against the real Java 3.8.0 ensemble of `tests/fixtures/ensemble/
//! ensemble-3+1.pcap` (3 voters, observer 4, restarts). For every election in the capture we
//! replay one member's point of view: its own notifications must be the captured bytes, the
//! notifications it received go in, and it must reach the decision Java reached. The answering
//! side is checked too: what decided members (our `Election`s, updated with `answer_as` as
//! `updateElectionVote` does) reply, and the driver's "last message sent" re-sends.
//!
//! ```text
//! streams 7        sid 2 <-> 1, first election          -> 2 LEADING, 1 FOLLOWING 2
//! streams 10, 11   sid 3 starts, 1 and 2 answer          -> 3 FOLLOWING 2 (same round)
//! streams 13-15    observer 4 asks 1, 2, 3               -> 4 OBSERVING 2
//! streams 19, 20   sid 1 restarts (zxid 0x100000009)     -> 1 FOLLOWING 2
//! streams 22, 23   sid 3 restarts, adopts 1's stale vote -> FOLLOWING 1 (the pitfall), then
//!                  round 2 joins the ensemble            -> FOLLOWING 2, round 1
//! ```
//!
//! The capture reader has no timestamps, so the order in which one member took frames from two
//! connections is not known: every interleaving that keeps each connection's order is tried,
//! with frames 1 ms apart and the finalize wait run out by a tick.

mod pcap;

use std::collections::BTreeSet;
use std::path::Path;

use zooid_zab::election::next_frame;
use zooid_zab::{
    DecidedBy, Election, ElectionConfig, Epoch, InitialMessage, Notification, Output, PeerState,
    Role, Round, ServerId, Vote, Zxid,
};

const CONFIG: &str = "server.1=127.0.0.1:22211:22221:participant\n\
                      server.2=127.0.0.1:22212:22222:participant\n\
                      server.3=127.0.0.1:22213:22223:participant\n\
                      server.4=127.0.0.1:22214:22224:observer\n\
                      version=0";

struct Frame {
    raw: Vec<u8>,
    n: Notification,
}

struct Conn {
    initiator: ServerId,
    listener: ServerId,
    to_listener: Vec<Frame>,
    to_initiator: Vec<Frame>,
}

impl Conn {
    /// The frames `sid` received on this connection.
    fn received_by(&self, sid: ServerId) -> &[Frame] {
        if sid == self.listener {
            &self.to_listener
        } else {
            assert_eq!(sid, self.initiator);
            &self.to_initiator
        }
    }

    /// The frames `sid` sent on this connection.
    fn sent_by(&self, sid: ServerId) -> &[Frame] {
        if sid == self.listener {
            &self.to_initiator
        } else {
            assert_eq!(sid, self.initiator);
            &self.to_listener
        }
    }

    fn peer_of(&self, sid: ServerId) -> ServerId {
        if sid == self.listener {
            self.initiator
        } else {
            self.listener
        }
    }
}

fn frames(mut b: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (start, end) = next_frame(b).unwrap().expect("whole frames");
        out.push(Frame {
            raw: b[..end].to_vec(),
            n: Notification::decode(&b[start..end]).unwrap(),
        });
        b = &b[end..];
    }
    out
}

/// Every election connection of the capture, by stream index.
fn connections() -> Vec<(usize, Conn)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/ensemble/ensemble-3+1.pcap");
    let file = std::fs::read(path).expect("the capture");
    pcap::read_tcp_streams(&file)
        .unwrap()
        .into_iter()
        .filter(|s| (22221..=22224).contains(&s.server_port()) && !s.to_server.is_empty())
        .map(|s| {
            let (initial, used) = InitialMessage::decode(&s.to_server).unwrap().unwrap();
            let conn = Conn {
                initiator: initial.sid(),
                listener: ServerId(i64::from(s.server_port() - 22220)),
                to_listener: frames(&s.to_server[used..]),
                to_initiator: frames(&s.to_client),
            };
            (s.index, conn)
        })
        .collect()
}

fn conn(all: &[(usize, Conn)], index: usize) -> &Conn {
    &all.iter().find(|(i, _)| *i == index).unwrap().1
}

fn config(me: i64) -> ElectionConfig {
    ElectionConfig::new(
        ServerId(me),
        [1, 2, 3].into_iter().map(ServerId).collect(),
        BTreeSet::from([ServerId(4)]),
        CONFIG,
    )
    .unwrap()
}

fn bytes(msg: &Notification) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode_frame(&mut out);
    out
}

/// The frames an output list sends to `to`.
fn sent_to(out: &[Output], to: ServerId) -> Vec<Vec<u8>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to: t, msg } if *t == to => Some(bytes(msg)),
            _ => None,
        })
        .collect()
}

/// A decision: leader, role, vote, rule.
type Decision = (ServerId, Role, Vote, DecidedBy);

fn decision(out: &[Output]) -> Option<Decision> {
    out.iter().find_map(|o| match o {
        Output::Decided {
            leader,
            role,
            vote,
            by,
        } => Some((*leader, *role, *vote, *by)),
        Output::Send { .. } => None,
    })
}

/// Every merge of `lists` that keeps each list's order, as (list, position) pairs.
fn interleavings(lens: &[usize]) -> Vec<Vec<(usize, usize)>> {
    fn go(
        lens: &[usize],
        taken: &mut Vec<usize>,
        path: &mut Vec<(usize, usize)>,
        out: &mut Vec<Vec<(usize, usize)>>,
    ) {
        if taken.iter().zip(lens).all(|(t, l)| t == l) {
            out.push(path.clone());
            return;
        }
        for i in 0..lens.len() {
            if taken[i] < lens[i] {
                path.push((i, taken[i]));
                taken[i] += 1;
                go(lens, taken, path, out);
                taken[i] -= 1;
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    go(lens, &mut vec![0; lens.len()], &mut Vec::new(), &mut out);
    out
}

/// One member's view: `me` starts (or looks again), then takes `inputs[k]` (frames from the
/// peer `from[k]`) in every order; returns, per order, the decision and everything it sent.
struct Replay<'a> {
    me: ServerId,
    from: Vec<ServerId>,
    inputs: Vec<&'a [Frame]>,
}

impl Replay<'_> {
    fn run(
        &self,
        mut e: Election,
        first: Vec<Output>,
        t0: u64,
    ) -> Vec<(Election, Vec<Output>, Option<Decision>)> {
        let lens: Vec<usize> = self.inputs.iter().map(|l| l.len()).collect();
        let mut results = Vec::new();
        let start = e.clone();
        for order in interleavings(&lens) {
            e = start.clone();
            let mut out = first.clone();
            let mut t = t0;
            let mut decided = None;
            for (list, pos) in order {
                t += 1;
                let step = e.on_notification(self.from[list], self.inputs[list][pos].n.clone(), t);
                decided = decided.or(decision(&step));
                out.extend(step);
            }
            if decided.is_none() {
                let step = e.on_tick(t + 200);
                decided = decision(&step);
                out.extend(step);
            }
            assert!(e.round() >= Round(1), "{}", self.me);
            results.push((e.clone(), out, decided));
        }
        results
    }
}

#[test]
fn every_member_reaches_java_s_decisions_with_java_s_bytes() {
    let all = connections();
    let (s1, s2, s3, s4) = (ServerId(1), ServerId(2), ServerId(3), ServerId(4));
    let epoch1 = |mut v: Vote| {
        v.peer_epoch = Epoch(1);
        v
    };

    // ---- Stream 7: the first election, sid 2 dials 1. --------------------------------------
    let c7 = conn(&all, 7);
    assert_eq!((c7.initiator, c7.listener), (s2, s1));
    // sid 2's view: its own vote, then 1's own vote and 1's adoption of 2.
    let (two, out2) = Election::start(config(2), Zxid(0), Epoch(0), 0);
    assert_eq!(sent_to(&out2, s1), vec![c7.to_listener[0].raw.clone()]);
    let replay = Replay {
        me: s2,
        from: vec![s1],
        inputs: vec![c7.received_by(s2)],
    };
    let (mut two, two_out, d) = replay.run(two, out2, 0).pop().unwrap();
    let first = Vote {
        leader: s2,
        zxid: Zxid(0),
        round: Round(1),
        peer_epoch: Epoch(0),
    };
    assert_eq!(d, Some((s2, Role::Leading, first, DecidedBy::Proposal)));
    // sid 1's view: it adopts 2 (the bytes it sent back) and follows 2.
    let (one, out1) = Election::start(config(1), Zxid(0), Epoch(0), 0);
    let replay = Replay {
        me: s1,
        from: vec![s2],
        inputs: vec![c7.received_by(s1)],
    };
    let (mut one, one_out, d) = replay.run(one, out1, 0).pop().unwrap();
    let sent: Vec<_> = c7.sent_by(s1).iter().map(|f| f.raw.clone()).collect();
    assert_eq!(sent_to(&one_out, s2), sent);
    assert_eq!(d, Some((s2, Role::Following, first, DecidedBy::Proposal)));

    // Both sync into epoch 1 (updateElectionVote).
    two.answer_as(PeerState::Leading, epoch1(first));
    one.answer_as(PeerState::Following, epoch1(first));

    // ---- Streams 10 and 11: sid 3 starts after the election. -------------------------------
    let (c10, c11) = (conn(&all, 10), conn(&all, 11));
    assert_eq!((c10.initiator, c10.listener, c11.listener), (s3, s1, s2));
    // What 1 and 2 say first is their last message to 3 from the election (lastMessageSent),
    // then their answer to 3's LOOKING vote.
    assert_eq!(sent_to(&one_out, s3).last(), Some(&c10.to_initiator[0].raw));
    assert_eq!(sent_to(&two_out, s3).last(), Some(&c11.to_initiator[0].raw));
    let ask = &c10.to_listener[0].n;
    assert_eq!(
        sent_to(&one.on_notification(s3, ask.clone(), 2000), s3),
        vec![c10.to_initiator[1].raw.clone()]
    );
    assert_eq!(
        sent_to(&two.on_notification(s3, ask.clone(), 2000), s3),
        vec![c11.to_initiator[1].raw.clone()]
    );
    let (three, out3) = Election::start(config(3), Zxid(0), Epoch(0), 2000);
    assert_eq!(sent_to(&out3, s1), vec![c10.to_listener[0].raw.clone()]);
    assert_eq!(sent_to(&out3, s2), vec![c11.to_listener[0].raw.clone()]);
    let replay = Replay {
        me: s3,
        from: vec![c10.peer_of(s3), c11.peer_of(s3)],
        inputs: vec![c10.received_by(s3), c11.received_by(s3)],
    };
    let runs = replay.run(three, out3, 2000);
    assert_eq!(runs.len(), 6);
    for (_, _, d) in &runs {
        let established = epoch1(first);
        assert_eq!(
            *d,
            Some((s2, Role::Following, established, DecidedBy::SameRound))
        );
    }
    let (mut three, three_out, _) = runs.into_iter().next().unwrap();

    // ---- Streams 13 to 15: observer 4 asks every voter. ------------------------------------
    let obs_conns: Vec<&Conn> = [13, 14, 15].iter().map(|&i| conn(&all, i)).collect();
    let (four, out4) = Election::start(config(4), Zxid(0), Epoch(0), 10_000);
    for (c, peer) in obs_conns.iter().zip([s1, s2, s3]) {
        assert_eq!((c.initiator, c.listener), (s4, peer));
        assert_eq!(sent_to(&out4, peer), vec![c.to_listener[0].raw.clone()]);
    }
    // The voters answer a non-voter with their vote, state and logicalclock.
    for (e, c) in [&mut one, &mut two, &mut three].into_iter().zip(&obs_conns) {
        let answer = e.on_notification(s4, c.to_listener[0].n.clone(), 10_000);
        assert_eq!(sent_to(&answer, s4), vec![c.to_initiator[0].raw.clone()]);
    }
    let replay = Replay {
        me: s4,
        from: vec![s1, s2, s3],
        inputs: obs_conns.iter().map(|c| c.received_by(s4)).collect(),
    };
    let runs = replay.run(four, out4, 10_000);
    assert_eq!(runs.len(), 6);
    for (e, out, d) in &runs {
        let (leader, role, _, _) = d.unwrap();
        assert_eq!((leader, role), (s2, Role::Observing));
        assert_eq!(e.state(), PeerState::Observing);
        // The observer only asked; it never sent a vote after its first.
        assert_eq!(
            out.iter()
                .filter(|o| matches!(o, Output::Send { .. }))
                .count(),
            3
        );
    }
    // sid 3 synced into epoch 1 as well.
    three.answer_as(PeerState::Following, epoch1(first));

    // ---- Streams 19 and 20: sid 1 restarts with a longer log. ------------------------------
    let (c19, c20) = (conn(&all, 19), conn(&all, 20));
    assert_eq!((c19.initiator, c19.listener, c20.initiator), (s3, s1, s2));
    // 3 and 2 re-send their last message to 1, then answer its LOOKING vote.
    assert_eq!(
        sent_to(&three_out, s1).last(),
        Some(&c19.to_listener[0].raw)
    );
    assert_eq!(sent_to(&two_out, s1).last(), Some(&c20.to_listener[0].raw));
    let (one, out1) = Election::start(config(1), Zxid(0x1_0000_0009), Epoch(1), 21_000);
    assert_eq!(sent_to(&out1, s3), vec![c19.to_initiator[0].raw.clone()]);
    assert_eq!(sent_to(&out1, s2), vec![c20.to_initiator[0].raw.clone()]);
    let ask = &c19.to_initiator[0].n;
    assert_eq!(
        sent_to(&three.on_notification(s1, ask.clone(), 21_000), s1),
        vec![c19.to_listener[1].raw.clone()]
    );
    assert_eq!(
        sent_to(&two.on_notification(s1, ask.clone(), 21_000), s1),
        vec![c20.to_listener[1].raw.clone()]
    );
    let replay = Replay {
        me: s1,
        from: vec![s3, s2],
        inputs: vec![c19.received_by(s1), c20.received_by(s1)],
    };
    let runs = replay.run(one, out1.clone(), 21_000);
    for (e, _, d) in &runs {
        let (leader, role, vote, _) = d.unwrap();
        assert_eq!((leader, role, vote), (s2, Role::Following, epoch1(first)));
        assert_eq!(e.round(), Round(1));
    }

    // ---- Streams 22 and 23: sid 3 restarts with an empty database. -------------------------
    let (c22, c23) = (conn(&all, 22), conn(&all, 23));
    assert_eq!((c22.initiator, c22.listener, c23.listener), (s3, s1, s2));
    // sid 1 first re-sends its stale round-1 LOOKING vote, sid 2 its last answer to 3.
    assert_eq!(sent_to(&out1, s3).last(), Some(&c22.to_initiator[0].raw));
    let two_to_3: Vec<_> = c11.sent_by(s2).iter().map(|f| f.raw.clone()).collect();
    assert_eq!(two_to_3.last(), Some(&c23.to_initiator[0].raw));
    let (from1, from2) = (c22.received_by(s3), c23.received_by(s3));
    assert_eq!((from1.len(), from2.len()), (3, 4));
    // Round 1: all but the last answer of each peer (those answer round 2's vote).
    let (three, out3) = Election::start(config(3), Zxid(0), Epoch(0), 31_000);
    let replay = Replay {
        me: s3,
        from: vec![s1, s2],
        inputs: vec![&from1[..2], &from2[..3]],
    };
    let runs = replay.run(three, out3, 31_000);
    assert_eq!(runs.len(), 10);
    let stale = c22.to_initiator[0].n.vote();
    for (mut e, out, d) in runs {
        // The pitfall: FOLLOWING the stale vote's sid 1, with the bytes 3 sent.
        assert_eq!(d, Some((s1, Role::Following, stale, DecidedBy::Proposal)));
        for (c, peer) in [(c22, s1), (c23, s2)] {
            let sent: Vec<_> = c.sent_by(s3)[..2].iter().map(|f| f.raw.clone()).collect();
            assert_eq!(sent_to(&out, peer), sent);
        }
        // Following 1 fails: round 2, then the ensemble's answers.
        let again = e.look_again(Zxid(0), Epoch(0), 40_000);
        assert_eq!(e.round(), Round(2));
        assert_eq!(sent_to(&again, s1), vec![c22.to_listener[2].raw.clone()]);
        assert_eq!(sent_to(&again, s2), vec![c23.to_listener[2].raw.clone()]);
        let round2 = Replay {
            me: s3,
            from: vec![s1, s2],
            inputs: vec![&from1[2..], &from2[3..]],
        };
        for (e2, _, d) in round2.run(e, Vec::new(), 40_000) {
            assert_eq!(
                d,
                Some((s2, Role::Following, epoch1(first), DecidedBy::Ensemble))
            );
            assert_eq!(e2.round(), Round(1), "logicalclock becomes the ensemble's");
        }
    }
}
