//! Properties of framing and parsing over generated input: valid frames
//! survive any cutting and coalescing of reads, arbitrary bytes never panic
//! and spoil only their own frame, and `ClientFrame::decode` never panics on any
//! JSON value. (The codec's own unit tests cover fixed cases; `fuzz/` holds
//! the libFuzzer versions of these properties.)

use bytes::BytesMut;
use chatcore::codec::{CodecError, FrameCodec};
use chatcore::protocol::{ClientFrame, ErrorCode, Request};
use proptest::prelude::*;
use serde_json::Value;
use tokio_util::codec::Decoder;

/// Frames from `chunks` read one after another, then end of stream; `true`
/// when decoding stopped at a frame-too-large error.
fn decode_chunks(max_frame: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut codec = FrameCodec::new(max_frame);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame.to_vec()),
                Ok(None) => break,
                Err(CodecError::FrameTooLarge { .. }) => return (frames, true),
                Err(CodecError::Io(e)) => panic!("the codec made up an I/O error: {e}"),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame.to_vec()),
            Ok(None) => return (frames, false),
            Err(CodecError::FrameTooLarge { .. }) => return (frames, true),
            Err(CodecError::Io(e)) => panic!("the codec made up an I/O error: {e}"),
        }
    }
}

/// `stream` cut at `cuts` (indexes into its length, in any order).
fn cut<'a>(stream: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    points.extend([0, stream.len()]);
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &stream[w[0]..w[1]]).collect()
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The field names of the protocol, so that generated objects reach the
/// request bodies and not only the `msgid` check.
const FIELDS: &[&str] = &[
    "id",
    "password",
    "name",
    "proto",
    "toid",
    "msg",
    "cmid",
    "friendid",
    "groupid",
    "groupname",
    "groupdesc",
    "seq",
    "after",
    "limit",
    "before",
    "rid",
];

/// An object with a `msgid` near the known ones and protocol fields holding
/// arbitrary values.
fn request_like() -> impl Strategy<Value = Value> {
    let msgid = prop_oneof![(0u32..32).prop_map(Value::from), json_value(),];
    let fields = prop::collection::vec((prop::sample::select(FIELDS), json_value()), 0..6);
    (msgid, fields).prop_map(|(msgid, fields)| {
        let mut object = serde_json::Map::new();
        object.insert("msgid".to_owned(), msgid);
        for (key, value) in fields {
            object.insert(key.to_owned(), value);
        }
        Value::Object(object)
    })
}

/// Frame ends as clients send them, with blank frames among them.
const SEPARATORS: &[&[u8]] = &[b"\n", b"\0", b"\r\n", b"\n\n", b"\0\n", b"\n \t\n"];

proptest! {
    /// Valid JSON frames, separated by `\n`, NUL or `\r\n` with blank frames
    /// between, decode to the same frames however the stream is cut into
    /// reads, and when it all arrives in one read.
    #[test]
    fn valid_frames_survive_any_cutting_and_coalescing(
        values in prop::collection::vec(request_like(), 1..12),
        separators in prop::collection::vec(prop::sample::select(SEPARATORS), 12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let frames: Vec<Vec<u8>> = values.iter().map(|v| v.to_string().into_bytes()).collect();
        let mut stream = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            stream.extend_from_slice(frame);
            stream.extend_from_slice(separators[i % separators.len()]);
        }
        // `\r\n` leaves the `\r` in the frame, which JSON reads as blank.
        let trimmed = |frames: Vec<Vec<u8>>| -> Vec<Vec<u8>> {
            frames.into_iter().map(|mut f| { while f.last() == Some(&b'\r') { f.pop(); } f }).collect()
        };
        let max = frames.iter().map(Vec::len).max().unwrap_or(0) + 1;
        let (one_read, too_large) = decode_chunks(max, &[&stream]);
        prop_assert!(!too_large);
        prop_assert_eq!(&trimmed(one_read), &frames);
        let (many_reads, too_large) = decode_chunks(max, &cut(&stream, &cuts));
        prop_assert!(!too_large);
        prop_assert_eq!(&trimmed(many_reads), &frames);
        for (frame, value) in frames.iter().zip(&values) {
            let parsed = ClientFrame::decode(frame);
            if let Ok(parsed) = parsed {
                prop_assert_eq!(Some(u64::from(parsed.request.msgid())), value["msgid"].as_u64());
            }
        }
    }

    /// Arbitrary bytes cut arbitrarily never panic the codec or the parser,
    /// and give the same frames as one read; a bad frame spoils only
    /// itself: the PING after it still parses.
    #[test]
    fn arbitrary_bytes_never_panic_and_errors_stay_in_their_frame(
        garbage in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        limit in 1usize..400,
    ) {
        let mut stream = garbage.clone();
        stream.extend_from_slice(b"\n{\"msgid\":27,\"rid\":99}\n");
        let whole = decode_chunks(limit, &[&stream]);
        let pieces = decode_chunks(limit, &cut(&stream, &cuts));
        prop_assert_eq!(&pieces, &whole);
        let (frames, too_large) = whole;
        for frame in &frames {
            prop_assert!(frame.len() <= limit);
            prop_assert!(!frame.contains(&b'\n') && !frame.contains(&0));
            if let Err(e) = ClientFrame::decode(frame) {
                prop_assert!(e.code.errno() > 0 && !e.detail.is_empty());
            }
        }
        // Unless a piece of garbage was over the limit (which ends the
        // stream by design), the PING is the last frame and parses.
        let longest = garbage.split(|&b| b == b'\n' || b == 0).map(<[u8]>::len).max().unwrap_or(0);
        if longest <= limit && limit >= 22 {
            prop_assert!(!too_large);
            let last = frames.last().expect("the ping frame");
            let ping = ClientFrame::decode(last).expect("the ping parses");
            prop_assert_eq!(ping.rid, Some(99));
            prop_assert_eq!(ping.request, Request::Ping);
        } else if longest > limit {
            prop_assert!(too_large);
        }
    }

    /// `ClientFrame::decode` answers every JSON value with a request or an error
    /// naming a stable errno, never a panic; what it accepts keeps its
    /// `msgid` and `rid`.
    #[test]
    fn parse_never_panics_on_json_values(value in prop_oneof![json_value(), request_like()]) {
        let bytes = value.to_string().into_bytes();
        match ClientFrame::decode(&bytes) {
            Ok(frame) => {
                prop_assert_eq!(Some(u64::from(frame.request.msgid())), value["msgid"].as_u64());
                prop_assert_eq!(frame.rid, value.get("rid").and_then(Value::as_u64));
            }
            Err(e) => {
                prop_assert!(ErrorCode::from_errno(e.code.errno()).is_some());
                if !value.is_object() {
                    prop_assert_eq!(e.code, ErrorCode::BadFrame);
                }
            }
        }
    }
}

#[test]
fn a_rid_that_is_not_an_unsigned_integer_is_a_bad_field() {
    for rid in ["-1", "1.5", "\"7\"", "18446744073709551616", "1e3"] {
        let frame = format!("{{\"msgid\":27,\"rid\":{rid}}}");
        let e = ClientFrame::decode(frame.as_bytes()).expect_err("bad rid");
        assert_eq!(e.code, ErrorCode::BadField, "rid {rid}");
    }
}
