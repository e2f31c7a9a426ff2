//! Transaction timers, named after RFC 3261 §17 (Table 4,
//! <https://www.rfc-editor.org/rfc/rfc3261#appendix-A>) and RFC 6026 §8.11-§8.12.
//!
//! Every transaction holds a [`TimerTable`] with two slots: one for the retransmission
//! timer (A, E or G) and one for the timer that ends the current state (B, D, F, H, I,
//! J, K, L or M). No state of any of the four machines needs more. Deadlines also go
//! into one [`TimerQueue`] shared by all transactions (FIFO lanes, one per duration);
//! re-arming or clearing a slot leaves the old entry behind, and it is skipped when
//! taken because its sequence number no longer matches the slot (lazy invalidation).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::TxnId;

/// Timer D for unreliable transports: "at least 32 seconds" (RFC 3261 §17.1.1.2).
pub(super) const TIMER_D_UNRELIABLE: Duration = Duration::from_secs(32);

/// The RFC 3261 / RFC 6026 timer letters (C belongs to proxies, §16.6, not to transactions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Timer {
    /// INVITE client request retransmit, T1 doubling, unreliable only (§17.1.1.2).
    A,
    /// INVITE client transaction timeout, 64*T1 (§17.1.1.2).
    B,
    /// INVITE client wait for response retransmits: 32 s unreliable, 0 reliable (§17.1.1.2).
    D,
    /// Non-INVITE client request retransmit, T1 doubling capped at T2, unreliable only (§17.1.2.2).
    E,
    /// Non-INVITE client transaction timeout, 64*T1 (§17.1.2.2).
    F,
    /// INVITE server response retransmit, T1 doubling capped at T2, unreliable only (§17.2.1).
    G,
    /// INVITE server wait for ACK, 64*T1 (§17.2.1).
    H,
    /// INVITE server wait for ACK retransmits: T4 unreliable, 0 reliable (§17.2.1).
    I,
    /// Non-INVITE server wait for request retransmits: 64*T1 unreliable, 0 reliable (§17.2.2).
    J,
    /// Non-INVITE client wait for response retransmits: T4 unreliable, 0 reliable (§17.1.2.2).
    K,
    /// INVITE server wait in Accepted for 2xx retransmits and ACKs, 64*T1 (RFC 6026 §8.7).
    L,
    /// INVITE client wait in Accepted for 2xx retransmits from other forks, 64*T1 (RFC 6026 §8.4).
    M,
}

impl Timer {
    fn slot(self) -> usize {
        match self {
            Timer::A | Timer::E | Timer::G => 0,
            _ => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Armed {
    timer: Timer,
    seq: u64,
}

/// The timers one transaction has armed.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TimerTable {
    slots: [Option<Armed>; 2],
}

impl TimerTable {
    /// Disarms every timer (on a state change).
    pub(super) fn clear(&mut self) {
        self.slots = [None, None];
    }

    /// Whether a taken queue entry is still the armed instance of `timer`.
    fn is_current(&self, timer: Timer, seq: u64) -> bool {
        self.slots[timer.slot()] == Some(Armed { timer, seq })
    }

    /// If `due` is the armed instance of its timer, disarms it and returns true (the
    /// timer fires); a stale entry returns false.
    pub(super) fn fire(&mut self, due: &Due) -> bool {
        if self.is_current(due.timer, due.seq) {
            self.slots[due.timer.slot()] = None;
            true
        } else {
            false
        }
    }

    #[cfg(test)]
    pub(super) fn armed(&self) -> Vec<Timer> {
        self.slots.iter().flatten().map(|a| a.timer).collect()
    }
}

/// An entry whose deadline has passed.
#[derive(Clone, Copy, Debug)]
pub(super) struct Due {
    pub(super) id: TxnId,
    pub(super) timer: Timer,
    seq: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    at: Instant,
    seq: u64,
    id: TxnId,
    timer: Timer,
}

impl Entry {
    fn key(&self) -> (Instant, u64) {
        (self.at, self.seq)
    }
}

/// The deadlines armed with one duration, earliest first. Every timer value comes from
/// the configuration (T1 doublings, T2, T4, 64*T1, 32 s), so there are a handful of
/// lanes, and as `now` only moves forward a new deadline belongs at the back: arming
/// and firing cost O(1) where a heap of every armed timer costs O(log n).
#[derive(Debug)]
struct Lane {
    after: Duration,
    entries: VecDeque<Entry>,
}

/// All deadlines of all transactions.
#[derive(Debug, Default)]
pub(super) struct TimerQueue {
    lanes: Vec<Lane>,
    seq: u64,
}

impl TimerQueue {
    /// Arms `timer` of transaction `id` to fire at `now + after`. A deadline beyond what
    /// `Instant` can represent is never reached, so the timer is simply not armed.
    pub(super) fn arm(
        &mut self,
        table: &mut TimerTable,
        id: TxnId,
        timer: Timer,
        now: Instant,
        after: Duration,
    ) {
        let Some(at) = now.checked_add(after) else {
            table.slots[timer.slot()] = None;
            return;
        };
        self.seq = self.seq.wrapping_add(1);
        table.slots[timer.slot()] = Some(Armed {
            timer,
            seq: self.seq,
        });
        let entry = Entry {
            at,
            seq: self.seq,
            id,
            timer,
        };
        let lane = match self.lanes.iter().position(|l| l.after == after) {
            Some(i) => &mut self.lanes[i],
            None => {
                self.lanes.push(Lane {
                    after,
                    entries: VecDeque::new(),
                });
                let last = self.lanes.len() - 1;
                &mut self.lanes[last]
            }
        };
        // A caller whose `now` went back in time still gets an ordered lane.
        if lane.entries.back().is_none_or(|b| b.key() <= entry.key()) {
            lane.entries.push_back(entry);
        } else {
            let i = lane.entries.partition_point(|e| e.key() <= entry.key());
            lane.entries.insert(i, entry);
        }
    }

    /// The lane whose first entry is the earliest.
    fn first(&self) -> Option<usize> {
        let mut best: Option<(usize, (Instant, u64))> = None;
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some(e) = lane.entries.front()
                && best.is_none_or(|(_, k)| e.key() < k)
            {
                best = Some((i, e.key()));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Takes the next entry due at or before `now`, stale or not; check it with
    /// [`TimerTable::fire`].
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Due> {
        let i = self.first()?;
        let lane = &mut self.lanes[i];
        if lane.entries.front()?.at > now {
            return None;
        }
        let e = lane.entries.pop_front()?;
        Some(Due {
            id: e.id,
            timer: e.timer,
            seq: e.seq,
        })
    }

    /// Drops stale entries from the front of every lane, so that [`TimerQueue::next`]
    /// is exact.
    pub(super) fn prune<'a>(&mut self, table: impl Fn(TxnId) -> Option<&'a TimerTable>) {
        for lane in &mut self.lanes {
            while let Some(e) = lane.entries.front() {
                if table(e.id).is_some_and(|t| t.is_current(e.timer, e.seq)) {
                    break;
                }
                lane.entries.pop_front();
            }
        }
    }

    /// The earliest deadline armed (exact after [`TimerQueue::prune`]).
    pub(super) fn next(&self) -> Option<Instant> {
        let i = self.first()?;
        self.lanes[i].entries.front().map(|e| e.at)
    }

    #[cfg(test)]
    pub(super) fn top_is_live<'a>(&self, table: impl Fn(TxnId) -> Option<&'a TimerTable>) -> bool {
        self.lanes.iter().all(|lane| {
            lane.entries
                .front()
                .is_none_or(|e| table(e.id).is_some_and(|t| t.is_current(e.timer, e.seq)))
        })
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lanes.iter().map(|l| l.entries.len()).sum()
    }

    /// Gives memory back after a load peak.
    pub(super) fn shrink(&mut self) {
        for lane in &mut self.lanes {
            let e = &mut lane.entries;
            if e.capacity() > 1024 && e.capacity() > 8 * e.len() {
                e.shrink_to(2 * e.len());
            }
        }
    }
}
