//! Framing: bytes to frames, nothing about their meaning. (Encoded server
//! frames already end with `\n` and are written as they are.)
//!
//! A frame ends with `\n`; a NUL also ends one (the seed's client sends
//! JSON + NUL). Frames may arrive coalesced or split across reads; blank
//! frames (such as `\r\n` or the NUL after a `\n`) are skipped. A frame
//! longer than the limit is an error that ends the stream, since the rest
//! of the oversized frame cannot be told from the next one.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// The default maximum frame length, terminator excluded.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Why the byte stream could not be framed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame longer than {limit} bytes")]
    FrameTooLarge { limit: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into frames.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame: usize,
    /// Bytes of the buffer already searched for a terminator.
    scanned: usize,
}

impl FrameCodec {
    /// A codec that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> FrameCodec {
        FrameCodec {
            max_frame,
            scanned: 0,
        }
    }

    /// The configured limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

fn is_terminator(b: u8) -> bool {
    b == b'\n' || b == 0
}

fn is_blank(frame: &[u8]) -> bool {
    frame.iter().all(|b| b.is_ascii_whitespace())
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        loop {
            let found = src[self.scanned..].iter().position(|&b| is_terminator(b));
            let Some(offset) = found else {
                self.scanned = src.len();
                if src.len() > self.max_frame {
                    return Err(CodecError::FrameTooLarge {
                        limit: self.max_frame,
                    });
                }
                return Ok(None);
            };
            let end = self.scanned + offset;
            self.scanned = 0;
            if end > self.max_frame {
                return Err(CodecError::FrameTooLarge {
                    limit: self.max_frame,
                });
            }
            let mut frame = src.split_to(end + 1);
            frame.truncate(end);
            if !is_blank(&frame) {
                return Ok(Some(frame));
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        // A last frame without terminator still counts, as with the seed
        // server, which parsed whatever one read returned.
        self.scanned = 0;
        if src.is_empty() || is_blank(src) {
            src.clear();
            return Ok(None);
        }
        let frame = src.split_to(src.len());
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(codec: &mut FrameCodec, chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, CodecError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(frame) = codec.decode(&mut buf)? {
                out.push(frame.to_vec());
            }
        }
        while let Some(frame) = codec.decode_eof(&mut buf)? {
            out.push(frame.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn newline_and_nul_both_end_frames() {
        let mut codec = FrameCodec::default();
        let frames = decode_all(&mut codec, &[b"{\"a\":1}\n{\"b\":2}\0{\"c\":3}\r\n"]).expect("ok");
        assert_eq!(
            frames,
            vec![
                b"{\"a\":1}".to_vec(),
                b"{\"b\":2}".to_vec(),
                b"{\"c\":3}\r".to_vec()
            ]
        );
    }

    #[test]
    fn blank_frames_are_skipped() {
        let mut codec = FrameCodec::default();
        let frames = decode_all(&mut codec, &[b"\n\0 \n{}\n\0\0"]).expect("ok");
        assert_eq!(frames, vec![b"{}".to_vec()]);
    }

    #[test]
    fn unterminated_tail_is_a_frame_at_eof() {
        let mut codec = FrameCodec::default();
        let frames = decode_all(&mut codec, &[b"{\"a\":1}\n{\"b\"", b":2}"]).expect("ok");
        assert_eq!(frames, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);
    }

    #[test]
    fn frame_at_the_limit_passes_and_one_byte_more_fails() {
        let mut codec = FrameCodec::new(8);
        let frames = decode_all(&mut codec, &[b"12345678\n"]).expect("at limit");
        assert_eq!(frames, vec![b"12345678".to_vec()]);
        let mut codec = FrameCodec::new(8);
        assert!(matches!(
            decode_all(&mut codec, &[b"123456789\n"]),
            Err(CodecError::FrameTooLarge { limit: 8 })
        ));
        // Without a terminator the error comes as soon as the limit is passed.
        let mut codec = FrameCodec::new(8);
        let mut buf = BytesMut::from(&b"123456789"[..]);
        assert!(codec.decode(&mut buf).is_err());
    }

    proptest! {
        /// Any split of a frame sequence into reads decodes to the same frames.
        #[test]
        fn any_split_decodes_the_same(
            frames in proptest::collection::vec("[a-z{}\":,0-9 ]{1,40}", 1..20),
            nul in proptest::collection::vec(any::<bool>(), 20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        ) {
            let frames: Vec<String> = frames.into_iter().filter(|f| !f.trim().is_empty()).collect();
            let mut stream = Vec::new();
            for (i, f) in frames.iter().enumerate() {
                stream.extend_from_slice(f.as_bytes());
                stream.push(if nul[i % nul.len()] { 0 } else { b'\n' });
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            points.dedup();
            let chunks: Vec<&[u8]> = points.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
            let mut codec = FrameCodec::new(64);
            let decoded = decode_all(&mut codec, &chunks).expect("decodes");
            let expected: Vec<Vec<u8>> = frames.iter().map(|f| f.as_bytes().to_vec()).collect();
            prop_assert_eq!(decoded, expected);
        }
    }
}
