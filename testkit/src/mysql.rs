//! Throwaway databases on the MySQL/MariaDB server named by
//! `CHAT_TEST_MYSQL_URL`: one per test, dropped after it.

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::Service;

/// A MySQL/MariaDB server: `mysql://USER[:PW]@HOST[:PORT][/][?QUERY]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlServer {
    /// `USER[:PW]`.
    userinfo: String,
    /// `HOST:PORT` (port 3306 when the URL names none).
    pub addr: String,
    /// What followed `?`, kept for every database URL.
    query: Option<String>,
}

impl MysqlServer {
    /// The server of `CHAT_TEST_MYSQL_URL` (see [`Service::value`]).
    pub fn from_env() -> MysqlServer {
        MysqlServer::parse(&Service::Mysql.value())
    }

    /// Reads a server URL; a path after the host is ignored.
    pub fn parse(url: &str) -> MysqlServer {
        let rest = url
            .strip_prefix("mysql://")
            .unwrap_or_else(|| panic!("a mysql:// URL, not {url:?}"));
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query.to_owned())),
            None => (rest, None),
        };
        let (userinfo, hostpart) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let host = hostpart.split('/').next().unwrap_or_default();
        let addr = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:3306")
        };
        MysqlServer {
            userinfo: userinfo.to_owned(),
            addr,
            query,
        }
    }

    /// The URL of the server itself, without a database.
    pub fn url(&self) -> String {
        self.url_of(&self.addr, "")
    }

    /// The URL of database `name` on this server.
    pub fn database_url(&self, name: &str) -> String {
        self.url_of(&self.addr, name)
    }

    /// The URL of database `name` on this server reached at `addr` (a
    /// proxy) instead of its own address.
    pub fn database_url_via(&self, addr: &str, name: &str) -> String {
        self.url_of(addr, name)
    }

    fn url_of(&self, addr: &str, name: &str) -> String {
        let mut url = format!("mysql://{}@{addr}/{name}", self.userinfo);
        if let Some(query) = &self.query {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    async fn connect(&self) -> DatabaseConnection {
        self.try_connect()
            .await
            .unwrap_or_else(|err| panic!("{err}"))
    }

    async fn try_connect(&self) -> Result<DatabaseConnection, String> {
        let url = self.url();
        let mut options = ConnectOptions::new(url.clone());
        options.max_connections(1).sqlx_logging(false);
        Database::connect(options)
            .await
            .map_err(|err| format!("cannot connect to {url}: {err}"))
    }
}

/// A database of one test, on a server where it may create databases.
/// Dropped by [`ThrowawayDatabase::drop_database`], or else (best effort)
/// when this is dropped.
#[derive(Debug)]
pub struct ThrowawayDatabase {
    pub server: MysqlServer,
    /// ASCII letters, digits and `_` only (spliced into SQL).
    pub name: String,
    /// The URL of the database.
    pub url: String,
    dropped: bool,
}

impl ThrowawayDatabase {
    /// A fresh, empty database on the server of `CHAT_TEST_MYSQL_URL`.
    pub async fn create() -> ThrowawayDatabase {
        ThrowawayDatabase::create_on(MysqlServer::from_env()).await
    }

    /// A fresh, empty database on `server`.
    pub async fn create_on(server: MysqlServer) -> ThrowawayDatabase {
        let name = crate::unique_name("chat_test");
        let admin = server.connect().await;
        run(
            &admin,
            &format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
        )
        .await;
        let _ = admin.close().await;
        let url = server.database_url(&name);
        ThrowawayDatabase {
            server,
            name,
            url,
            dropped: false,
        }
    }

    /// Its URL when the server is reached at `addr` (a proxy).
    pub fn url_via(&self, addr: &str) -> String {
        self.server.database_url_via(addr, &self.name)
    }

    /// Runs one statement on the server; name tables as `` `db`.table ``
    /// with [`ThrowawayDatabase::name`].
    pub async fn execute(&self, sql: &str) {
        let admin = self.server.connect().await;
        run(&admin, sql).await;
        let _ = admin.close().await;
    }

    /// Drops the database now (best effort: one left behind is only
    /// litter).
    pub async fn drop_database(mut self) {
        self.dropped = true;
        drop_best_effort(&self.server, &self.name).await;
    }
}

impl Drop for ThrowawayDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // No runtime may be at hand (or it may be the one this blocks): a
        // thread of its own with one of its own.
        let (server, name) = (&self.server, &self.name);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(drop_best_effort(server, name)),
                    Err(err) => eprintln!("could not drop test database {name}: {err}"),
                }
            });
        });
    }
}

async fn run(connection: &DatabaseConnection, sql: &str) {
    connection
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql} failed: {err}"));
}

async fn drop_best_effort(server: &MysqlServer, name: &str) {
    let admin = match server.try_connect().await {
        Ok(admin) => admin,
        Err(err) => {
            eprintln!("could not drop test database {name}: {err}");
            return;
        }
    };
    if let Err(err) = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .await
    {
        eprintln!("could not drop test database {name}: {err}");
    }
    let _ = admin.close().await;
}

#[cfg(test)]
mod tests {
    use super::MysqlServer;

    #[test]
    fn database_urls_keep_credentials_and_query_and_default_the_port() {
        let server = MysqlServer::parse("mysql://u:p@db.local/?ssl-mode=disabled");
        assert_eq!(server.addr, "db.local:3306");
        assert_eq!(server.url(), "mysql://u:p@db.local:3306/?ssl-mode=disabled");
        assert_eq!(
            server.database_url_via("127.0.0.1:9", "t"),
            "mysql://u:p@127.0.0.1:9/t?ssl-mode=disabled"
        );
    }

    #[test]
    fn a_url_without_user_means_root() {
        let server = MysqlServer::parse("mysql://127.0.0.1:3307");
        assert_eq!(server.database_url("t"), "mysql://root@127.0.0.1:3307/t");
    }
}
