//! nginx in front of the test's nodes, from the deployment's own
//! `deploy/nginx/` configurations (rendered by `chat_testkit::nginx` as
//! `deploy/cluster.sh` renders them: ports, pid file, module path).

use std::path::Path;

use chat_testkit::Service;
use chat_testkit::nginx::{CHAT_CONF as PLAIN, CHAT_TLS_CONF as TLS, Nginx};

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
