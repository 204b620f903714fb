//! Simulated time: a queue of events, each due at a millisecond. Popping the earliest event
//! advances the clock to it; events due at the same millisecond come out in the order they
//! were pushed, so a run does not depend on the heap's tie-breaking.
//!
//! Invariant: time never goes back (an event is never scheduled before `now`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The clock and its event queue.
pub struct Clock<E> {
    now_ms: u64,
    seq: u64,
    queue: BinaryHeap<Queued<E>>,
}

struct Queued<E> {
    at_ms: u64,
    seq: u64,
    ev: E,
}

impl<E> PartialEq for Queued<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl<E> Eq for Queued<E> {}
impl<E> PartialOrd for Queued<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Queued<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: earliest first.
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

impl<E> Default for Clock<E> {
    fn default() -> Self {
        Clock {
            now_ms: 0,
            seq: 0,
            queue: BinaryHeap::new(),
        }
    }
}

impl<E> Clock<E> {
    /// Simulated milliseconds since the run began.
    pub fn now(&self) -> u64 {
        self.now_ms
    }

    /// Schedule `ev` at `at_ms`.
    pub fn push(&mut self, at_ms: u64, ev: E) {
        assert!(
            at_ms >= self.now_ms,
            "an event scheduled at {at_ms} ms, before now ({} ms)",
            self.now_ms
        );
        self.seq += 1;
        self.queue.push(Queued {
            at_ms,
            seq: self.seq,
            ev,
        });
    }

    /// The next event, with the clock advanced to it; `None` when nothing is scheduled.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let q = self.queue.pop()?;
        self.now_ms = q.at_ms;
        Some((q.at_ms, q.ev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_by_push_order() {
        let mut c = Clock::default();
        c.push(5, "b");
        c.push(1, "a");
        c.push(5, "c");
        assert_eq!(c.pop(), Some((1, "a")));
        assert_eq!(c.now(), 1);
        assert_eq!(c.pop(), Some((5, "b")));
        assert_eq!(c.pop(), Some((5, "c")));
        assert_eq!(c.pop(), None);
        assert_eq!(c.now(), 5);
    }

    #[test]
    #[should_panic(expected = "before now")]
    fn time_never_goes_back() {
        let mut c = Clock::default();
        c.push(5, ());
        c.pop();
        c.push(4, ());
    }
}
