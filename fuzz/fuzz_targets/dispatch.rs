//! Frames through `Request::parse` and `ChatService::handle` on in-memory
//! backends, in both dialects, logged in or not. Nothing may panic; every
//! reply must encode to one JSON line; a native client gets a reply carrying
//! its `rid` for every request but `PONG` (docs/protocol.md).
//!
//! The first input byte picks the connection's state; the rest is the byte
//! stream a client sends, cut into frames by the real codec.

#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use chatcore::codec::FrameCodec;
use chatcore::node::{self, Backends};
use chatcore::protocol::{Dialect, Request};
use chatcore::service::{ChatService, ConnState, HashParams, Passwords, ServiceConfig};
use chatcore::store::MemoryStore;
use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Requests handled per input, so that one input stays fast.
const MAX_FRAMES: usize = 32;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Handles one frame the way the connection driver does and returns the
/// reply, encoded in the dialect the connection speaks afterwards.
async fn handle(service: &ChatService, conn: &mut ConnState, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match Request::parse(bytes) {
        Ok(frame) => {
            let rid = frame.rid;
            let expects_reply = !matches!(frame.request, Request::Pong | Request::DeliveryAck(_))
                || (rid.is_some() && matches!(frame.request, Request::DeliveryAck(_)));
            let reply = service.handle(conn, frame).await;
            if conn.dialect() == Dialect::Native && expects_reply {
                assert!(reply.is_some(), "a native request got no reply");
            }
            if let Some(reply) = reply {
                reply.encode(conn.dialect(), &mut out);
                if conn.dialect() == Dialect::Native {
                    let value: serde_json::Value =
                        serde_json::from_slice(&out).expect("a reply is JSON");
                    assert_eq!(value.get("rid").and_then(|r| r.as_u64()), rid, "{value}");
                }
            }
        }
        Err(e) => {
            assert!(e.code.errno() > 0);
            assert!(!e.detail.is_empty());
        }
    }
    out
}

async fn run(state: u8, stream: &[u8]) {
    let shutdown = CancellationToken::new();
    let passwords = Passwords::new(HashParams::insecure_fast(), 1).expect("hash params");
    // The node's tasks end with `shutdown`; nothing needs to wait for them.
    let service = node::start(
        Backends::local(Arc::new(MemoryStore::new())),
        passwords,
        ServiceConfig::default(),
        &TaskTracker::new(),
        shutdown.clone(),
    );
    // Two friends (ids 1 and 2) and a group of bob's (id 1), so that chat,
    // friend and group requests can succeed as well as fail.
    let (setup_tx, _setup_rx) = mpsc::channel(64);
    let mut setup = ConnState::new(setup_tx, None);
    for frame in [
        r#"{"msgid":3,"name":"alice","password":"a","proto":2}"#,
        r#"{"msgid":3,"name":"bob","password":"b","proto":2}"#,
        r#"{"msgid":1,"id":2,"password":"b","proto":2}"#,
        r#"{"msgid":7,"groupname":"g","groupdesc":"d"}"#,
        r#"{"msgid":6,"friendid":1}"#,
        r#"{"msgid":10}"#,
    ] {
        handle(&service, &mut setup, frame.as_bytes()).await;
    }
    let (tx, _rx) = mpsc::channel(1024);
    let mut conn = ConnState::new(tx, None);
    match state % 3 {
        0 => {}
        1 => {
            handle(&service, &mut conn, br#"{"msgid":1,"id":1,"password":"a"}"#).await;
        }
        _ => {
            handle(
                &service,
                &mut conn,
                br#"{"msgid":1,"id":1,"password":"a","proto":2}"#,
            )
            .await;
        }
    }
    let mut codec = FrameCodec::new(chatcore::codec::DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::from(stream);
    for _ in 0..MAX_FRAMES {
        let frame = match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => break,
        };
        let out = handle(&service, &mut conn, &frame).await;
        // Whatever the request carried, a reply is one line.
        if let Some(newline) = out.iter().position(|&b| b == b'\n') {
            assert_eq!(newline, out.len() - 1, "a reply is exactly one line");
        }
    }
    service.end_session(&mut conn).await;
    shutdown.cancel();
}

fuzz_target!(|data: &[u8]| {
    let Some((&state, stream)) = data.split_first() else {
        return;
    };
    runtime().block_on(run(state, stream));
});
