//! Hostile input: every malformed description is an `Err`, never a panic.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns load fixtures

use switchboard_sdp::{
    AnswerParams, SdpError, answer, apply_answer, capabilities_from_codec_list, parse, reoffer,
};

const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n";

fn malformed(bytes: &[u8]) -> String {
    match parse(bytes) {
        Err(SdpError::Malformed(reason)) => reason,
        other => panic!("{:?} parsed as {other:?}", String::from_utf8_lossy(bytes)),
    }
}

#[test]
fn garbage_and_truncation() {
    for bytes in [
        &b""[..],
        b"\r\n\r\n",
        b"hello world",
        b"INVITE sip:bob@example.com SIP/2.0\r\n",
        b"v=1\r\n",
        b"v=0",
        b"v=0\r\n",
        b"v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
        b"v=0\r\ns=-\r\nt=0 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 4000\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 4000 RTP/AVP\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 4000 RTP/AVP \r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nxyz\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nab=c\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\na=x\0y\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=\xff\xfe\r\n",
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\no=- 2 2 IN IP4 1.2.3.4\r\n",
        b"\x00\x01\x02\x03",
    ] {
        malformed(bytes);
    }
}

#[test]
fn bad_ports_and_huge_numbers() {
    for tail in [
        "m=audio 70000 RTP/AVP 0\r\n",
        "m=audio -1 RTP/AVP 0\r\n",
        "m=audio abc RTP/AVP 0\r\n",
        "m=audio 4000/x RTP/AVP 0\r\n",
        "m=audio 18446744073709551616 RTP/AVP 0\r\n",
        "m=audio 4000 RTP/AVP 128\r\n",
        "m=audio 4000 RTP/AVP 4294967296\r\n",
        "m=audio 4000 RTP/AVP 0 x\r\n",
        "m=audio 4000 RTP/AVP 096x\r\n",
        "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 speex/99999999999\r\n",
        "m=audio 4000 RTP/AVP 96\r\na=rtpmap:300 speex/8000\r\n",
        "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96\r\n",
        "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/1000\r\n",
        "b=AS:99999999999999999999999\r\n",
    ] {
        malformed(format!("{HEAD}{tail}").as_bytes());
    }
    malformed(b"v=0\r\no=- 1 99999999999999999999999 IN IP4 1.2.3.4\r\ns=-\r\n");
    malformed(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=99999999999999999999999 0\r\n");
    let err = parse(b"garbage").unwrap_err();
    assert_eq!(err.sip_status(), 400);
    assert!(err.to_string().starts_with("malformed SDP"));
}

#[test]
fn lenient_where_it_does_not_matter() {
    // Unknown attributes, bad ptime, unknown transport fmt, and dynamic pts without
    // rtpmap parse; they are simply not understood.
    let s = parse(
        format!(
            "{HEAD}m=audio 4000 RTP/AVP 0 97\r\na=ptime:twenty\r\na=x-whatever\r\na=rtcp:junk\r\n\
             m=application 5000 TCP/BFCP *\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let audio = s.media(0).unwrap();
    assert_eq!(audio.ptime(), None);
    assert_eq!(audio.rtcp(), None);
    assert_eq!(audio.formats().len(), 1, "97 has no rtpmap");
    assert_eq!(s.media(1).unwrap().fmt(), "*");
}

/// Deterministic xorshift, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_recordings_never_panic() {
    let dir = format!("{}/tests/data", env!("CARGO_MANIFEST_DIR"));
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "sdp"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 10);
    let local = capabilities_from_codec_list(
        &[
            "wideband",
            "narrowband",
            "pcmu",
            "pcma",
            "dtmf",
            "h264",
            "flv",
        ],
        true,
        false,
    );
    let params = AnswerParams {
        addr: "192.0.2.1".parse().unwrap(),
        ports: vec![10000, 10002],
        session_id: 1,
        session_version: 1,
    };
    let tokens: &[&[u8]] = &[
        b"\r\n",
        b" ",
        b"0",
        b"/",
        b":",
        b"=",
        b"m=",
        b"a=",
        b"c=IN IP4 0.0.0.0",
        b"999999999999",
        b"128",
        b"\xff",
        b"\0",
        b"a=rtpmap:",
        b"a=sendonly",
        b"m=audio 0 RTP/AVP 0",
    ];
    let mut rng = Rng(0x05ee_d5d9_cafe);
    let mut parsed = 0;
    // SDP_MUTATION_ROUNDS=1000000 for a longer local run.
    let rounds: usize = std::env::var("SDP_MUTATION_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(6000);
    for round in 0..rounds {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(4) {
                0 => {
                    let t = tokens[rng.below(tokens.len())];
                    bytes.splice(at..at, t.iter().copied());
                }
                1 => {
                    let end = (at + rng.below(16)).min(bytes.len());
                    bytes.drain(at..end);
                }
                2 if at < bytes.len() => bytes[at] = rng.next() as u8,
                _ => bytes.truncate(at),
            }
        }
        if let Ok(session) = parse(&bytes) {
            parsed += 1;
            // Whatever parses must print, reparse, and survive offer/answer.
            let again = parse(&session.to_bytes()).expect("own output reparses");
            assert_eq!(again.to_bytes(), session.to_bytes());
            if let Ok((ans, _)) = answer(&session, &local, &params) {
                assert_eq!(ans.media_count(), session.media_count());
                let _ = apply_answer(&session, &ans);
            }
            let _ = reoffer(&session, round % 2 == 0);
            let _ = session.is_hold();
            for m in session.medias() {
                let _ = (
                    m.formats(),
                    m.rtp_addr(),
                    m.rtcp_addr(),
                    m.effective_direction(),
                );
            }
        }
    }
    assert!(
        parsed > 100,
        "mutations should not all be fatal ({parsed}/{rounds})"
    );
}
