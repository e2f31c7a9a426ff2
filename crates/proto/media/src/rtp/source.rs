//! Receive-side state of one remote SSRC: sequence validation (RFC 3550 A.1), loss
//! accounting (A.3) and interarrival jitter (A.8).

use std::time::Instant;

/// RFC 3550 A.1 "typical values": 1 minute of dropout, 2 s of misordering at 50 pkt/s.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// What [`Source::update_seq`] decided about one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeqVerdict {
    /// The packet counts (in order, a permissible gap, or a duplicate/misordered one).
    Valid,
    /// The source has just left probation with this packet.
    Validated,
    /// The sender restarted its sequence: two sequential packets after a very large jump.
    Resynced,
    /// Still in probation (A.1: discarded until `MIN_SEQUENTIAL` packets in sequence).
    Probation,
    /// A very large jump, not yet confirmed by a second packet.
    Jump,
}

/// Per-SSRC receive state, RFC 3550 A.1 `source` plus A.8 jitter.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub(crate) ssrc: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// A.8 relative transit time of the previous packet, `None` after a reset.
    transit: Option<u32>,
    /// A.8 jitter estimate scaled by 16 (`s->jitter` of the integer variant); 64 bits so
    /// that hostile timestamps cannot overflow it.
    jitter16: u64,
    /// Clock of the payload type the transit time was taken with.
    jitter_clock: u32,
    /// Arrival instant and timestamp of the last media packet (timestamp-jump detection).
    pub(crate) last_media: Option<(Instant, u32, u32)>,
}

impl Source {
    /// A new source on probation (A.1: `init_seq`, `max_seq = seq - 1`, `probation = MIN_SEQUENTIAL`).
    pub(crate) fn probation(ssrc: u32, seq: u16, min_sequential: u32) -> Source {
        let mut s = Source::validated(ssrc, seq);
        s.received = 0;
        s.max_seq = seq.wrapping_sub(1);
        s.probation = min_sequential;
        s
    }

    /// A source whose sequence continuity was already checked elsewhere; `seq` counts as
    /// received.
    pub(crate) fn validated(ssrc: u32, seq: u16) -> Source {
        let mut s = Source {
            ssrc,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: 0,
            probation: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter16: 0,
            jitter_clock: 0,
            last_media: None,
        };
        s.init_seq(seq);
        s.received = 1;
        s
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.probation == 0
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1; // so seq == bad_seq is false
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// RFC 3550 A.1 `update_seq`, transcribed; `min_sequential` is `MIN_SEQUENTIAL`.
    pub(crate) fn update_seq(&mut self, seq: u16, min_sequential: u32) -> SeqVerdict {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return SeqVerdict::Validated;
                }
            } else {
                self.probation = min_sequential.saturating_sub(1).max(1);
                self.max_seq = seq;
            }
            return SeqVerdict::Probation;
        } else if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            if seq < self.max_seq {
                // Sequence number wrapped: count another 64K cycle.
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // The sequence number made a very large jump.
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets: assume the other side restarted without
                // telling us, so re-sync (pretend this was the first packet).
                self.init_seq(seq);
                self.received += 1;
                self.transit = None;
                self.last_media = None;
                return SeqVerdict::Resynced;
            }
            self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
            return SeqVerdict::Jump;
        } else {
            // Duplicate or reordered packet.
        }
        self.received += 1;
        SeqVerdict::Valid
    }

    /// RFC 3550 A.8: `arrival` is the arrival time in the payload's clock units (any
    /// origin, wrapping), `timestamp` the packet's.
    pub(crate) fn update_jitter(&mut self, arrival: u32, timestamp: u32, clock: u32) {
        if clock != self.jitter_clock {
            // A payload type with another clock: transit times are not comparable.
            self.jitter_clock = clock;
            self.transit = None;
        }
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(prev) = self.transit {
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            // J += (|D| - J) / 16, in the integer form of A.8.
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Forgets the transit time (after a timestamp jump) but keeps the estimate.
    pub(crate) fn reset_transit(&mut self) {
        self.transit = None;
    }

    /// Interarrival jitter in timestamp units, as reported in RTCP.
    pub(crate) fn jitter(&self) -> u32 {
        u32::try_from(self.jitter16 >> 4).unwrap_or(u32::MAX)
    }

    /// Extended highest sequence number received (A.3 `extended_max`).
    pub(crate) fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// A.3 `expected`.
    fn expected(&self) -> u32 {
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    #[cfg(test)]
    pub(crate) fn received(&self) -> u32 {
        self.received
    }

    /// A.3 cumulative number of packets lost (negative with duplicates).
    pub(crate) fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// A.3 fraction lost since the previous call, in 1/256; advances the "prior" counters,
    /// so call it once per report.
    pub(crate) fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        }
    }

    /// Packets received since the last [`Source::take_fraction_lost`].
    pub(crate) fn received_since_report(&self) -> u32 {
        self.received.wrapping_sub(self.received_prior)
    }
}

/// RFC 3550 §6.4.1: the cumulative number of packets lost is a signed 24-bit field,
/// clamped (positive loss saturates at 0x7fffff, negative at -0x800000).
pub(crate) fn clamp_cumulative_lost(lost: i64) -> u32 {
    let clamped = lost.clamp(-0x80_0000, 0x7f_ffff) as i32;
    (clamped as u32) & 0x00ff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN_SEQ: u32 = 2;

    fn feed(s: &mut Source, seqs: &[u16]) -> Vec<SeqVerdict> {
        seqs.iter().map(|&q| s.update_seq(q, MIN_SEQ)).collect()
    }

    #[test]
    fn probation_needs_two_sequential_packets() {
        let mut s = Source::probation(1, 100, MIN_SEQ);
        assert!(!s.is_valid());
        // The first packet (the one that created the source) is seen again by update_seq.
        assert_eq!(s.update_seq(100, MIN_SEQ), SeqVerdict::Probation);
        assert_eq!(s.update_seq(101, MIN_SEQ), SeqVerdict::Validated);
        assert!(s.is_valid());
        assert_eq!(s.received(), 1);
        assert_eq!(s.extended_max(), 101);
    }

    #[test]
    fn out_of_sequence_probation_restarts() {
        let mut s = Source::probation(1, 10, MIN_SEQ);
        assert_eq!(
            feed(&mut s, &[10, 20, 21]),
            [
                SeqVerdict::Probation,
                SeqVerdict::Probation,
                SeqVerdict::Validated
            ]
        );
    }

    #[test]
    fn wrap_counts_a_cycle() {
        let mut s = Source::validated(1, 65534);
        assert!(
            feed(&mut s, &[65535, 0, 1])
                .iter()
                .all(|v| *v == SeqVerdict::Valid)
        );
        assert_eq!(s.extended_max(), 65536 + 1);
        assert_eq!(s.cumulative_lost(), 0);
    }

    #[test]
    fn loss_and_fraction_lost_per_a3() {
        let mut s = Source::validated(1, 0);
        // 0..=99 with every fourth packet missing: 25 lost out of 100 expected.
        for q in 1..100u16 {
            if q % 4 != 0 {
                s.update_seq(q, MIN_SEQ);
            }
        }
        assert_eq!(s.cumulative_lost(), 24);
        // The first interval also contains packet 0: 100 expected, 76 received.
        assert_eq!(s.take_fraction_lost(), ((24i64 << 8) / 100) as u8);
        // Nothing new: no loss in the interval.
        assert_eq!(s.take_fraction_lost(), 0);
        // Duplicates make the interval's loss negative: reported as 0.
        s.update_seq(99, MIN_SEQ);
        s.update_seq(99, MIN_SEQ);
        assert_eq!(s.take_fraction_lost(), 0);
        assert_eq!(s.cumulative_lost(), 22);
    }

    #[test]
    fn misordered_and_duplicate_packets_are_valid() {
        let mut s = Source::validated(1, 1000);
        assert_eq!(
            feed(&mut s, &[1002, 1001, 1002, 1003]),
            [SeqVerdict::Valid; 4]
        );
        assert_eq!(s.extended_max(), 1003);
        assert_eq!(s.cumulative_lost(), -1); // one duplicate
    }

    #[test]
    fn large_jump_needs_confirmation_then_resyncs() {
        let mut s = Source::validated(1, 1000);
        s.update_seq(1001, MIN_SEQ);
        assert_eq!(s.update_seq(30000, MIN_SEQ), SeqVerdict::Jump);
        // A stray packet back in sequence still counts.
        assert_eq!(s.update_seq(1002, MIN_SEQ), SeqVerdict::Valid);
        assert_eq!(s.update_seq(40000, MIN_SEQ), SeqVerdict::Jump);
        assert_eq!(s.update_seq(40001, MIN_SEQ), SeqVerdict::Resynced);
        assert_eq!(s.extended_max(), 40001);
        assert_eq!(s.cumulative_lost(), 0);
    }

    #[test]
    fn jitter_follows_a8() {
        let mut s = Source::validated(1, 0);
        // Perfect 20 ms pacing at 8 kHz: no jitter.
        for i in 0..50u32 {
            s.update_jitter(1000 + i * 160, i * 160, 8000);
        }
        assert_eq!(s.jitter(), 0);
        // Alternate arrivals 40 units early/late: |D| = 80 each time, J converges on 80.
        for i in 50..2000u32 {
            let wobble = if i % 2 == 0 {
                40
            } else {
                0u32.wrapping_sub(40)
            };
            s.update_jitter((1000 + i * 160).wrapping_add(wobble), i * 160, 8000);
        }
        assert!((78..=80).contains(&s.jitter()), "jitter {}", s.jitter());
    }

    #[test]
    fn cumulative_lost_is_signed_24_bit() {
        assert_eq!(clamp_cumulative_lost(5), 5);
        assert_eq!(clamp_cumulative_lost(-1), 0x00ff_ffff);
        assert_eq!(clamp_cumulative_lost(1 << 30), 0x7f_ffff);
        assert_eq!(clamp_cumulative_lost(-(1 << 30)), 0x80_0000);
    }
}
