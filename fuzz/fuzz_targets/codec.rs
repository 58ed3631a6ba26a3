//! The frame codec over arbitrary bytes cut into arbitrary reads: it never
//! panics, and it yields exactly what a plain reference splitter yields from
//! the whole stream at once (the same frames, then the same error), however
//! the stream was cut.

#![no_main]

use bytes::BytesMut;
use chatcore::codec::{CodecError, FrameCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

/// Frames decoded from `chunks` fed one after another, then end of stream;
/// `true` when decoding stopped at a frame-too-large error.
fn decode(max_frame: usize, chunks: &[Vec<u8>]) -> (Vec<Vec<u8>>, bool) {
    let mut codec = FrameCodec::new(max_frame);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame.to_vec()),
                Ok(None) => break,
                Err(CodecError::FrameTooLarge { limit }) => {
                    assert_eq!(limit, max_frame);
                    return (frames, true);
                }
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

/// The framing rules stated plainly: split at every `\n` and NUL, skip blank
/// pieces, stop at the first piece longer than the limit; an unterminated
/// tail is a frame at end of stream.
fn reference(max_frame: usize, stream: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut frames = Vec::new();
    for piece in stream.split(|&b| b == b'\n' || b == 0) {
        if piece.len() > max_frame {
            return (frames, true);
        }
        if !piece.iter().all(u8::is_ascii_whitespace) {
            frames.push(piece.to_vec());
        }
    }
    (frames, false)
}

fuzz_target!(|input: (u8, Vec<Vec<u8>>)| {
    let (limit, chunks) = input;
    // Small limits reach the too-large paths with small inputs.
    let max_frame = usize::from(limit % 64) + 1;
    let (frames, too_large) = decode(max_frame, &chunks);
    let stream = chunks.concat();
    assert_eq!((frames, too_large), reference(max_frame, &stream));
});
