//! Just enough HTTP/1.1 to query chatd's admin listener, and a reader of
//! the Prometheus text format.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `GET path` at `addr` over a fresh connection; `None` when nothing
/// listens there (yet).
pub async fn get(addr: &str, path: &str) -> Option<Answer> {
    request(addr, "GET", path, None, None).await
}

/// `method path` at `addr` over a fresh connection, with `token` as its
/// bearer token and `body` (JSON) when given; `None` when nothing listens
/// there (yet).
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Option<Answer> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("send {method} {path} to {addr}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .unwrap_or_else(|e| panic!("read the answer to {method} {path} from {addr}: {e}"));
    let text = String::from_utf8(raw).expect("an HTTP answer in UTF-8");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("an HTTP answer with a header: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP status line: {head:?}"));
    Some(Answer {
        status,
        body: body.to_owned(),
    })
}

/// The value of the sample `series` (a metric name with its labels as
/// Prometheus prints them, e.g. `chat_sends_total{outcome="ok"}`), or
/// `None` when the exposition has no such sample.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.trim().parse().expect("a numeric sample value"))
    })
}
