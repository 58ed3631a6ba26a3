//! `chatcli --tls` through chatd's TLS listener: nginx terminating TLS with
//! `deploy/nginx/chat-tls.conf` (docs/security.md) in front of a server,
//! with a certificate of a test CA. Trusting that CA (`--ca-file`), chatcli
//! registers, logs in with `--password-file` and chats; trusting another,
//! it refuses the server and says why.
//!
//! ```text
//! CHAT_TEST_NGINX=/usr/sbin/nginx cargo test --workspace --test tls
//! ```

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use chat_testkit::nginx::{CHAT_TLS_CONF, Nginx};
use chat_testkit::tls::Certificates;
use chat_testkit::{Service, free_port, trial};
use common::{Server, chatcli, run};

fn main() -> ExitCode {
    chat_testkit::harness::run([
        trial!(chatcli_chats_over_tls_and_refuses_an_untrusted_server)
            .needs(&[Service::Nginx])
            .multi_thread(2),
    ])
}

/// Where the deployment's nginx connects to its upstreams from.
const NGINX_SOURCE: [u8; 4] = [127, 0, 0, 2];

/// nginx from `deploy/nginx/chat-tls.conf` in front of `server`, serving
/// `certificates`.
async fn tls_proxy(dir: &Path, server: &Server, certificates: &Certificates) -> Nginx {
    let upstream = server.addr.to_string();
    // Nothing listens behind the https server for browsers: not used here.
    let web = format!("127.0.0.1:{}", free_port());
    Nginx::start(
        Path::new(&Service::Nginx.value()),
        &CHAT_TLS_CONF,
        dir,
        &[&upstream, &upstream],
        &[&web, &web],
        &[
            (
                "tls/chat.crt",
                certificates.certificate.display().to_string(),
            ),
            ("tls/chat.key", certificates.key.display().to_string()),
        ],
    )
    .await
}

async fn chatcli_chats_over_tls_and_refuses_an_untrusted_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
    for folder in [&ours, &theirs] {
        std::fs::create_dir(folder).expect("a folder");
    }
    let served = Certificates::make(&ours, "chatcli test CA");
    let other = Certificates::make(&theirs, "another CA");
    let server = Server::start_behind(NGINX_SOURCE.into()).await;
    let nginx = tls_proxy(dir.path(), &server, &served).await;
    let addr: SocketAddr = nginx.addr.parse().expect("nginx's address");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "tls-secret\n").expect("password file");

    let tls = |name: &str, ca: &Path| {
        let mut command = chatcli(addr, name, dir.path());
        command
            .env_remove("CHAT_PASSWORD")
            .arg("--password-file")
            .arg(&password_file)
            .arg("--ca-file")
            .arg(ca);
        command
    };

    let mut register = tls("alice", &served.ca_pem);
    register.args(["--register", "alice"]);
    let registered = run(register, "/status\n").await;
    assert!(
        registered.status.success(),
        "{}\n{}",
        registered.stdout(),
        registered.stderr()
    );
    let id: i64 = registered
        .out
        .iter()
        .find_map(|line| {
            let rest = line.split("userid is ").nth(1)?;
            rest.split(',').next()?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no new id in {}", registered.stdout()));

    // Logging in again over TLS (the password from the file, without its
    // line end) and sending to oneself: the message comes back through
    // nginx.
    let mut login = tls("alice", &served.ca_pem);
    login.args(["--login", &id.to_string(), "--tls"]);
    let chatted = run(login, &format!("chat:{id}:sealed over tls\n")).await;
    assert!(
        chatted.status.success(),
        "{}\n{}",
        chatted.stdout(),
        chatted.stderr()
    );
    assert!(
        chatted.count("sealed over tls") >= 1,
        "{}",
        chatted.stdout()
    );

    // Trusting another CA, chatcli does not talk to this server.
    let mut untrusted = tls("alice", &other.ca_pem);
    untrusted.args(["--login", &id.to_string()]);
    let refused = run(untrusted, "chat:1:must not be sent\n").await;
    assert!(!refused.status.success(), "{}", refused.stdout());
    let stderr = refused.stderr();
    assert!(
        stderr.contains(&format!("cannot connect to {addr} over TLS"))
            && stderr.contains("invalid peer certificate")
            && stderr.contains("--ca-file"),
        "{stderr}"
    );
    drop(nginx);
    server.stop().await;
}
