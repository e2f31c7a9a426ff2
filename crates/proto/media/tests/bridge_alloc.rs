//! The bridge's per-frame path allocates nothing after warm-up: a counting global
//! allocator (this test binary only) watches every path, both directions, with a lost
//! packet, a corrupt one and telephone-events in the mix.

#![allow(clippy::expect_used)] // test helpers outside #[test] fns

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use switchboard_media::bridge::{Bridge, BridgeConfig, LegFormat, MediaFrame, Side};
use switchboard_media::codec::{self, Codec};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Counting is on for this thread only (the test harness allocates on others).
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counter and the
// const-initialised thread-local never allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for alloc/dealloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// 20 ms packets of a 1 kHz tone in `leg`'s codec and framing.
fn packets(leg: LegFormat, n: usize) -> Vec<Vec<u8>> {
    let c = leg.codec();
    let mut enc = codec::encoder(c).expect("encoder");
    let samples = c.frame_samples() * leg.frames_per_packet() as usize;
    (0..n)
        .map(|k| {
            let pcm: Vec<i16> = (0..samples)
                .map(|i| {
                    let t = (k * samples + i) as f64 / f64::from(c.pcm_rate());
                    (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
                })
                .collect();
            let mut p = Vec::new();
            enc.encode(&pcm, &mut p).expect("encode");
            p
        })
        .collect()
}

#[test]
fn no_allocation_per_frame_after_warm_up() {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    // The counter counts.
    ARMED.with(|a| a.set(true));
    std::hint::black_box(vec![1u8; 10]);
    ARMED.with(|a| a.set(false));
    assert_eq!(ALLOCATIONS.swap(0, Ordering::Relaxed), 1);
    let pairs = [
        (Codec::Pcmu, Codec::Pcmu),
        (Codec::Pcmu, Codec::Pcma),
        (Codec::SpeexWb, Codec::SpeexNb),
        (Codec::Opus, Codec::Pcmu),
        (Codec::SpeexWb, Codec::Pcmu),
        (Codec::G722, Codec::Pcmu),
        (Codec::SpeexWb, Codec::Opus),
    ];
    for (x, y) in pairs
        .into_iter()
        .filter(|(x, y)| x.is_available() && y.is_available())
    {
        for flash in [false, true] {
            let mut lx = LegFormat::new(x, 96).with_telephone_event(101);
            if flash && x == Codec::SpeexWb {
                lx = lx.with_frames_per_packet(2);
            }
            let ly = LegFormat::new(y, 97);
            let mut bridge = Bridge::new(lx, ly, &BridgeConfig::default()).unwrap();
            let (px, py) = (packets(lx, 100), packets(ly, 100));
            let (tx, ty) = (
                u64::from(x.rtp_clock()) / 50 * u64::from(lx.frames_per_packet()),
                u64::from(y.rtp_clock()) / 50,
            );
            // Returns the packets sent on (A, B).
            let run = |bridge: &mut Bridge, range: std::ops::Range<usize>| {
                let mut sent = [0usize; 2];
                for i in range {
                    if i != 70 {
                        bridge.push(now, Side::A, MediaFrame::audio(&px[i], i as u64 * tx));
                    }
                    let corrupt = [0xFFu8; 2];
                    let payload: &[u8] = if i == 80 { &corrupt } else { &py[i] };
                    bridge.push(now, Side::B, MediaFrame::audio(payload, i as u64 * ty));
                    if i == 85 {
                        bridge.lost(now, Side::B, ty as u32);
                    }
                    if (60..66).contains(&i) {
                        let ev = [5, if i == 65 { 0x8A } else { 0x0A }, 0, 160];
                        bridge.push(now, Side::A, MediaFrame::dtmf(&ev, 60 * tx));
                        bridge.push(now, Side::B, MediaFrame::dtmf(&ev, 60 * ty));
                    }
                    for (k, side) in [Side::A, Side::B].into_iter().enumerate() {
                        while bridge.poll(side).is_some_and(|f| !f.payload.is_empty()) {
                            sent[k] += 1;
                        }
                    }
                    while bridge.poll_event().is_some() {}
                }
                sent
            };
            // Warm-up: the first packets and a first telephone-event of each kind.
            run(&mut bridge, 0..10);
            for (side, t) in [(Side::A, 5 * tx), (Side::B, 5 * ty)] {
                bridge.push(now, side, MediaFrame::dtmf(&[1, 0x8A, 0, 160], t));
            }
            while bridge.poll_event().is_some() {}
            ALLOCATIONS.store(0, Ordering::Relaxed);
            ARMED.with(|a| a.set(true));
            let sent = run(&mut bridge, 10..100);
            ARMED.with(|a| a.set(false));
            assert!(sent[0] >= 40 && sent[1] >= 40, "{x:?}↔{y:?}: {sent:?}");
            let n = ALLOCATIONS.load(Ordering::Relaxed);
            assert_eq!(
                n, 0,
                "{x:?}↔{y:?} (flash {flash}): {n} allocations in 90 packets"
            );
        }
    }
}
