//! TLS in front of `chatd` as docs/security.md describes it: nginx's stream
//! module terminating TLS with `deploy/nginx/chat-tls.conf`, chatd behind
//! it on plain TCP. A rustls client registers, logs in and chats through
//! it; a client that does not speak TLS gets no chat frame from that port.
//! Its https server gives browsers the page and the WebSocket (wss).
//!
//! ```text
//! CHAT_TEST_NGINX=/usr/sbin/nginx cargo test --workspace --test tls
//! ```

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chat_testkit::tls::Certificates;
use chat_testkit::{Service, trial};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::{Value, json};
use support::{Chatd, nginx};

fn main() -> ExitCode {
    chat_testkit::harness::run([trial!(clients_chat_through_nginx_terminating_tls)
        .needs(&[Service::Nginx])
        .multi_thread(2)])
}

/// A blocking TLS client speaking the native protocol, one JSON frame a
/// line.
struct TlsClient {
    stream: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsClient {
    fn connect(addr: &str, trusted: &CertificateDer<'static>) -> TlsClient {
        let mut roots = RootCertStore::empty();
        roots.add(trusted.clone()).expect("a valid certificate");
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        let name = ServerName::try_from("localhost").expect("server name");
        let connection = ClientConnection::new(Arc::new(config), name).expect("TLS client");
        let socket = TcpStream::connect(addr).expect("connect to nginx");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        TlsClient {
            stream: BufReader::new(StreamOwned::new(connection, socket)),
        }
    }

    fn send(&mut self, frame: Value) {
        let mut bytes = frame.to_string().into_bytes();
        bytes.push(b'\n');
        let stream = self.stream.get_mut();
        stream.write_all(&bytes).expect("write over TLS");
        stream.flush().expect("flush");
    }

    /// Sends `request` as it is and returns the answer's status line.
    fn http_status(&mut self, request: &str) -> String {
        let stream = self.stream.get_mut();
        stream
            .write_all(request.as_bytes())
            .expect("write over TLS");
        stream.flush().expect("flush");
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("read over TLS");
        line.trim_end().to_owned()
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.stream.read_line(&mut line).expect("read over TLS");
        assert!(n > 0, "the connection closed");
        serde_json::from_str(&line).expect("a JSON frame")
    }
}

async fn clients_chat_through_nginx_terminating_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = vec![
        "--database-url".to_owned(),
        format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display()),
        // nginx sends the PROXY header from this address.
        "--proxy-protocol-from".to_owned(),
        support::NGINX_SOURCE.to_owned(),
    ];
    let mut chatd = Chatd::spawn("chatd", dir.path(), &args);
    chatd.wait_listening().await;
    let certificates = Certificates::make(dir.path(), "chat test CA");
    let (crt, key) = (certificates.certificate, certificates.key);
    let trusted = CertificateDer::from(certificates.ca_der);
    // Both upstream lines of the configuration point at the one node.
    let upstreams = [chatd.addr.as_str(), chatd.addr.as_str()];
    let web = [chatd.web.as_str(), chatd.web.as_str()];
    let nginx = nginx::start_tls(dir.path(), &upstreams, &web, &crt, &key).await;
    let addr = nginx.addr.clone();

    let trusted_by_browsers = trusted.clone();
    let transcript = tokio::task::spawn_blocking(move || {
        let mut client = TlsClient::connect(&addr, &trusted);
        client.send(json!({"msgid": 3, "name": "tls-alice", "password": "pw", "proto": 2}));
        let registered = client.recv();
        assert_eq!(registered["errno"], 0, "{registered}");
        let id = registered["id"].clone();
        client.send(json!({"msgid": 1, "id": id, "password": "pw", "proto": 2}));
        let login = client.recv();
        assert_eq!(
            (login["msgid"].as_u64(), login["errno"].as_u64()),
            (Some(2), Some(0)),
            "{login}"
        );
        client.send(json!({"msgid": 5, "toid": id, "msg": "sealed", "rid": 7}));
        let (first, second) = (client.recv(), client.recv());
        let mut kinds = [first["msgid"].as_u64(), second["msgid"].as_u64()];
        kinds.sort();
        assert_eq!(
            kinds,
            [Some(5), Some(13)],
            "an ack and the message: {first} {second}"
        );
        let push = if first["msgid"] == 5 { first } else { second };
        push["msg"].as_str().map(str::to_owned)
    })
    .await
    .expect("the TLS client");
    assert_eq!(transcript.as_deref(), Some("sealed"));

    // A client that skips the handshake gets no chat frame back: nginx
    // reads its JSON as a broken TLS record and closes.
    let plain_addr = nginx.addr.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut plain = TcpStream::connect(&plain_addr).expect("connect");
        plain
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        plain
            .write_all(b"{\"msgid\":3,\"name\":\"plain\",\"password\":\"pw\",\"proto\":2}\n")
            .expect("write");
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer);
        answer
    })
    .await
    .expect("the plain client");
    assert!(
        !answer.contains(&b'{'),
        "a plain-TCP client got a chat frame: {:?}",
        String::from_utf8_lossy(&answer)
    );

    // Browsers: the page over https and its WebSocket over wss, through the
    // same nginx. chatd takes the upgrade from the page's own origin, which
    // it can only tell when nginx passes the browser's Host on; a page of
    // another site is refused.
    let web_addr = nginx
        .web_addr
        .clone()
        .expect("an https server for browsers");
    let statuses = tokio::task::spawn_blocking(move || {
        let port = web_addr.rsplit(':').next().unwrap_or_default();
        let host = format!("localhost:{port}");
        let upgrade = |origin: &str| {
            format!(
                "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
        };
        let status = |request: String| {
            TlsClient::connect(&web_addr, &trusted_by_browsers).http_status(&request)
        };
        [
            status(format!(
                "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            )),
            status(upgrade(&format!("https://{host}"))),
            status(upgrade("https://evil.example")),
        ]
    })
    .await
    .expect("the browser-like client");
    assert_eq!(
        statuses
            .clone()
            .map(|s| s.split(' ').nth(1).unwrap_or_default().to_owned()),
        ["200", "101", "403"],
        "{statuses:?}"
    );
    drop(nginx);
}
