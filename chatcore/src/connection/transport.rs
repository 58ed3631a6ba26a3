//! A connection's transport: whole frames in, whole frames out. The state
//! machine in `mod.rs` runs over any [`Transport`]; TCP is [`TcpTransport`]:
//! the frame codec on the way in, and on the way out a write timeout and
//! the legacy dialect's pacing, which only the seed's TCP client needs.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::codec::FramedRead;

use crate::codec::{CodecError, FrameCodec};
use crate::protocol::Dialect;

/// Bytes of read buffer a connection starts with. Most frames are a few
/// hundred bytes, and an idle connection holds its buffer for as long as it
/// stays: the codec's default (8 KiB) would be most of an idle connection's
/// memory. The buffer grows when a larger frame or a burst arrives.
const READ_BUFFER: usize = 1024;

/// Why a transport could not produce a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The client sent a frame longer than the limit; the connection is
    /// answered and closed.
    #[error("frame longer than {limit} bytes")]
    TooLarge { limit: usize },
    /// The transport failed; the connection ends.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Whole frames both ways. Frames out are handed over encoded, each
/// ending in `\n` (JSON never contains a raw newline), so a transport that
/// carries one frame per message can split them.
pub trait Transport: Send {
    /// The dialect every client of this transport speaks, when the
    /// transport decides it (a WebSocket carries the native dialect only);
    /// `None` lets each login or register announce its own.
    fn dialect(&self) -> Option<Dialect> {
        None
    }

    /// The next frame from the client, without its terminator; `None` once
    /// the client closed.
    fn recv(&mut self) -> impl Future<Output = Option<Result<BytesMut, FrameError>>> + Send;

    /// Writes `frames` to a client of `dialect`. A client that does not
    /// read is an error (after the transport's write timeout).
    fn send(
        &mut self,
        frames: &[u8],
        dialect: Dialect,
    ) -> impl Future<Output = io::Result<()>> + Send;

    /// Closes the connection after everything sent.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// TCP, or any byte stream: frames end in `\n` (or NUL, on input).
#[derive(Debug)]
pub(crate) struct TcpTransport<IO> {
    frames: FramedRead<ReadHalf<IO>, FrameCodec>,
    writer: WriteHalf<IO>,
    write_timeout: Duration,
    legacy_pace: Duration,
    next_legacy_write: Instant,
}

impl<IO: AsyncRead + AsyncWrite> TcpTransport<IO> {
    /// Frames over `io`: at most `max_frame` bytes in; out, a write that
    /// cannot finish in `write_timeout` fails, and legacy frames are
    /// written one per write, `legacy_pace` apart (the seed client's single
    /// `recv` would merge frames that arrive together).
    pub(crate) fn new(
        io: IO,
        max_frame: usize,
        write_timeout: Duration,
        legacy_pace: Duration,
    ) -> TcpTransport<IO> {
        let (reader, writer) = tokio::io::split(io);
        TcpTransport {
            frames: FramedRead::with_capacity(reader, FrameCodec::new(max_frame), READ_BUFFER),
            writer,
            write_timeout,
            legacy_pace,
            next_legacy_write: Instant::now(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match timeout(self.write_timeout, self.writer.write_all(bytes)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client is not reading",
            )),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Send> Transport for TcpTransport<IO> {
    async fn recv(&mut self) -> Option<Result<BytesMut, FrameError>> {
        Some(self.frames.next().await?.map_err(|e| match e {
            CodecError::FrameTooLarge { limit } => FrameError::TooLarge { limit },
            CodecError::Io(e) => FrameError::Io(e),
        }))
    }

    async fn send(&mut self, frames: &[u8], dialect: Dialect) -> io::Result<()> {
        match dialect {
            Dialect::Native => self.write(frames).await,
            Dialect::Legacy => {
                for frame in frames.split_inclusive(|&b| b == b'\n') {
                    sleep_until(self.next_legacy_write).await;
                    let written = self.write(frame).await;
                    self.next_legacy_write = Instant::now() + self.legacy_pace;
                    written?;
                }
                Ok(())
            }
        }
    }

    async fn close(mut self) {
        let _ = self.writer.shutdown().await;
    }
}
