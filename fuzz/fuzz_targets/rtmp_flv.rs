//! FLV reader on arbitrary bytes pushed in arbitrary pieces: nothing may panic; the tags
//! read are the same whatever the split; every tag read survives a round trip through the
//! writer and a fresh reader unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_rtmp::flv::{FlvReader, Tag, file_header, write_tag};

fn read_all(r: &mut FlvReader) -> Vec<Tag> {
    let mut v = Vec::new();
    while let Ok(Some(t)) = r.next_tag() {
        v.push(t);
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    // Whole input at once.
    let mut whole = FlvReader::new();
    whole.push(body);
    let tags = read_all(&mut whole);

    // The same bytes in pieces of 1..=split+1 bytes.
    let step = usize::from(split) + 1;
    let mut pieces = FlvReader::new();
    let mut got = Vec::new();
    for chunk in body.chunks(step) {
        pieces.push(chunk);
        got.extend(read_all(&mut pieces));
        let _ = pieces.wanted();
    }
    assert_eq!(got, tags, "tags depend on how the input was split");

    // Written back and read again: identical tags.
    let mut out = file_header(true, true).to_vec();
    for t in &tags {
        assert!(write_tag(&mut out, t.kind, t.timestamp, &t.body));
    }
    let mut again = FlvReader::new();
    again.push(&out);
    assert_eq!(read_all(&mut again), tags);
    assert_eq!(again.truncated(), 0);
});
