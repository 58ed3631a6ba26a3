//! Bytes through a real connection (`connection::serve`) on in-memory
//! backends, in both dialects, logged in or not. Nothing may panic, the
//! connection keeps serving (or closes only on a frame over the limit,
//! after saying so), and everything it writes is one JSON object a line.
//!
//! The first input byte picks the connection's state; the rest is the byte
//! stream a client sends, cut into frames by the real codec.

#![no_main]

use std::sync::{Arc, OnceLock};

use chatcore::connection::{ConnectionConfig, serve};
use chatcore::limit::RateLimit;
use chatcore::node::{self, Backends};
use chatcore::protocol::{ClientFrame, ErrorCode, Request, msgid};
use chatcore::service::{ChatService, HashParams, Passwords, ServiceConfig};
use chatcore::store::MemoryStore;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The `rid` of the PING that ends each exchange.
const MARK: u64 = u64::MAX;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

struct Wire {
    reader: BufReader<ReadHalf<DuplexStream>>,
    writer: WriteHalf<DuplexStream>,
}

impl Wire {
    fn connect(service: &ChatService, shutdown: &CancellationToken) -> Wire {
        let (client, server) = tokio::io::duplex(1 << 20);
        let config = ConnectionConfig {
            rate_limit: RateLimit::OFF,
            ..ConnectionConfig::default()
        };
        tokio::spawn(serve(server, None, service.clone(), config, shutdown.clone()));
        let (reader, writer) = tokio::io::split(client);
        Wire {
            reader: BufReader::new(reader),
            writer,
        }
    }

    /// Writes `bytes`, a terminator and a marking PING, and checks what
    /// comes back until the mark's PONG (or the close after a frame over
    /// the limit).
    async fn exchange(&mut self, bytes: &[u8]) {
        let mut input = bytes.to_vec();
        input.push(b'\n');
        ClientFrame {
            rid: Some(MARK),
            request: Request::Ping,
        }
        .encode(&mut input);
        if self.writer.write_all(&input).await.is_err() {
            return; // closed after a frame over the limit
        }
        let mut last = None;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await.expect("read") == 0 {
                let last: serde_json::Value = last.expect("a closed connection said why");
                assert_eq!(last["errno"], ErrorCode::FrameTooLarge.errno(), "{last}");
                return;
            }
            assert!(line.ends_with('\n'));
            let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON frame");
            assert!(value.is_object(), "{value}");
            if value["msgid"] == msgid::PONG && value["rid"] == MARK {
                return;
            }
            last = Some(value);
        }
    }
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
    let mut setup = Wire::connect(&service, &shutdown);
    for frame in [
        r#"{"msgid":3,"name":"alice","password":"a","proto":2}"#,
        r#"{"msgid":3,"name":"bob","password":"b","proto":2}"#,
        r#"{"msgid":1,"id":2,"password":"b","proto":2}"#,
        r#"{"msgid":7,"groupname":"g","groupdesc":"d"}"#,
        r#"{"msgid":6,"friendid":1}"#,
        r#"{"msgid":10}"#,
    ] {
        setup.exchange(frame.as_bytes()).await;
    }
    let mut conn = Wire::connect(&service, &shutdown);
    match state % 3 {
        0 => {}
        1 => conn.exchange(br#"{"msgid":1,"id":1,"password":"a"}"#).await,
        _ => {
            conn.exchange(br#"{"msgid":1,"id":1,"password":"a","proto":2}"#)
                .await
        }
    }
    conn.exchange(stream).await;
    shutdown.cancel();
}

fuzz_target!(|data: &[u8]| {
    let Some((&state, stream)) = data.split_first() else {
        return;
    };
    runtime().block_on(run(state, stream));
});
