//! The writing side of a connection: frames encoded into one buffer per
//! flush, handed to the transport, counted.

use std::io;

use super::transport::Transport;
use crate::protocol::{Dialect, ServerFrame};
use crate::telemetry;

/// Encodes frames for one client and hands them to its transport.
#[derive(Debug)]
pub(super) struct Writer<T> {
    transport: T,
    /// Frames encoded and not yet written, each ending in `\n`; kept
    /// between flushes so that its allocation is reused.
    buf: Vec<u8>,
}

impl<T: Transport> Writer<T> {
    pub(super) fn new(transport: T) -> Writer<T> {
        Writer {
            transport,
            buf: Vec::new(),
        }
    }

    /// The buffer to encode frames into before [`Writer::flush`].
    pub(super) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Writes what is buffered.
    pub(super) async fn flush(&mut self, dialect: Dialect) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.transport.send(&self.buf, dialect).await;
        self.buf.clear();
        result
    }

    /// Encodes and writes one frame; a frame the dialect never gets is
    /// skipped. Frames are counted before they are written, so that a
    /// client that has read a reply finds it counted.
    pub(super) async fn send(&mut self, frame: &ServerFrame, dialect: Dialect) -> io::Result<()> {
        if frame.encode(dialect, &mut self.buf) {
            telemetry::frame_out(frame, dialect);
        }
        self.flush(dialect).await
    }

    /// The transport, for reading.
    pub(super) fn transport(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Closes the transport.
    pub(super) async fn close(self) {
        self.transport.close().await;
    }
}
