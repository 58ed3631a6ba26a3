//! Reaching the server: where and how patiently ([`Settings`]), who we are
//! ([`Credentials`]), connecting and logging in, and the session's link
//! going down and coming back up with backoff.

use std::time::Duration;

use chatcore::client::{Client, ClientError, LoginInfo};
use chatcore::model::UserId;
use chatcore::protocol::ErrorCode;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::error::{describe, is};
use super::tls::Tls;
use super::{Flow, Session};
use crate::output::{Notice, Output};

/// Where to connect, how, and how patiently.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(super) addr: String,
    /// TLS to the server, with `--tls`.
    tls: Option<Tls>,
    connect_timeout: Duration,
    /// A ping after this much silence finds a dead connection.
    pub(super) ping_every: Duration,
    /// The first reconnect delay, doubled per failed attempt...
    backoff_first: Duration,
    /// ...up to this.
    backoff_max: Duration,
}

impl Settings {
    pub(crate) fn new(addr: impl Into<String>) -> Settings {
        Settings {
            addr: addr.into(),
            tls: None,
            connect_timeout: Duration::from_secs(5),
            ping_every: Duration::from_secs(30),
            backoff_first: Duration::from_millis(250),
            backoff_max: Duration::from_secs(8),
        }
    }

    /// Speaks TLS to the server.
    pub(crate) fn with_tls(mut self, tls: Tls) -> Settings {
        self.tls = Some(tls);
        self
    }

    /// The delay before reconnect attempt `attempts + 1`, with up to 25%
    /// jitter so that clients of a restarted server do not return in step.
    fn backoff(&self, attempts: u32) -> Duration {
        let base = self
            .backoff_first
            .saturating_mul(1 << attempts.min(16))
            .min(self.backoff_max);
        let random = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
        base + base.mul_f64(f64::from(random) / 4000.0)
    }
}

/// How the session proves who it is, at login and at every re-login.
#[derive(Clone)]
pub(crate) enum Secret {
    Password(String),
    /// The server's resume token from the last login, tried first so that
    /// a reconnect costs the server no password hash, with the password to
    /// fall back on when the token is refused (expired, or another key).
    Resume {
        token: String,
        password: String,
    },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A user and their secret.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub(crate) id: UserId,
    pub(crate) secret: Secret,
}

impl Credentials {
    /// Keeps the resume token a login handed out, for the next re-login.
    pub(super) fn remember(&mut self, info: &LoginInfo) {
        let (Some(resume), Secret::Password(password) | Secret::Resume { password, .. }) =
            (&info.resume, &self.secret)
        else {
            return;
        };
        self.secret = Secret::Resume {
            token: resume.token.clone(),
            password: password.clone(),
        };
    }
}

pub(super) async fn authenticate(
    client: &Client,
    creds: &Credentials,
) -> Result<LoginInfo, ClientError> {
    match &creds.secret {
        Secret::Password(password) => client.login(creds.id, password).await,
        Secret::Resume { token, password } => match client.resume(token).await {
            Err(ClientError::Server { errno, .. }) if is(errno, ErrorCode::ResumeRejected) => {
                tracing::info!("resume token refused; logging in with the password");
                client.login(creds.id, password).await
            }
            other => other,
        },
    }
}

pub(super) async fn connect(settings: &Settings) -> Result<Client, String> {
    let over = if settings.tls.is_some() {
        " over TLS"
    } else {
        ""
    };
    match tokio::time::timeout(settings.connect_timeout, open(settings)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(Failure::Connect(e))) => Err(format!(
            "cannot connect to {}: {e} (is chatd running there?)",
            settings.addr,
        )),
        Ok(Err(Failure::Handshake(e))) => Err(format!(
            "cannot connect to {}{over}: {e}{}",
            settings.addr,
            if untrusted(&e) {
                " (is the server's certificate for this host, and signed by a CA of \
                 --ca-file or of the system?)"
            } else {
                " (does the server speak TLS on that port?)"
            }
        )),
        Err(_) => Err(format!(
            "cannot connect to {}{over}: no answer within {} s",
            settings.addr,
            settings.connect_timeout.as_secs()
        )),
    }
}

/// Whether the handshake failed on the server's certificate.
fn untrusted(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>())
        .is_some_and(|e| matches!(e, tokio_rustls::rustls::Error::InvalidCertificate(_)))
}

/// Why [`open`] failed.
enum Failure {
    Connect(std::io::Error),
    Handshake(std::io::Error),
}

/// A TCP connection to the server, under TLS when asked, as a client.
async fn open(settings: &Settings) -> Result<Client, Failure> {
    let stream = TcpStream::connect(&settings.addr)
        .await
        .map_err(Failure::Connect)?;
    stream.set_nodelay(true).map_err(Failure::Connect)?;
    match &settings.tls {
        None => Ok(Client::new(stream)),
        Some(tls) => Ok(Client::new(
            tls.handshake(stream).await.map_err(Failure::Handshake)?,
        )),
    }
}

#[derive(Debug)]
pub(super) enum Link {
    Up(Client),
    /// Reconnecting: `attempts` failed so far, the next at `retry_at`.
    Down {
        attempts: u32,
        retry_at: Instant,
    },
}

impl Session {
    pub(super) async fn lost(&mut self, reason: String) {
        if matches!(self.link, Link::Down { .. }) {
            return;
        }
        tracing::info!(%reason, "connection lost");
        self.link = Link::Down {
            attempts: 0,
            retry_at: Instant::now() + self.settings.backoff(0),
        };
        self.publish();
        self.emit(Output::Notice(Notice::Disconnected { reason }))
            .await;
    }

    pub(super) async fn ping(&mut self) -> Flow {
        if let Ok(client) = self.client()
            && let Err(e) = client.ping().await
        {
            self.lost(describe(&e)).await;
        }
        Flow::Continue
    }

    pub(super) async fn reconnect(&mut self) -> Flow {
        let Link::Down { attempts, .. } = self.link else {
            return Flow::Continue;
        };
        let attempts = attempts + 1;
        let client = match connect(&self.settings).await {
            Ok(client) => client,
            Err(e) => {
                let delay = self.settings.backoff(attempts);
                tracing::info!(attempts, error = %e, ?delay, "reconnect failed");
                self.link = Link::Down {
                    attempts,
                    retry_at: Instant::now() + delay,
                };
                return Flow::Continue;
            }
        };
        let info = match authenticate(&client, &self.creds).await {
            Ok(info) => info,
            Err(ClientError::Server { errno, errmsg }) if is(errno, ErrorCode::LoginFailed) => {
                self.emit(Output::Notice(Notice::Ended {
                    reason: format!("logging in again was refused: {errmsg}"),
                }))
                .await;
                return Flow::Stop;
            }
            Err(e) => {
                let delay = self.settings.backoff(attempts);
                tracing::info!(attempts, error = %e, ?delay, "login after reconnect failed");
                self.link = Link::Down {
                    attempts,
                    retry_at: Instant::now() + delay,
                };
                return Flow::Continue;
            }
        };
        self.creds.remember(&info);
        tracing::info!(attempts, cursor = %info.cursor, seen = %self.seen, "reconnected");
        self.link = Link::Up(client);
        self.apply_login(&info);
        self.emit(Output::Notice(Notice::Reconnected { attempts }))
            .await;
        self.catch_up().await;
        self.flush().await;
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let settings = Settings::new("127.0.0.1:1");
        for (attempts, base_ms) in [
            (0, 250),
            (1, 500),
            (2, 1000),
            (3, 2000),
            (5, 8000),
            (30, 8000),
        ] {
            let delay = settings.backoff(attempts);
            let base = Duration::from_millis(base_ms);
            assert!(
                delay >= base && delay <= base + base / 4,
                "attempt {attempts}: {delay:?} not within 25% above {base:?}"
            );
        }
    }
}
