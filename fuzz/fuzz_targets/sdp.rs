//! SDP parsing, printing and answering on arbitrary bytes: nothing may panic, printed
//! output must parse again, and an answer keeps the offer's m-line count (RFC 3264 §6).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sdp::{AnswerParams, answer, capabilities_from_codec_list, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(session) = parse(data) else {
        return;
    };
    let printed = session.to_bytes();
    assert!(parse(&printed).is_ok(), "printed SDP does not parse again");
    let local = capabilities_from_codec_list(&["wideband", "pcmu", "pcma", "dtmf", "flv"], true, false);
    let params = AnswerParams {
        addr: "127.0.0.1".parse().unwrap(),
        ports: vec![40000, 40002],
        session_id: 1,
        session_version: 1,
    };
    if let Ok((ans, _)) = answer(&session, &local, &params) {
        assert_eq!(ans.media_count(), session.media_count());
        assert!(parse(&ans.to_bytes()).is_ok());
    }
});
