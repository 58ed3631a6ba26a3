//! What goes wrong, in words: a [`ClientError`] described for the user, the
//! server's error codes, and [`Failure`], why a command did not work.

use chatcore::client::ClientError;
use chatcore::protocol::ErrorCode;

/// Whether the server's `errno` is `code`.
pub(super) fn is(errno: u32, code: ErrorCode) -> bool {
    ErrorCode::from_errno(errno) == Some(code)
}

/// A client error in words.
pub(super) fn describe(error: &ClientError) -> String {
    match error {
        ClientError::Server { errmsg, errno } if errmsg.is_empty() => {
            format!("the server refused (errno {errno})")
        }
        ClientError::Server { errmsg, .. } => errmsg.clone(),
        ClientError::Io(e) => format!("cannot reach the server: {e}"),
        ClientError::Closed => "the connection closed".to_string(),
        ClientError::Timeout(wait) => format!("no reply within {} s", wait.as_secs()),
        ClientError::Protocol(what) => format!("unexpected reply from the server: {what}"),
    }
}

/// Why a command did not work.
pub(super) enum Failure {
    /// The server (or the session's own checks) said no.
    Refused(String),
    /// Not connected at the moment.
    Offline,
    /// The connection broke during the command.
    Lost(String),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        match error {
            ClientError::Server { .. } | ClientError::Protocol(_) => {
                Failure::Refused(describe(&error))
            }
            ClientError::Io(_) | ClientError::Closed | ClientError::Timeout(_) => {
                Failure::Lost(describe(&error))
            }
        }
    }
}
