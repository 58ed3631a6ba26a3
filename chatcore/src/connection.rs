//! The connection driver: one task per client that owns its socket, reads
//! frames, hands typed requests to the service, and writes replies and
//! deliveries. Works over any `AsyncRead + AsyncWrite`.
//!
//! Delivery to a session is driven by one number, `delivered`: the highest
//! inbox `seq` written to this socket. A doorbell for `delivered + 1` is
//! written at once; an older one is dropped; a newer one (a gap) or a
//! refill request reads the store from `delivered` onwards. Login sync is
//! the same mechanism starting from the acked cursor.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::codec::{CodecError, DEFAULT_MAX_FRAME, FrameCodec};
use crate::hub::{SessionControl, SessionEvent};
use crate::limit::{RateLimit, TokenBucket};
use crate::model::{InboxEntry, Message, Seq};
use crate::protocol::{
    Dialect, ErrorCode, ErrorReply, LoginOk, Request, ServerFrame, encode_login, msgid,
};
use crate::service::{ChatService, ConnState, Session};
use crate::telemetry::{self, DeliveryPath};

/// Bytes of read buffer a connection starts with. Most frames are a few
/// hundred bytes, and an idle connection holds its buffer for as long as it
/// stays: the codec's default (8 KiB) would be most of an idle connection's
/// memory. The buffer grows when a larger frame or a burst arrives.
const READ_BUFFER: usize = 1024;

/// Per-connection limits and timings.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Longest accepted frame, in bytes.
    pub max_frame: usize,
    /// Deliveries queued for one session before it must refill from the
    /// store instead.
    pub outbox_capacity: usize,
    /// A native session that sent nothing for this long gets a PING; after
    /// three times this long it is closed.
    pub heartbeat: Duration,
    /// Pause between frames to a legacy client, whose single `recv` would
    /// merge frames that arrive together.
    pub legacy_pace: Duration,
    /// A write that cannot complete in this time marks a client that does
    /// not read: it is disconnected (and resumes from its cursor later).
    pub write_timeout: Duration,
    /// Requests per second (and burst) one connection may send; PING and
    /// PONG are not counted, so heartbeats always get through.
    pub rate_limit: RateLimit,
    /// A connection not logged in this long after it opened (or after its
    /// logout) is closed; `None` lets it wait forever.
    pub login_timeout: Option<Duration>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            max_frame: DEFAULT_MAX_FRAME,
            outbox_capacity: 1024,
            heartbeat: Duration::from_secs(30),
            legacy_pace: Duration::from_millis(10),
            write_timeout: Duration::from_secs(30),
            rate_limit: RateLimit::default(),
            login_timeout: Some(Duration::from_secs(120)),
        }
    }
}

/// The writing half with the dialect's rules: legacy gets one frame per
/// write, paced; native frames are batched.
struct Outgoing<W> {
    io: W,
    config: ConnectionConfig,
    next_legacy_write: Instant,
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> Outgoing<W> {
    async fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        match timeout(self.config.write_timeout, self.io.write_all(bytes)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client is not reading",
            )),
        }
    }

    /// Writes frames already encoded in `self.buf` (each ending in `\n`).
    async fn flush_buf(&mut self, dialect: Dialect) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let result = match dialect {
            Dialect::Native => self.write_raw(&buf).await,
            Dialect::Legacy => {
                let mut result = Ok(());
                for frame in buf.split_inclusive(|&b| b == b'\n') {
                    sleep_until(self.next_legacy_write).await;
                    result = self.write_raw(frame).await;
                    self.next_legacy_write = Instant::now() + self.config.legacy_pace;
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
        };
        self.buf = buf;
        self.buf.clear();
        result
    }

    async fn send(&mut self, frame: &ServerFrame, dialect: Dialect) -> io::Result<()> {
        let encoded = frame.encode(dialect, &mut self.buf);
        self.flush_buf(dialect).await?;
        if encoded {
            telemetry::frame_out(frame, dialect);
        }
        Ok(())
    }
}

/// What the driver tracks of the logged-in session.
struct Live {
    session: Session,
    delivered: Seq,
}

/// Why the loop ended.
enum Exit {
    Closed,
    Kicked(ErrorCode),
    /// Anonymous for longer than the login timeout.
    NoLogin(Duration),
    Error(io::Error),
}

/// Serves one client connection until it closes, the session is ended, or
/// `shutdown` fires. `peer` is the client's address when the transport has
/// one (failed logins are also counted per address).
pub async fn serve<IO>(
    io: IO,
    peer: Option<IpAddr>,
    service: ChatService,
    config: ConnectionConfig,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin,
{
    let _open = telemetry::OpenConnection::count();
    let (reader, writer) = tokio::io::split(io);
    let mut frames =
        FramedRead::with_capacity(reader, FrameCodec::new(config.max_frame), READ_BUFFER);
    let (outbox, mut events) = mpsc::channel(config.outbox_capacity.max(1));
    let mut conn = ConnState::new(outbox, peer);
    let mut out = Outgoing {
        io: writer,
        config: config.clone(),
        next_legacy_write: Instant::now(),
        buf: Vec::new(),
    };
    let mut driver = Driver {
        service: service.clone(),
        live: None,
        retry_refill_at: None,
        last_inbound: Instant::now(),
        last_ping: Instant::now(),
        login_deadline: config.login_timeout.map(|t| Instant::now() + t),
        login_timeout: config.login_timeout,
        bucket: TokenBucket::new(config.rate_limit, Instant::now()),
    };

    let exit = loop {
        let control: Option<Arc<SessionControl>> =
            driver.live.as_ref().map(|l| Arc::clone(&l.session.control));
        let dialect = conn.dialect();
        let heartbeat_due = driver.last_inbound.max(driver.last_ping) + config.heartbeat;
        let heartbeat_on = dialect == Dialect::Native && driver.live.is_some();
        // Output before input: deliveries and refills owed to this client
        // are written before its next request is read. A client that keeps
        // its send window full would otherwise always have a frame ready,
        // and its deliveries would wait behind every one of its requests
        // (the outbox would overflow into store refills, and delivery
        // latency would grow for as long as it kept sending).
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Exit::Kicked(ErrorCode::ShuttingDown),
            _ = async { control.as_ref()?.ended().await; Some(()) }, if control.is_some() => {
                let reason = control.as_ref().and_then(|c| c.reason()).unwrap_or(ErrorCode::Kicked);
                break Exit::Kicked(reason);
            }
            Some(event) = events.recv(), if driver.live.is_some() => {
                let mut batch = vec![event];
                while batch.len() < 256 {
                    match events.try_recv() {
                        Ok(event) => batch.push(event),
                        Err(_) => break,
                    }
                }
                if let Err(e) = driver.deliver(&mut out, dialect, batch).await {
                    break Exit::Error(e);
                }
            }
            _ = async { control.as_ref()?.refill_requested().await; Some(()) }, if control.is_some() => {
                if let Err(e) = driver.refill(&mut out, dialect).await {
                    break Exit::Error(e);
                }
            }
            _ = sleep_until(driver.retry_refill_at.unwrap_or_else(Instant::now)), if driver.retry_refill_at.is_some() => {
                driver.retry_refill_at = None;
                if let Err(e) = driver.refill(&mut out, dialect).await {
                    break Exit::Error(e);
                }
            }
            _ = sleep_until(driver.login_deadline.unwrap_or_else(Instant::now)),
                if driver.live.is_none() && driver.login_deadline.is_some() =>
            {
                break Exit::NoLogin(config.login_timeout.unwrap_or_default());
            }
            frame = frames.next() => {
                driver.last_inbound = Instant::now();
                let result = match frame {
                    None => break Exit::Closed,
                    Some(Err(CodecError::FrameTooLarge { limit })) => {
                        telemetry::frame_in(None);
                        let reply = ServerFrame::Error(ErrorReply {
                            rid: None,
                            req: None,
                            code: ErrorCode::FrameTooLarge,
                            detail: format!("frame longer than {limit} bytes"),
                        });
                        let _ = out.send(&reply, dialect).await;
                        break Exit::Closed;
                    }
                    Some(Err(CodecError::Io(e))) => break Exit::Error(e),
                    // Boxed: a request's future (any handler's) is the
                    // largest state of this task, and an idle connection
                    // would carry its size all the time; boxed it lives
                    // only while a request runs (2.5 KB -> 1.3 KB a task).
                    Some(Ok(bytes)) => {
                        Box::pin(driver.request(&mut conn, &mut out, &bytes, &mut events)).await
                    }
                };
                if let Err(e) = result {
                    break Exit::Error(e);
                }
            }
            _ = sleep_until(heartbeat_due), if heartbeat_on => {
                if driver.last_inbound.elapsed() >= config.heartbeat * 3 {
                    break Exit::Kicked(ErrorCode::IdleTimeout);
                }
                driver.last_ping = Instant::now();
                if let Err(e) = out.send(&ServerFrame::Ping, dialect).await {
                    break Exit::Error(e);
                }
            }
        }
    };

    match exit {
        Exit::Kicked(code) => {
            tracing::debug!(?code, "ending connection");
            let _ = out
                .send(&ServerFrame::Kicked { code }, conn.dialect())
                .await;
        }
        Exit::NoLogin(limit) => {
            tracing::debug!("closing a connection that did not log in");
            // An error frame rather than a kicked notice: there is no
            // session to end, and it reads the same in both dialects.
            let reply = ServerFrame::Error(ErrorReply {
                rid: None,
                req: None,
                code: ErrorCode::IdleTimeout,
                detail: format!("not logged in within {} s", limit.as_secs()),
            });
            let _ = out.send(&reply, conn.dialect()).await;
        }
        Exit::Error(e) => tracing::debug!(error = %e, "connection failed"),
        Exit::Closed => {}
    }
    service.end_session(&mut conn).await;
    let _ = out.io.shutdown().await;
}

struct Driver {
    service: ChatService,
    live: Option<Live>,
    retry_refill_at: Option<Instant>,
    last_inbound: Instant,
    last_ping: Instant,
    /// When an anonymous connection is closed; restarts at logout.
    login_deadline: Option<Instant>,
    login_timeout: Option<Duration>,
    bucket: TokenBucket,
}

/// The dialect a request announces on an anonymous connection (login and
/// register carry it; a token is only ever issued to native clients).
fn announced_dialect(request: &Request) -> Option<Dialect> {
    match request {
        Request::Login(login) => Some(Dialect::from_proto(login.proto)),
        Request::Register(register) => Some(Dialect::from_proto(register.proto)),
        Request::Resume(_) => Some(Dialect::Native),
        _ => None,
    }
}

/// The dialect of a reply to a request that did not run: the one the
/// request announced while the connection is anonymous, the session's
/// otherwise.
fn reply_dialect(conn: &ConnState, announced: Option<Dialect>) -> Dialect {
    match (conn.session(), announced) {
        (None, Some(announced)) => announced,
        _ => conn.dialect(),
    }
}

impl Driver {
    async fn request<W: AsyncWrite + Unpin>(
        &mut self,
        conn: &mut ConnState,
        out: &mut Outgoing<W>,
        bytes: &[u8],
        events: &mut mpsc::Receiver<SessionEvent>,
    ) -> io::Result<()> {
        let parsed = Request::parse(bytes);
        // Heartbeats are exempt: a liveness check must not fail because
        // the client was busy.
        let exempt = matches!(&parsed, Ok(f) if matches!(f.request, Request::Ping | Request::Pong));
        if !exempt && !self.bucket.try_take(Instant::now()) {
            let (rid, req, announced) = match &parsed {
                Ok(f) => (
                    f.rid,
                    Some(f.request.msgid()),
                    announced_dialect(&f.request),
                ),
                Err(e) => (
                    e.rid,
                    e.msgid,
                    e.proto.map(|p| Dialect::from_proto(Some(p))),
                ),
            };
            telemetry::frame_in(req);
            let reply = ServerFrame::Error(ErrorReply {
                rid,
                req,
                code: ErrorCode::RateLimited,
                detail: ErrorCode::RateLimited.message().to_owned(),
            });
            return out.send(&reply, reply_dialect(conn, announced)).await;
        }
        let frame = match parsed {
            Ok(frame) => {
                telemetry::frame_in(Some(frame.request.msgid()));
                frame
            }
            Err(e) => {
                telemetry::frame_in(e.msgid);
                // An anonymous client announces its dialect in the frame
                // that failed to parse.
                let announced = e.proto.map(|p| Dialect::from_proto(Some(p)));
                let reply = ServerFrame::Error(ErrorReply {
                    rid: e.rid,
                    req: e.msgid,
                    code: e.code,
                    detail: e.detail,
                });
                return out.send(&reply, reply_dialect(conn, announced)).await;
            }
        };
        let reply = self.service.handle(conn, frame).await;
        let dialect = conn.dialect();
        if self.live.is_some() && conn.session().is_none() {
            // Logged out: deliveries still queued belonged to that session.
            self.live = None;
            self.retry_refill_at = None;
            self.login_deadline = self.login_timeout.map(|t| Instant::now() + t);
            while events.try_recv().is_ok() {}
        }
        match reply {
            Some(ServerFrame::LoginOk(login)) => self.logged_in(conn, out, *login).await,
            Some(frame) => out.send(&frame, dialect).await,
            None => Ok(()),
        }
    }

    /// Writes the login reply and the first page of the backlog.
    async fn logged_in<W: AsyncWrite + Unpin>(
        &mut self,
        conn: &ConnState,
        out: &mut Outgoing<W>,
        login: LoginOk,
    ) -> io::Result<()> {
        let Some(session) = conn.session().cloned() else {
            return Ok(());
        };
        let dialect = conn.dialect();
        let carried = encode_login(&login, &login.backlog, dialect, &mut out.buf);
        out.flush_buf(dialect).await?;
        telemetry::frames_out(msgid::LOGIN_ACK, 1);
        telemetry::deliveries(DeliveryPath::Store, carried as u64);
        self.live = Some(Live {
            session,
            delivered: login.cursor,
        });
        if carried > 0 {
            self.advance(login.backlog[carried - 1].seq, dialect).await;
        }
        let full_page = login.backlog.len() >= self.service.config().sync_page as usize;
        self.write_entries(out, dialect, &login.backlog[carried..])
            .await?;
        if full_page {
            self.refill(out, dialect).await?;
        }
        Ok(())
    }

    /// Records that everything up to `seq` is written; legacy clients never
    /// ack, so for them this is the acked cursor.
    async fn advance(&mut self, seq: Seq, dialect: Dialect) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        live.delivered = seq;
        if dialect == Dialect::Legacy
            && let Err(e) = self.service.mark_delivered(&live.session, seq).await
        {
            tracing::warn!(error = %e, "could not record legacy delivery");
        }
    }

    async fn write_entries<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut Outgoing<W>,
        dialect: Dialect,
        entries: &[InboxEntry],
    ) -> io::Result<()> {
        let pushes: Vec<(Seq, Arc<Message>)> = entries
            .iter()
            .map(|e| (e.seq, Arc::new(e.message.clone())))
            .collect();
        self.write_pushes(out, dialect, pushes, DeliveryPath::Store)
            .await
    }

    /// Writes in-order pushes past `delivered` and advances it.
    async fn write_pushes<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut Outgoing<W>,
        dialect: Dialect,
        pushes: Vec<(Seq, Arc<Message>)>,
        path: DeliveryPath,
    ) -> io::Result<()> {
        let Some(live) = self.live.as_ref() else {
            return Ok(());
        };
        let mut last = live.delivered;
        let (mut one_to_one, mut group) = (0, 0);
        for (seq, message) in pushes {
            if seq != last.next() {
                continue;
            }
            match telemetry::push_msgid(&message) {
                msgid::GROUP_CHAT => group += 1,
                _ => one_to_one += 1,
            }
            ServerFrame::Push { seq, message }.encode(dialect, &mut out.buf);
            last = seq;
        }
        out.flush_buf(dialect).await?;
        telemetry::frames_out(msgid::ONE_CHAT, one_to_one);
        telemetry::frames_out(msgid::GROUP_CHAT, group);
        telemetry::deliveries(path, one_to_one + group);
        if last != live.delivered {
            self.advance(last, dialect).await;
        }
        Ok(())
    }

    /// Writes live deliveries; a gap switches to a refill from the store.
    async fn deliver<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut Outgoing<W>,
        dialect: Dialect,
        batch: Vec<SessionEvent>,
    ) -> io::Result<()> {
        let Some(live) = self.live.as_ref() else {
            return Ok(());
        };
        let mut expected = live.delivered.next();
        let mut pushes = Vec::with_capacity(batch.len());
        let mut gap = false;
        for SessionEvent::Deliver { seq, message } in batch {
            if seq < expected {
                continue; // already written (by a refill)
            }
            if seq > expected {
                gap = true;
                break;
            }
            pushes.push((seq, message));
            expected = seq.next();
        }
        self.write_pushes(out, dialect, pushes, DeliveryPath::Live)
            .await?;
        if gap {
            self.refill(out, dialect).await?;
        }
        Ok(())
    }

    /// Reads the inbox from `delivered` until it is exhausted.
    async fn refill<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut Outgoing<W>,
        dialect: Dialect,
    ) -> io::Result<()> {
        loop {
            let Some(live) = self.live.as_ref() else {
                return Ok(());
            };
            let page = match self
                .service
                .inbox_after(&live.session, live.delivered)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "refill failed; retrying");
                    self.retry_refill_at = Some(Instant::now() + Duration::from_secs(1));
                    return Ok(());
                }
            };
            let full = page.len() >= self.service.config().sync_page as usize;
            self.write_entries(out, dialect, &page).await?;
            if !full {
                return Ok(());
            }
        }
    }
}
