//! AMF0/AMF3 command and data decoding on arbitrary bytes: nothing may panic or blow
//! up in memory, decoded values encode again, and that encoding is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_rtmp::amf::{
    AmfError, Command, ObjectEncoding, decode_data, decode_values, encode_value, normalize,
};

fn encode_all(values: &[switchboard_rtmp::Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode_value(v, &mut out).expect("decoded values encode");
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = decode_values(data) {
        let first = encode_all(&values);
        match decode_values(&first) {
            Ok(again) => assert_eq!(encode_all(&again), first),
            // References are expanded when re-encoding, so the copy may cost more.
            Err(AmfError::TooLarge) => {}
            Err(e) => panic!("re-encoded values do not decode: {e}"),
        }
        for v in values {
            let mut out = Vec::new();
            let _ = encode_value(&normalize(v), &mut out);
        }
    }
    for type_id in [17u8, 20] {
        if let Ok(cmd) = Command::decode(type_id, data) {
            for enc in [ObjectEncoding::Amf0, ObjectEncoding::Amf3] {
                let (t, body) = cmd.encode(enc).expect("decoded commands encode");
                if let Ok(back) = Command::decode(t, &body) {
                    assert_eq!(back.name, cmd.name);
                    assert_eq!(back.args.len(), cmd.args.len());
                }
            }
        }
    }
    let _ = decode_data(15, data);
});
