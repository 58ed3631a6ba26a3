//! The PROXY protocol on the TCP listener: a trusted proxy's header names
//! the client (per-address limits see it), a trusted proxy's connection
//! without one is closed, and a header from anyone else is refused.

mod common;

use std::time::Duration;

use chatcore::limit::LoginGuardConfig;
use chatcore::server::{ServerConfig, TrustedProxies};
use chatcore::service::ServiceConfig;
use common::TestServer;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A connection that starts with `header`, then speaks native frames.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    async fn open(server: &TestServer, header: &[u8]) -> Conn {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream.write_all(header).await.expect("header");
        Conn {
            reader: BufReader::new(stream),
        }
    }

    async fn call(&mut self, frame: Value) -> Option<Value> {
        let mut bytes = frame.to_string().into_bytes();
        bytes.push(b'\n');
        // A refused connection may be gone before the write.
        let _ = self.reader.get_mut().write_all(&bytes).await;
        let mut line = String::new();
        match tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line)).await
        {
            Ok(Ok(n)) if n > 0 => Some(serde_json::from_str(&line).expect("a JSON frame")),
            Ok(_) => None,
            Err(_) => panic!("no answer and no close within 10 s"),
        }
    }
}

fn v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 50000 6000\r\n").into_bytes()
}

fn v2(client: [u8; 4]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend([0x21, 0x11, 0, 12]);
    header.extend(client);
    header.extend([127, 0, 0, 1, 0xC3, 0x50, 0x17, 0x70]);
    header
}

async fn start(trusted: &str, per_address: u32) -> TestServer {
    let server = ServerConfig {
        trusted_proxies: TrustedProxies::new(vec![trusted.parse().expect("a range")]),
        ..common::fast_server()
    };
    let service = ServiceConfig {
        login_guard: LoginGuardConfig {
            max_failures_per_user_address: 0,
            max_failures_per_address: per_address,
            ..LoginGuardConfig::default()
        },
        ..ServiceConfig::default()
    };
    TestServer::start_with(server, service).await
}

async fn failed_login(conn: &mut Conn) -> u64 {
    let reply = conn
        .call(json!({"msgid": 1, "id": 1, "password": "wrong", "proto": 2, "rid": 1}))
        .await
        .expect("an answer");
    reply["errno"].as_u64().expect("an errno")
}

#[tokio::test]
async fn the_header_of_a_trusted_proxy_names_the_client() {
    let server = start("127.0.0.1/32", 2).await;
    // Two failures from 203.0.113.9 (v1), then that address is refused.
    for header in [v1("203.0.113.9"), v2([203, 0, 113, 9])] {
        let mut conn = Conn::open(&server, &header).await;
        assert_eq!(failed_login(&mut conn).await, 1);
    }
    let mut conn = Conn::open(&server, &v1("203.0.113.9")).await;
    assert_eq!(
        failed_login(&mut conn).await,
        18,
        "the named address is held back"
    );
    // Another client through the same proxy is not.
    let mut other = Conn::open(&server, &v2([198, 51, 100, 7])).await;
    assert_eq!(failed_login(&mut other).await, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_trusted_proxy_must_send_the_header_and_others_must_not() {
    // Our own address is the trusted proxy: a frame without a header is
    // not served.
    let server = start("127.0.0.1/32", 0).await;
    let mut bare = Conn::open(&server, b"").await;
    assert_eq!(bare.call(json!({"msgid": 27, "rid": 1})).await, None);
    let mut garbled = Conn::open(&server, b"PROXY TCP4 nonsense\r\n").await;
    assert_eq!(garbled.call(json!({"msgid": 27, "rid": 1})).await, None);
    server.stop().await;

    // Another range is trusted: our header is refused, our frames served.
    let server = start("10.0.0.0/8", 0).await;
    let mut spoofing = Conn::open(&server, &v1("203.0.113.9")).await;
    assert_eq!(spoofing.call(json!({"msgid": 27, "rid": 1})).await, None);
    let mut spoofing_v2 = Conn::open(&server, &v2([203, 0, 113, 9])).await;
    assert_eq!(spoofing_v2.call(json!({"msgid": 27, "rid": 1})).await, None);
    let mut plain = Conn::open(&server, b"").await;
    let pong = plain
        .call(json!({"msgid": 27, "rid": 1}))
        .await
        .expect("served");
    assert_eq!(pong["msgid"], 28);
    server.stop().await;
}
