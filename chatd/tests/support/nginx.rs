//! nginx in front of the test's nodes, from the deployment's own
//! `deploy/nginx/` configurations (rendered by `chat_testkit::nginx` as
//! `deploy/cluster.sh` renders them: ports, pid file, module path).

use std::path::Path;

use chat_testkit::Service;
use chat_testkit::nginx::{HttpTemplate, Nginx, Template};

/// The deployment's configuration.
const PLAIN: Template = Template {
    name: "deploy/nginx/chat.conf",
    text: include_str!("../../../deploy/nginx/chat.conf"),
    load_module: "load_module modules/ngx_stream_module.so;",
    pid: "pid /tmp/chat-nginx.pid;",
    listen: "127.0.0.1:8000",
    upstreams: &["127.0.0.1:6000", "127.0.0.1:6002"],
    http: Some(HttpTemplate {
        listen: "127.0.0.1:8080",
        upstreams: &["127.0.0.1:6080", "127.0.0.1:6082"],
        access_log: "access_log off;",
    }),
};

/// The deployment's configuration with TLS in front.
const TLS: Template = Template {
    name: "deploy/nginx/chat-tls.conf",
    text: include_str!("../../../deploy/nginx/chat-tls.conf"),
    load_module: "load_module modules/ngx_stream_module.so;",
    pid: "pid chat-nginx-tls.pid;",
    listen: "127.0.0.1:8443",
    upstreams: &["127.0.0.1:6000", "127.0.0.1:6002"],
    http: Some(HttpTemplate {
        listen: "127.0.0.1:8444",
        upstreams: &["127.0.0.1:6080", "127.0.0.1:6082"],
        access_log: "access_log off;",
    }),
};

/// nginx of `CHAT_TEST_NGINX` on free ports in front of the two
/// `upstreams` (TCP) and the two `web_upstreams` (the nodes' web
/// listeners, for browsers), with its files in `dir`, once it listens.
pub async fn start(dir: &Path, upstreams: &[&str], web_upstreams: &[&str]) -> Nginx {
    let binary = Service::Nginx.value();
    Nginx::start(
        Path::new(&binary),
        &PLAIN,
        dir,
        upstreams,
        web_upstreams,
        &[],
    )
    .await
}

/// Like [`start`], from `deploy/nginx/chat-tls.conf`: clients speak TLS to
/// it with `certificate` (PEM, and its `key`).
pub async fn start_tls(
    dir: &Path,
    upstreams: &[&str],
    web_upstreams: &[&str],
    certificate: &Path,
    key: &Path,
) -> Nginx {
    let binary = Service::Nginx.value();
    let certificates = [
        ("tls/chat.crt", certificate.display().to_string()),
        ("tls/chat.key", key.display().to_string()),
    ];
    Nginx::start(
        Path::new(&binary),
        &TLS,
        dir,
        upstreams,
        web_upstreams,
        &certificates,
    )
    .await
}
