//! nginx in front of the test's nodes, configured from the deployment's own
//! `deploy/nginx/chat.conf` (as `deploy/cluster.sh` renders it: ports, pid
//! file, module path), plus what a test needs: one process
//! (`master_process off`, so that killing its pid stops all of it) and an
//! access log naming the node each client connection went to.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A configuration of `deploy/nginx/` and what in it names the
/// deployment's own pid file and listening address.
struct Template {
    name: &'static str,
    text: &'static str,
    pid: &'static str,
    listen: &'static str,
}

/// The deployment's configuration.
const PLAIN: Template = Template {
    name: "chat.conf",
    text: include_str!("../../../deploy/nginx/chat.conf"),
    pid: "pid /tmp/chat-nginx.pid;",
    listen: "127.0.0.1:8000",
};

/// The deployment's configuration with TLS in front.
const TLS: Template = Template {
    name: "chat-tls.conf",
    text: include_str!("../../../deploy/nginx/chat-tls.conf"),
    pid: "pid chat-nginx-tls.pid;",
    listen: "127.0.0.1:8443",
};

/// One line per proxied connection, written when it closes.
const LOG_FORMAT: &str = "log_format chat_test '$remote_port $upstream_addr $status';";

/// A running nginx; dropping it kills it (by pid).
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    /// Where clients connect: `127.0.0.1:PORT`.
    pub addr: String,
    pub access_log: PathBuf,
    pub error_log: PathBuf,
    pub conf: PathBuf,
}

/// How this nginx binary gets its stream module: `None` when it is built
/// in, else the `load_module` path (absolute: with `-p` a relative one
/// resolves under the prefix).
fn stream_module(binary: &Path) -> Option<String> {
    let out = Command::new(binary)
        .arg("-V")
        .output()
        .unwrap_or_else(|e| panic!("{} -V: {e}", binary.display()));
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let args: Vec<&str> = text.split_whitespace().collect();
    if args.contains(&"--with-stream") {
        return None;
    }
    let dir = args
        .iter()
        .find_map(|a| a.strip_prefix("--modules-path="))
        .unwrap_or("/usr/lib/nginx/modules");
    Some(format!("{dir}/ngx_stream_module.so"))
}

/// Replaces `from` by `to` in `conf`, insisting that `from` is there.
fn replace(conf: &str, from: &str, to: &str) -> String {
    assert!(
        conf.contains(from),
        "deploy/nginx/ no longer contains {from:?}: update chatd/tests/support/nginx.rs"
    );
    conf.replace(from, to)
}

/// `template` for this test: its own port, files and module path, and the
/// `extra` replacements (`from`, `to`) it asks for.
fn render(
    template: &Template,
    module: Option<&str>,
    listen: &str,
    upstreams: &[&str],
    dir: &Path,
    extra: &[(&str, String)],
) -> String {
    assert_eq!(
        upstreams.len(),
        2,
        "{} has two upstream servers",
        template.name
    );
    let mut conf = template.text.to_owned();
    let load = match module {
        Some(path) => format!("load_module {path};"),
        None => String::new(),
    };
    conf = replace(&conf, "load_module modules/ngx_stream_module.so;", &load);
    conf = replace(
        &conf,
        template.pid,
        &format!("pid {}/nginx.pid;", dir.display()),
    );
    conf = replace(&conf, "daemon off;", "daemon off;\nmaster_process off;");
    conf = replace(&conf, template.listen, listen);
    conf = replace(&conf, "127.0.0.1:6000", upstreams[0]);
    conf = replace(&conf, "127.0.0.1:6002", upstreams[1]);
    for (from, to) in extra {
        conf = replace(&conf, from, to);
    }
    conf = replace(
        &conf,
        "stream {",
        &format!(
            "stream {{\n    {LOG_FORMAT}\n    access_log {}/access.log chat_test;",
            dir.display()
        ),
    );
    conf
}

impl Nginx {
    /// Starts `binary` on a free port in front of `upstreams`, with its
    /// files in `dir`, and waits until it listens.
    pub async fn start(binary: &Path, dir: &Path, upstreams: &[&str]) -> Nginx {
        let addr = format!("127.0.0.1:{}", free_port());
        let module = stream_module(binary);
        let conf_text = render(&PLAIN, module.as_deref(), &addr, upstreams, dir, &[]);
        Nginx::launch(binary, dir, addr, &conf_text).await
    }

    /// Like [`Nginx::start`], from `deploy/nginx/chat-tls.conf`: clients
    /// speak TLS to it with `certificate` (PEM, and its `key`).
    pub async fn start_tls(
        binary: &Path,
        dir: &Path,
        upstreams: &[&str],
        certificate: &Path,
        key: &Path,
    ) -> Nginx {
        let addr = format!("127.0.0.1:{}", free_port());
        let module = stream_module(binary);
        let certificates = [
            ("tls/chat.crt", certificate.display().to_string()),
            ("tls/chat.key", key.display().to_string()),
        ];
        let conf_text = render(
            &TLS,
            module.as_deref(),
            &addr,
            upstreams,
            dir,
            &certificates,
        );
        Nginx::launch(binary, dir, addr, &conf_text).await
    }

    /// Runs `binary` on `conf_text` (which listens on `addr`) and waits
    /// until it listens.
    async fn launch(binary: &Path, dir: &Path, addr: String, conf_text: &str) -> Nginx {
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, conf_text).expect("write nginx.conf");
        let error_log = dir.join("nginx-error.log");
        let access_log = dir.join("access.log");
        let pid_file = dir.join("nginx.pid");
        let stderr = File::create(&error_log).expect("nginx log file");
        let mut prefix = dir.as_os_str().to_owned();
        prefix.push("/");
        let child = Command::new(binary)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("{} runs: {e}", binary.display()));
        let mut nginx = Nginx {
            child,
            addr,
            access_log,
            error_log,
            conf,
        };
        // nginx writes its pid file after it opened its listening sockets;
        // waiting for it (rather than connecting) leaves the upstreams'
        // round robin untouched.
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = nginx.child.id().to_string();
        loop {
            let written = std::fs::read_to_string(&pid_file).unwrap_or_default();
            if written.trim() == pid {
                break;
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!(
                    "nginx exited ({status}):\n{}\nconfiguration:\n{}",
                    nginx.log_text(),
                    std::fs::read_to_string(&nginx.conf).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not start:\n{}",
                nginx.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nginx
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    pub fn print_log(&self) {
        eprintln!(
            "----- nginx error log -----\n{}\n----- nginx access log -----\n{}",
            self.log_text(),
            std::fs::read_to_string(&self.access_log).unwrap_or_default()
        );
    }

    /// The upstream (node address) nginx proxied the client connection
    /// from local port `client_port` to, once that connection has closed
    /// (nginx logs a stream session at its end).
    pub fn upstream_of(&self, client_port: u16) -> Option<String> {
        let log = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        log.lines().find_map(|line| {
            let mut fields = line.split_whitespace();
            let port = fields.next()?;
            let upstream = fields.next()?;
            (port == client_port.to_string()).then(|| upstream.to_owned())
        })
    }

    /// [`Nginx::upstream_of`], waiting up to `within` for the log line.
    pub async fn wait_upstream_of(&self, client_port: u16, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(upstream) = self.upstream_of(client_port) {
                return upstream;
            }
            assert!(
                Instant::now() < deadline,
                "nginx logged no connection from port {client_port} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log();
        }
        // One process (master_process off): killing it stops everything.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
