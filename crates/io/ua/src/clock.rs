//! The packet clock: one grid of 20 ms ticks shared by every task of the process that
//! reads its sockets on a clock instead of on each datagram's arrival (a browser call's
//! media task, the WebRTC task). The runtime fires timers due at the same instant in one
//! turn, so all those tasks share one wake-up per tick however many calls they carry,
//! instead of a wake-up per packet per call. The price is latency: a datagram waits for
//! the next tick, at most [`PACKET_TICK`] (10 ms on average) per hop read this way.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The tick: one audio frame of the usual 20 ms packets.
pub const PACKET_TICK: Duration = Duration::from_millis(20);

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The first tick of the process-wide grid strictly after `now`.
pub fn next_tick(now: Instant) -> Instant {
    let epoch = *EPOCH.get_or_init(|| now);
    let tick = PACKET_TICK.as_nanos();
    let since = now.saturating_duration_since(epoch).as_nanos();
    let next = (since / tick + 1) * tick;
    // Below 2^64 ns (584 years) after the epoch.
    epoch + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks are strictly later than `now`, at most one tick later, and on one grid:
    /// two readers at different moments of the same tick wake together.
    #[test]
    fn ticks_are_on_one_grid() {
        let t0 = Instant::now();
        let a = next_tick(t0);
        assert!(a > t0 && a - t0 <= PACKET_TICK);
        let b = next_tick(a - Duration::from_millis(1));
        assert_eq!(a, b);
        let c = next_tick(a);
        assert_eq!(c - a, PACKET_TICK);
        let d = next_tick(a + Duration::from_millis(7));
        assert_eq!(d, c);
    }
}
