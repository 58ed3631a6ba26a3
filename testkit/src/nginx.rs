//! nginx in front of a test's servers, configured from a deployment's own
//! configuration file rendered for the test: its own port, pid file and
//! stream module path, one process (`master_process off`, so that killing
//! its pid stops all of it) and access logs naming the upstream each
//! client connection (and, for browsers, each HTTP request) went to.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A deployment's nginx configuration (with a `stream {}` block, maybe an
/// `http {}` block, and `daemon off;`) and the parts of it the rendering
/// replaces.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// Its file name, for messages.
    pub name: &'static str,
    pub text: &'static str,
    /// Its line loading the stream module, if any.
    pub load_module: &'static str,
    /// Its `pid ...;` line.
    pub pid: &'static str,
    /// The address it listens on.
    pub listen: &'static str,
    /// The addresses of its upstream servers, in order.
    pub upstreams: &'static [&'static str],
    /// Its `http {}` server (for browsers), if it has one.
    pub http: Option<HttpTemplate>,
}

/// The `http {}` part of a [`Template`].
#[derive(Debug, Clone, Copy)]
pub struct HttpTemplate {
    /// The address its server listens on.
    pub listen: &'static str,
    /// The addresses of its upstream servers (the nodes' web listeners),
    /// in order.
    pub upstreams: &'static [&'static str],
    /// Its `access_log ...;` line at the `http` level.
    pub access_log: &'static str,
}

/// The deployment's configuration, `deploy/nginx/chat.conf`.
pub const CHAT_CONF: Template = Template {
    name: "deploy/nginx/chat.conf",
    text: include_str!("../../deploy/nginx/chat.conf"),
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

/// The deployment's configuration with TLS in front,
/// `deploy/nginx/chat-tls.conf` (its certificate and key are `tls/chat.crt`
/// and `tls/chat.key`: replace them with `extra`).
pub const CHAT_TLS_CONF: Template = Template {
    name: "deploy/nginx/chat-tls.conf",
    text: include_str!("../../deploy/nginx/chat-tls.conf"),
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

/// Where a rendered configuration listens and what it proxies to.
#[derive(Debug, Clone, Copy)]
pub struct Addresses<'a> {
    /// The stream (TCP) listener.
    pub listen: &'a str,
    /// The stream upstreams, as many as the template has.
    pub upstreams: &'a [&'a str],
    /// The http listener, for a template with an `http {}` server.
    pub http_listen: &'a str,
    /// The http upstreams, as many as the template has.
    pub http_upstreams: &'a [&'a str],
}

/// One line per proxied connection, written when it closes.
const LOG_FORMAT: &str = "log_format chat_test '$remote_port $upstream_addr $status';";

/// One line per proxied HTTP request (a WebSocket: when it closes).
const HTTP_LOG_FORMAT: &str =
    "log_format chat_test_http '$remote_port $upstream_addr $status $request_uri';";

impl Template {
    /// The configuration for a test: listening on and proxying to
    /// `addresses`, with its files in `dir`, the stream module from
    /// `module` (`None`: built in) and the `extra` replacements (`from`,
    /// `to`). Panics when the template no longer contains what is to be
    /// replaced.
    pub fn render(
        &self,
        module: Option<&str>,
        addresses: &Addresses<'_>,
        dir: &Path,
        extra: &[(&str, String)],
    ) -> String {
        assert_eq!(
            addresses.upstreams.len(),
            self.upstreams.len(),
            "{} has {} upstream servers",
            self.name,
            self.upstreams.len()
        );
        let load = match module {
            Some(path) => format!("load_module {path};"),
            None => String::new(),
        };
        let mut replacements = vec![
            (self.load_module, load),
            (self.pid, format!("pid {}/nginx.pid;", dir.display())),
            ("daemon off;", "daemon off;\nmaster_process off;".to_owned()),
            (self.listen, addresses.listen.to_owned()),
        ];
        replacements.extend(
            self.upstreams
                .iter()
                .zip(addresses.upstreams)
                .map(|(from, to)| (*from, (*to).to_owned())),
        );
        if let Some(http) = &self.http {
            assert_eq!(
                addresses.http_upstreams.len(),
                http.upstreams.len(),
                "{} has {} http upstream servers",
                self.name,
                http.upstreams.len()
            );
            replacements.push((http.listen, addresses.http_listen.to_owned()));
            replacements.extend(
                http.upstreams
                    .iter()
                    .zip(addresses.http_upstreams)
                    .map(|(from, to)| (*from, (*to).to_owned())),
            );
            replacements.push((
                http.access_log,
                format!(
                    "access_log {}/http-access.log chat_test_http;",
                    dir.display()
                ),
            ));
            replacements.push(("http {", format!("http {{\n    {HTTP_LOG_FORMAT}")));
        }
        replacements.extend(extra.iter().map(|(from, to)| (*from, to.clone())));
        replacements.push((
            "stream {",
            format!(
                "stream {{\n    {LOG_FORMAT}\n    access_log {}/access.log chat_test;",
                dir.display()
            ),
        ));
        // Every `from` is found in the template as written, and replaced
        // through a placeholder: a replacement never meets another's
        // output (a port 6000 -> 60801 would otherwise contain 6080).
        // An empty `from` (a template without a load_module line) replaces
        // nothing.
        replacements.retain(|(from, _)| !from.is_empty());
        let mut conf = self.text.to_owned();
        for (i, (from, _)) in replacements.iter().enumerate() {
            assert!(
                conf.contains(from),
                "{} no longer contains {from:?}: update its test template",
                self.name
            );
            conf = conf.replace(from, &format!("\u{1}{i}\u{1}"));
        }
        for (i, (_, to)) in replacements.iter().enumerate() {
            conf = conf.replace(&format!("\u{1}{i}\u{1}"), to);
        }
        conf
    }
}

/// How `binary` gets its stream module: `None` when it is built in, else
/// the `load_module` path (absolute: with `-p` a relative one resolves
/// under the prefix).
pub fn stream_module(binary: &Path) -> Option<String> {
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

/// A running nginx; dropping it kills it (by pid) and, when the test
/// failed, prints its logs.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    /// Where clients connect: `127.0.0.1:PORT`.
    pub addr: String,
    /// Where browsers connect, `127.0.0.1:PORT`, when the template has an
    /// http server.
    pub web_addr: Option<String>,
    pub access_log: PathBuf,
    pub error_log: PathBuf,
    pub conf: PathBuf,
}

impl Nginx {
    /// Runs `binary` (the value of `CHAT_TEST_NGINX`) on `template`,
    /// rendered for free ports, `upstreams` (TCP), `web_upstreams` (the
    /// nodes' web listeners, for a template with an http server) and
    /// `extra` (see [`Template::render`]), with its files in `dir`, and
    /// waits until it listens.
    pub async fn start(
        binary: &Path,
        template: &Template,
        dir: &Path,
        upstreams: &[&str],
        web_upstreams: &[&str],
        extra: &[(&str, String)],
    ) -> Nginx {
        let addr = format!("127.0.0.1:{}", crate::free_port());
        let web_addr = template
            .http
            .is_some()
            .then(|| format!("127.0.0.1:{}", crate::free_port()));
        let module = stream_module(binary);
        let addresses = Addresses {
            listen: &addr,
            upstreams,
            http_listen: web_addr.as_deref().unwrap_or_default(),
            http_upstreams: web_upstreams,
        };
        let conf_text = template.render(module.as_deref(), &addresses, dir, extra);
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
            web_addr,
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
        let http_log = self.access_log.with_file_name("http-access.log");
        eprintln!(
            "----- nginx error log -----\n{}\n----- nginx access log -----\n{}\n----- nginx http access log -----\n{}",
            self.log_text(),
            std::fs::read_to_string(&self.access_log).unwrap_or_default(),
            std::fs::read_to_string(http_log).unwrap_or_default()
        );
    }

    /// The upstream nginx proxied the client connection from local port
    /// `client_port` to, once that connection has closed (nginx logs a
    /// stream session at its end).
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

#[cfg(test)]
mod tests {
    use super::{Addresses, HttpTemplate, Template};

    const TEXT: &str = "pid x.pid;\ndaemon off;\nstream {\n  server 127.0.0.1:6000;\n  listen 127.0.0.1:8000;\n}\n\
                        http {\n  access_log off;\n  server 127.0.0.1:6080;\n  listen 127.0.0.1:8080;\n}\n";

    #[test]
    fn both_servers_are_rendered_and_no_port_rewrites_another() {
        let template = Template {
            name: "test.conf",
            text: TEXT,
            load_module: "",
            pid: "pid x.pid;",
            listen: "127.0.0.1:8000",
            upstreams: &["127.0.0.1:6000"],
            http: Some(HttpTemplate {
                listen: "127.0.0.1:8080",
                upstreams: &["127.0.0.1:6080"],
                access_log: "access_log off;",
            }),
        };
        let addresses = Addresses {
            listen: "127.0.0.1:40000",
            // Holds the http upstream's "127.0.0.1:6080".
            upstreams: &["127.0.0.1:60801"],
            http_listen: "127.0.0.1:40001",
            http_upstreams: &["127.0.0.1:40002"],
        };
        let conf = template.render(None, &addresses, std::path::Path::new("/d"), &[]);
        for expected in [
            "server 127.0.0.1:60801;",
            "listen 127.0.0.1:40000;",
            "server 127.0.0.1:40002;",
            "listen 127.0.0.1:40001;",
            "access_log /d/http-access.log chat_test_http;",
            "master_process off;",
        ] {
            assert!(conf.contains(expected), "{expected} in:\n{conf}");
        }
        assert!(!conf.contains("access_log off;"), "{conf}");
    }
}
