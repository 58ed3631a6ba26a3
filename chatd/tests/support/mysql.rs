//! A throwaway database on the MySQL/MariaDB server of
//! `CHAT_TEST_MYSQL_URL`, made and dropped with the `mariadb` (or `mysql`)
//! command-line client, which must be on the PATH.

use std::process::Command;

use super::unique_name;

/// The parts of `mysql://user:password@host:port[/...]` the command-line
/// client needs.
#[derive(Debug, Clone)]
pub struct Server {
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: String,
    /// The URL without a trailing `/`.
    pub url: String,
}

impl Server {
    pub fn parse(url: &str) -> Server {
        let rest = url.strip_prefix("mysql://").expect("a mysql:// URL");
        let (userinfo, hostpart) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
            None => (userinfo.to_owned(), None),
        };
        let hostport = hostpart.split(['/', '?']).next().unwrap_or("127.0.0.1");
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
        Server {
            user,
            password,
            host: host.to_owned(),
            port: port.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    /// Runs one statement with the command-line client; panics on failure.
    pub fn sql(&self, statement: &str) {
        if let Err(e) = self.try_sql(statement) {
            panic!("{e}");
        }
    }

    /// Runs one statement with the command-line client.
    pub fn try_sql(&self, statement: &str) -> Result<(), String> {
        let mut last_error = String::new();
        for client in ["mariadb", "mysql"] {
            let mut command = Command::new(client);
            command.args([
                "--protocol=TCP",
                "-h",
                &self.host,
                "-P",
                &self.port,
                "-u",
                &self.user,
                "-e",
                statement,
            ]);
            if let Some(password) = &self.password {
                command.env("MYSQL_PWD", password);
            }
            match command.output() {
                Ok(out) if out.status.success() => return Ok(()),
                Ok(out) => {
                    return Err(format!(
                        "{client} -e {statement:?} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                Err(err) => last_error = format!("{client}: {err}"),
            }
        }
        Err(format!(
            "no mariadb or mysql command-line client to run {statement:?}: {last_error}"
        ))
    }
}

/// A database of one test, dropped (best effort) when this is dropped.
#[derive(Debug)]
pub struct ThrowawayDatabase {
    pub server: Server,
    /// ASCII letters, digits and `_` only.
    pub name: String,
    /// The server URL with the database appended.
    pub url: String,
}

impl ThrowawayDatabase {
    /// Creates a fresh, empty database on the server at `server_url`.
    pub fn create(server_url: &str) -> ThrowawayDatabase {
        let server = Server::parse(server_url);
        let name = unique_name("chat_test");
        server.sql(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"));
        let url = format!("{}/{name}", server.url);
        ThrowawayDatabase { server, name, url }
    }
}

impl ThrowawayDatabase {
    /// Its URL with the server's `host:port` replaced by `addr` (a proxy).
    pub fn url_via(&self, addr: &str) -> String {
        let credentials = match &self.server.password {
            Some(password) => format!("{}:{password}", self.server.user),
            None => self.server.user.clone(),
        };
        format!("mysql://{credentials}@{addr}/{}", self.name)
    }
}

impl Drop for ThrowawayDatabase {
    fn drop(&mut self) {
        // A database left behind is only litter.
        if let Err(e) = self
            .server
            .try_sql(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
        {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}
