//! RTCP (RFC 3550 §6): NTP time, our compound reports and what we read from the peer's,
//! including video key-frame requests (RFC 4585 PLI, RFC 5104 FIR, RFC 2032 FIR).
//!
//! The packet layer is `rtcp-types` (zero-copy parse of compound packets, builders for
//! SR/RR/SDES/BYE/PLI); this module only maps it to and from the session's numbers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rtcp_types::{
    Bye, Compound, Fir, Packet, PayloadFeedback, Pli, ReceiverReport, ReportBlock,
    ReportBlockBuilder, RtcpPacketParserExt, RtcpPacketWriter, RtcpPacketWriterExt, RtcpParseError,
    RtcpWriteError, Sdes, SdesChunk, SdesItem, SenderReport,
};

/// RFC 2032 §5.2.1 Full Intra Request (packet type 192, from the H.261 payload format):
/// still what baresip and other `libre` phones send unless the SDP offers RFC 4585 `nack`.
const RFC2032_FIR: u8 = 192;
/// RFC 4585 §6.3.1: payload-specific feedback FMT 1, Picture Loss Indication.
const FMT_PLI: u8 = 1;
/// RFC 5104 §4.3.1: payload-specific feedback FMT 4, Full Intra Request.
const FMT_FIR: u8 = 4;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A 64-bit NTP timestamp (RFC 3550 §4): seconds since 1900 in the high 32 bits, the
/// fraction in the low 32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// Converts a wall-clock time (read by the caller; this crate never reads clocks).
    /// Times before 1970 map to zero.
    pub fn from_system_time(t: SystemTime) -> NtpTime {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs().wrapping_add(NTP_UNIX_OFFSET) & 0xffff_ffff;
        let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
        NtpTime((secs << 32) | frac)
    }

    /// The middle 32 bits (16.16 fixed point), the form used for LSR (RFC 3550 §6.4.1).
    pub fn middle32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

impl From<SystemTime> for NtpTime {
    fn from(t: SystemTime) -> NtpTime {
        NtpTime::from_system_time(t)
    }
}

/// A duration in the 1/65536 s units of DLSR, saturating.
pub(crate) fn to_ntp_short(d: Duration) -> u32 {
    let units =
        d.as_secs().saturating_mul(65536) + (u64::from(d.subsec_nanos()) << 16) / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// A 16.16 duration (DLSR, or a difference of two LSR values) as a `Duration`.
pub(crate) fn from_ntp_short(units: u32) -> Duration {
    Duration::from_nanos((u64::from(units) * 1_000_000_000) >> 16)
}

/// The SR sender-info section (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SenderInfo {
    pub(crate) ntp: NtpTime,
    pub(crate) rtp_timestamp: u32,
    pub(crate) packets: u32,
    pub(crate) octets: u32,
}

/// One reception report block (RFC 3550 §6.4.1), already in wire units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) ssrc: u32,
    pub(crate) fraction_lost: u8,
    /// Signed 24-bit, already clamped and masked.
    pub(crate) cumulative_lost: u32,
    pub(crate) extended_highest_seq: u32,
    pub(crate) jitter: u32,
    pub(crate) lsr: u32,
    pub(crate) dlsr: u32,
}

impl Block {
    fn builder(&self) -> ReportBlockBuilder {
        ReportBlock::builder(self.ssrc)
            .fraction_lost(self.fraction_lost)
            .cumulative_lost(self.cumulative_lost)
            .extended_sequence_number(self.extended_highest_seq)
            .interarrival_jitter(self.jitter)
            .last_sender_report_timestamp(self.lsr)
            .delay_since_last_sender_report_timestamp(self.dlsr)
    }

    fn from_wire(rb: &ReportBlock<'_>) -> Block {
        Block {
            ssrc: rb.ssrc(),
            fraction_lost: rb.fraction_lost(),
            cumulative_lost: rb.cumulative_lost(),
            extended_highest_seq: rb.extended_sequence_number(),
            jitter: rb.interarrival_jitter(),
            lsr: rb.last_sender_report_timestamp(),
            dlsr: rb.delay_since_last_sender_report_timestamp(),
        }
    }
}

/// Builds our compound packet (RFC 3550 §6.1): SR if we sent media lately, else RR; then
/// SDES with the CNAME (required in every compound); then a PLI about `pli`'s source if
/// asking for a key frame (RFC 4585 §6.3.1, in a compound as its §3.1 wants); then BYE if
/// leaving.
pub(crate) fn build_compound(
    ssrc: u32,
    sender: Option<SenderInfo>,
    block: Option<Block>,
    cname: &str,
    pli: Option<u32>,
    bye: Option<&str>,
) -> Result<Vec<u8>, RtcpWriteError> {
    let mut compound = Compound::builder();
    compound = match sender {
        Some(info) => {
            let mut sr = SenderReport::builder(ssrc)
                .ntp_timestamp(info.ntp.0)
                .rtp_timestamp(info.rtp_timestamp)
                .packet_count(info.packets)
                .octet_count(info.octets);
            if let Some(b) = block {
                sr = sr.add_report_block(b.builder());
            }
            compound.add_packet(sr)
        }
        None => {
            // An RR with no block is still the mandatory first packet (RFC 3550 §6.4.2).
            let mut rr = ReceiverReport::builder(ssrc);
            if let Some(b) = block {
                rr = rr.add_report_block(b.builder());
            }
            compound.add_packet(rr)
        }
    };
    compound =
        compound.add_packet(Sdes::builder().add_chunk(
            SdesChunk::builder(ssrc).add_item(SdesItem::builder(SdesItem::CNAME, cname)),
        ));
    if let Some(media) = pli {
        compound = compound.add_packet(
            PayloadFeedback::builder_owned(Pli::builder())
                .sender_ssrc(ssrc)
                .media_ssrc(media),
        );
    }
    if let Some(reason) = bye {
        let mut b = Bye::builder().add_source(ssrc);
        if !reason.is_empty() {
            b = b.reason(reason);
        }
        compound = compound.add_packet(b);
    }
    let size = compound.calculate_size()?;
    let mut out = vec![0; size];
    let n = compound.write_into(&mut out)?;
    out.truncate(n);
    Ok(out)
}

/// What one incoming compound packet tells us.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Incoming {
    /// `(sender SSRC, middle 32 bits of its NTP time)` of an SR.
    pub(crate) sender_report: Option<(u32, u32)>,
    /// The SSRC of the first SR/RR (the reporter).
    pub(crate) reporter: Option<u32>,
    /// The report block about `our_ssrc`, if any.
    pub(crate) block_about_us: Option<Block>,
    /// SSRCs leaving (BYE).
    pub(crate) bye: Vec<u32>,
    /// A key-frame request for our stream: PLI about us (RFC 4585 §6.3.1), FIR with an
    /// entry for us (RFC 5104 §4.3.1) or an RFC 2032 FIR.
    pub(crate) key_frame_request: bool,
}

/// Parses a compound packet (RFC 3550 §6.1; the header checks of A.2 except "the first
/// packet is SR or RR", relaxed so that a lone BYE or a reduced-size packet (RFC 5506)
/// is still understood). Any malformed sub-packet rejects the whole datagram.
pub(crate) fn parse_compound(bytes: &[u8], our_ssrc: u32) -> Result<Incoming, RtcpParseError> {
    let mut incoming = Incoming::default();
    for packet in Compound::parse(bytes)? {
        match packet? {
            Packet::Sr(sr) => {
                incoming.sender_report = Some((sr.ssrc(), NtpTime(sr.ntp_timestamp()).middle32()));
                incoming.reporter.get_or_insert(sr.ssrc());
                if let Some(rb) = sr.report_blocks().find(|rb| rb.ssrc() == our_ssrc) {
                    incoming.block_about_us = Some(Block::from_wire(&rb));
                }
            }
            Packet::Rr(rr) => {
                incoming.reporter.get_or_insert(rr.ssrc());
                if let Some(rb) = rr.report_blocks().find(|rb| rb.ssrc() == our_ssrc) {
                    incoming.block_about_us = Some(Block::from_wire(&rb));
                }
            }
            Packet::Bye(bye) => incoming.bye.extend(bye.ssrcs()),
            Packet::PayloadFeedback(fb) => {
                incoming.key_frame_request |= match fb.count() {
                    // Some senders leave the media source 0.
                    FMT_PLI => fb.media_ssrc() == our_ssrc || fb.media_ssrc() == 0,
                    FMT_FIR => fb
                        .parse_fci::<Fir>()
                        .is_ok_and(|f| f.entries().any(|e| e.ssrc() == our_ssrc)),
                    _ => false,
                };
            }
            // One 32-bit word: the SSRC of the stream to refresh, which libre fills with
            // its own; with one source per session it can only mean ours.
            Packet::Unknown(u) if u.type_() == RFC2032_FIR => incoming.key_frame_request = true,
            // SDES, APP, other feedback, XR: nothing the session acts on.
            _ => {}
        }
    }
    Ok(incoming)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_from_system_time() {
        // 2024-01-01T00:00:00.5Z = Unix 1704067200.5.
        let t = UNIX_EPOCH + Duration::from_millis(1_704_067_200_500);
        let ntp = NtpTime::from(t);
        assert_eq!(ntp.0 >> 32, 1_704_067_200 + NTP_UNIX_OFFSET);
        assert_eq!(ntp.0 & 0xffff_ffff, 0x8000_0000);
        assert_eq!(
            ntp.middle32(),
            (((1_704_067_200 + NTP_UNIX_OFFSET) as u32) << 16) | 0x8000
        );
        assert_eq!(
            NtpTime::from(UNIX_EPOCH - Duration::from_secs(1)),
            NtpTime(NTP_UNIX_OFFSET << 32)
        );
    }

    #[test]
    fn ntp_short_round_trip() {
        assert_eq!(to_ntp_short(Duration::from_millis(1500)), 0x0001_8000);
        assert_eq!(from_ntp_short(0x0001_8000), Duration::from_millis(1500));
        assert_eq!(to_ntp_short(Duration::from_secs(1 << 20)), u32::MAX);
    }

    #[test]
    fn sr_sdes_bye_round_trip() {
        let block = Block {
            ssrc: 0xbbbb_bbbb,
            fraction_lost: 64,
            cumulative_lost: 0x00ff_fffe, // -2
            extended_highest_seq: 0x0001_0005,
            jitter: 37,
            lsr: 0x1234_5678,
            dlsr: 0x0001_0000,
        };
        let info = SenderInfo {
            ntp: NtpTime(0x0102_0304_0506_0708),
            rtp_timestamp: 160,
            packets: 10,
            octets: 1600,
        };
        let bytes = build_compound(
            0xaaaa_aaaa,
            Some(info),
            Some(block),
            "gw@example",
            None,
            Some("bye"),
        )
        .unwrap();
        assert_eq!(bytes[1], 200); // SR first
        let parsed = parse_compound(&bytes, 0xbbbb_bbbb).unwrap();
        assert_eq!(parsed.sender_report, Some((0xaaaa_aaaa, 0x0304_0506)));
        assert_eq!(parsed.reporter, Some(0xaaaa_aaaa));
        assert_eq!(parsed.block_about_us, Some(block));
        assert_eq!(parsed.bye, vec![0xaaaa_aaaa]);
        // The block is about someone else from another reader's point of view.
        assert_eq!(parse_compound(&bytes, 1).unwrap().block_about_us, None);
    }

    #[test]
    fn rr_without_blocks_is_28_bytes_with_short_cname() {
        // RR (8) + SDES header (4) + chunk: SSRC (4) + CNAME item (2 + 9) + NUL, padded to 16.
        let bytes = build_compound(7, None, None, "123456789", None, None).unwrap();
        assert_eq!(bytes.len(), 8 + 4 + 16);
        assert_eq!(&bytes[..8], &[0x80, 201, 0, 1, 0, 0, 0, 7]);
        assert_eq!(bytes[9], 202);
        let parsed = parse_compound(&bytes, 1).unwrap();
        assert_eq!(parsed.reporter, Some(7));
        assert_eq!(parsed.sender_report, None);
    }

    #[test]
    fn pli_round_trip() {
        let bytes = build_compound(7, None, None, "x", Some(0x0102_0304), None).unwrap();
        // RR, SDES, then PSFB (206) FMT 1 with sender 7 and media 0x01020304, no FCI.
        let pli = &bytes[bytes.len() - 12..];
        assert_eq!(pli, &[0x81, 206, 0, 2, 0, 0, 0, 7, 1, 2, 3, 4]);
        assert!(
            parse_compound(&bytes, 0x0102_0304)
                .unwrap()
                .key_frame_request
        );
        assert!(!parse_compound(&bytes, 5).unwrap().key_frame_request);
        let plain = build_compound(7, None, None, "x", None, None).unwrap();
        assert!(
            !parse_compound(&plain, 0x0102_0304)
                .unwrap()
                .key_frame_request
        );
    }

    #[test]
    fn key_frame_requests_from_peers() {
        let rr = build_compound(9, None, None, "peer", None, None).unwrap();
        let with = |extra: &[u8]| [rr.as_slice(), extra].concat();
        let us = 0xaabb_ccdd_u32.to_be_bytes();
        // PLI with media source 0.
        let pli0 = [0x81, 206, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0];
        assert!(
            parse_compound(&with(&pli0), 0xaabb_ccdd)
                .unwrap()
                .key_frame_request
        );
        // RFC 5104 FIR: an entry (SSRC, seq, 3 reserved bytes) for us, and one for another.
        let mut fir = vec![0x84, 206, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0];
        fir.extend_from_slice(&us);
        fir.extend_from_slice(&[1, 0, 0, 0]);
        assert!(
            parse_compound(&with(&fir), 0xaabb_ccdd)
                .unwrap()
                .key_frame_request
        );
        assert!(!parse_compound(&with(&fir), 1).unwrap().key_frame_request);
        // RFC 2032 FIR (what baresip sends), alone and after SR/RR + SDES.
        let old = [0x80, 192, 0, 1, 0, 0, 0, 9];
        assert!(parse_compound(&old, 1).unwrap().key_frame_request);
        assert!(parse_compound(&with(&old), 1).unwrap().key_frame_request);
        // Generic NACK (RTPFB) and a PSFB of another FMT (SLI) are not key-frame requests.
        let nack = [
            0x81, 205, 0, 3, 0, 0, 0, 9, 0xaa, 0xbb, 0xcc, 0xdd, 0, 5, 0, 0,
        ];
        assert!(
            !parse_compound(&with(&nack), 0xaabb_ccdd)
                .unwrap()
                .key_frame_request
        );
        let sli = [
            0x82, 206, 0, 3, 0, 0, 0, 9, 0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 0,
        ];
        assert!(
            !parse_compound(&with(&sli), 0xaabb_ccdd)
                .unwrap()
                .key_frame_request
        );
        // A truncated FIR FCI, or a PSFB too short to name a media source: no request,
        // and no panic.
        let short_fir = [0x84, 206, 0, 3, 0, 0, 0, 9, 0, 0, 0, 0, 1, 2, 3, 4];
        assert!(!parse_compound(&with(&short_fir), 0x0102_0304).is_ok_and(|i| i.key_frame_request));
        let stub = [0x81, 206, 0, 1, 0, 0, 0, 9];
        assert!(parse_compound(&with(&stub), 0).is_err());
    }

    #[test]
    fn malformed_compounds_are_errors() {
        let good = build_compound(7, None, None, "x", None, None).unwrap();
        for len in 0..good.len() {
            // Every truncation either parses to something shorter or fails; none panics.
            let _ = parse_compound(&good[..len], 1);
        }
        assert!(parse_compound(&[], 1).is_err());
        // Version 1.
        let mut v1 = good.clone();
        v1[0] = 0x40;
        assert!(parse_compound(&v1, 1).is_err());
        // Length field pointing past the end.
        let mut long = good.clone();
        long[3] = 0x40;
        assert!(parse_compound(&long, 1).is_err());
        // Garbage bytes.
        assert!(parse_compound(&[0xff; 40], 1).is_err());
    }

    #[test]
    fn mutated_compounds_never_panic() {
        let block = Block {
            ssrc: 2,
            fraction_lost: 1,
            cumulative_lost: 3,
            extended_highest_seq: 4,
            jitter: 5,
            lsr: 6,
            dlsr: 7,
        };
        let info = SenderInfo {
            ntp: NtpTime(1),
            rtp_timestamp: 2,
            packets: 3,
            octets: 4,
        };
        let good =
            build_compound(1, Some(info), Some(block), "cname", Some(9), Some("reason")).unwrap();
        let mut rng = crate::rtp::rng::Rng::new(3550);
        let mut parsed = 0;
        for _ in 0..50_000 {
            let mut p = good.clone();
            for _ in 0..=(rng.next_u32() % 3) {
                let i = (rng.next_u32() as usize) % p.len();
                p[i] = rng.next_u32() as u8;
            }
            let len = if rng.unit() < 0.3 {
                (rng.next_u32() as usize) % (p.len() + 1)
            } else {
                p.len()
            };
            parsed += usize::from(parse_compound(&p[..len], 2).is_ok());
        }
        // Some mutations (in counts or timestamps) still parse; many do not.
        assert!(parsed > 1000 && parsed < 50_000, "{parsed}");
    }
}
