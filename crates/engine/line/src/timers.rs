//! The stack's own timers (the transaction layer keeps Timers A-M): one deadline per
//! owner and kind, in an ordered set so that [`Timers::next`] is exact and thousands of
//! idle lines cost one entry each.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::api::LineId;

/// Whose timer it is: a line, or a leftover of a call that no longer belongs to a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Owner {
    Line(LineId),
    Zombie(u64),
}

/// Timers named after what they guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// REGISTER refresh, `interval - min(interval/20, 5 s)` after a 2xx (seed-spec §2.2).
    Refresh,
    /// Retry of a registration that was lost.
    RegisterRetry,
    /// Outgoing INVITE not answered in `LineConfig::invite_timeout`.
    NoAnswer,
    /// Incoming INVITE not answered in `LineConfig::ring_timeout`.
    Ring,
    /// 2xx retransmission by the UAS core until the ACK (RFC 3261 §13.3.1.4).
    Retransmit2xx,
    /// No ACK for our 2xx after 64*T1 (RFC 3261 §13.3.1.4): end the dialog.
    AckWait,
    /// Re-INVITE retry after a 491 (RFC 3261 §14.1).
    Glare,
    /// Bound on `remove_line`.
    Close,
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    set: BTreeSet<(Instant, Owner, Kind)>,
    armed: HashMap<(Owner, Kind), Instant>,
}

impl Timers {
    /// Sets (or moves) the timer `kind` of `owner` to `at`.
    pub(crate) fn arm(&mut self, owner: Owner, kind: Kind, at: Instant) {
        if let Some(old) = self.armed.insert((owner, kind), at) {
            self.set.remove(&(old, owner, kind));
        }
        self.set.insert((at, owner, kind));
    }

    pub(crate) fn cancel(&mut self, owner: Owner, kind: Kind) {
        if let Some(old) = self.armed.remove(&(owner, kind)) {
            self.set.remove(&(old, owner, kind));
        }
    }

    pub(crate) fn cancel_all(&mut self, owner: Owner) {
        for kind in [
            Kind::Refresh,
            Kind::RegisterRetry,
            Kind::NoAnswer,
            Kind::Ring,
            Kind::Retransmit2xx,
            Kind::AckWait,
            Kind::Glare,
            Kind::Close,
        ] {
            self.cancel(owner, kind);
        }
    }

    pub(crate) fn next(&self) -> Option<Instant> {
        self.set.first().map(|(at, ..)| *at)
    }

    /// Removes and returns one timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Owner, Kind)> {
        let &(at, owner, kind) = self.set.first()?;
        if at > now {
            return None;
        }
        self.set.remove(&(at, owner, kind));
        self.armed.remove(&(owner, kind));
        Some((owner, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    #[allow(clippy::disallowed_methods)] // a fixed origin for the test clock
    fn rearm_moves_and_cancel_removes() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let a = Owner::Line(LineId(1));
        t.arm(a, Kind::Refresh, t0 + Duration::from_secs(10));
        t.arm(a, Kind::Refresh, t0 + Duration::from_secs(5));
        t.arm(Owner::Zombie(2), Kind::AckWait, t0 + Duration::from_secs(7));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(t.pop_due(t0 + Duration::from_secs(4)), None);
        assert_eq!(
            t.pop_due(t0 + Duration::from_secs(9)),
            Some((a, Kind::Refresh))
        );
        assert_eq!(
            t.pop_due(t0 + Duration::from_secs(9)),
            Some((Owner::Zombie(2), Kind::AckWait))
        );
        t.arm(a, Kind::Ring, t0);
        t.cancel_all(a);
        assert_eq!(t.next(), None);
    }
}
