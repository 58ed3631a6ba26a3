//! Error numbers (`errno`) a client can see, each with its fixed meaning.

/// Every error a client can cause or meet, with a stable `errno`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Login with an unknown id or a wrong password (the seed's errno 1).
    LoginFailed,
    /// The frame is not a JSON object.
    BadFrame,
    /// The `msgid` is not one this server knows.
    UnknownMsgid,
    /// A field is missing or has the wrong type or range.
    BadField,
    /// The frame is longer than the server's limit; the connection closes.
    FrameTooLarge,
    /// The request needs a logged-in session.
    NotLoggedIn,
    /// The request's `id` is not the logged-in user.
    IdentityMismatch,
    /// Login or register on a connection that is already logged in.
    AlreadyLoggedIn,
    /// Registration with a name already taken.
    NameTaken,
    /// A value is out of bounds (empty or too long name, message, ...).
    InvalidValue,
    /// The request names a user that does not exist.
    UnknownUser,
    /// The request names a group that does not exist.
    UnknownGroup,
    /// Group chat, member listing, group history or leaving a group by a
    /// user who is not a member.
    NotMember,
    /// Creating a group with a name already taken.
    GroupNameTaken,
    /// A backend is unreachable or overloaded; retry later.
    Unavailable,
    /// A server bug; the request had no effect.
    Internal,
    /// The same user logged in on another connection.
    Kicked,
    /// The server is shutting down.
    ShuttingDown,
    /// The connection was idle for too long.
    IdleTimeout,
    /// `REMOVE_FRIEND` of a user who is not a friend.
    NotFriend,
    /// `RESUME` with a token that is malformed, expired, revoked or signed
    /// by another cluster: log in with the password instead.
    ResumeRejected,
    /// Too many failed logins for this user or from this address: login
    /// and resume are refused for a while, without checking the password.
    TooManyAttempts,
    /// The connection sends requests faster than the server allows; the
    /// request was not executed.
    RateLimited,
    /// The node serves as many connections as it may; the connection
    /// closes. Another node (or a later try) may have room.
    ServerFull,
    /// A per-user or per-group cap (groups per user, members per group) is
    /// reached; nothing changed.
    LimitReached,
    /// `LOGIN` or `RESUME` of an account an administrator banned.
    Banned,
    /// An administrator ended the session (kick, ban, password reset or
    /// account deletion).
    EndedByAdmin,
}

impl ErrorCode {
    /// The number sent as `errno`.
    pub fn errno(self) -> u32 {
        match self {
            ErrorCode::LoginFailed => 1,
            ErrorCode::BadFrame => 10,
            ErrorCode::UnknownMsgid => 11,
            ErrorCode::BadField => 12,
            ErrorCode::FrameTooLarge => 13,
            ErrorCode::NotLoggedIn => 14,
            ErrorCode::IdentityMismatch => 15,
            ErrorCode::AlreadyLoggedIn => 16,
            ErrorCode::NameTaken => 20,
            ErrorCode::InvalidValue => 21,
            ErrorCode::UnknownUser => 22,
            ErrorCode::UnknownGroup => 23,
            ErrorCode::NotMember => 24,
            ErrorCode::GroupNameTaken => 25,
            ErrorCode::Unavailable => 30,
            ErrorCode::Internal => 31,
            ErrorCode::Kicked => 40,
            ErrorCode::ShuttingDown => 41,
            ErrorCode::IdleTimeout => 42,
            ErrorCode::NotFriend => 26,
            ErrorCode::ResumeRejected => 17,
            ErrorCode::TooManyAttempts => 18,
            ErrorCode::LimitReached => 27,
            ErrorCode::RateLimited => 32,
            ErrorCode::ServerFull => 33,
            ErrorCode::Banned => 19,
            ErrorCode::EndedByAdmin => 43,
        }
    }

    /// The code for an `errno`, when it is one of ours.
    pub fn from_errno(errno: u32) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.errno() == errno)
    }

    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 27] = [
        ErrorCode::LoginFailed,
        ErrorCode::BadFrame,
        ErrorCode::UnknownMsgid,
        ErrorCode::BadField,
        ErrorCode::FrameTooLarge,
        ErrorCode::NotLoggedIn,
        ErrorCode::IdentityMismatch,
        ErrorCode::AlreadyLoggedIn,
        ErrorCode::ResumeRejected,
        ErrorCode::TooManyAttempts,
        ErrorCode::Banned,
        ErrorCode::NameTaken,
        ErrorCode::InvalidValue,
        ErrorCode::UnknownUser,
        ErrorCode::UnknownGroup,
        ErrorCode::NotMember,
        ErrorCode::GroupNameTaken,
        ErrorCode::NotFriend,
        ErrorCode::LimitReached,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::RateLimited,
        ErrorCode::ServerFull,
        ErrorCode::Kicked,
        ErrorCode::ShuttingDown,
        ErrorCode::IdleTimeout,
        ErrorCode::EndedByAdmin,
    ];

    /// A readable default `errmsg`.
    pub fn message(self) -> &'static str {
        match self {
            // The seed's exact text, which its client prints.
            ErrorCode::LoginFailed => "User non-existent or password is wrong.",
            ErrorCode::BadFrame => "frame is not a JSON object",
            ErrorCode::UnknownMsgid => "unknown msgid",
            ErrorCode::BadField => "missing or invalid field",
            ErrorCode::FrameTooLarge => "frame too large",
            ErrorCode::NotLoggedIn => "log in first",
            ErrorCode::IdentityMismatch => "id is not the logged-in user",
            ErrorCode::AlreadyLoggedIn => "already logged in on this connection; log out first",
            ErrorCode::NameTaken => "name is already taken",
            ErrorCode::InvalidValue => "invalid value",
            ErrorCode::UnknownUser => "no such user",
            ErrorCode::UnknownGroup => "no such group",
            ErrorCode::NotMember => "not a member of this group",
            ErrorCode::GroupNameTaken => "group name is already taken",
            ErrorCode::Unavailable => "service temporarily unavailable, try again",
            ErrorCode::Internal => "internal server error",
            ErrorCode::Kicked => "logged in from another connection",
            ErrorCode::ShuttingDown => "server is shutting down",
            ErrorCode::IdleTimeout => "connection idle for too long",
            ErrorCode::NotFriend => "not a friend",
            ErrorCode::ResumeRejected => {
                "resume token is invalid, expired or revoked; log in with the password"
            }
            ErrorCode::TooManyAttempts => "too many attempts; wait and try again",
            ErrorCode::RateLimited => "too many requests; slow down",
            ErrorCode::ServerFull => "server is full, try another node or later",
            ErrorCode::LimitReached => "limit reached",
            ErrorCode::Banned => "this account is banned",
            ErrorCode::EndedByAdmin => "session ended by an administrator",
        }
    }
}

/// The errors any request may be answered with, whatever it asks: a field
/// it sends is bad (12), it comes before login (14) or, for `LOGIN`, `REG`
/// and `RESUME`, after it (16), a backend fails (30, 31), or the
/// connection sends too fast (32).
pub const GENERAL_ERRORS: [ErrorCode; 6] = [
    ErrorCode::BadField,
    ErrorCode::NotLoggedIn,
    ErrorCode::AlreadyLoggedIn,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
    ErrorCode::RateLimited,
];

/// Every request, by `msgid` and name, with the errors particular to it
/// (besides [`GENERAL_ERRORS`]). docs/protocol.md §8.1 is this table, and
/// a test keeps the two the same; a debug build checks every error reply
/// against it, so that a test provoking an error the table lacks fails.
pub const REQUEST_ERRORS: &[(u32, &str, &[ErrorCode])] = {
    use super::msgid;
    use ErrorCode::*;
    &[
        (
            msgid::LOGIN,
            "LOGIN",
            &[LoginFailed, TooManyAttempts, Banned],
        ),
        (
            msgid::REG,
            "REG",
            &[TooManyAttempts, NameTaken, InvalidValue],
        ),
        (
            msgid::ONE_CHAT,
            "ONE_CHAT",
            &[IdentityMismatch, InvalidValue, UnknownUser],
        ),
        (
            msgid::ADD_FRIEND,
            "ADD_FRIEND",
            &[IdentityMismatch, InvalidValue, UnknownUser],
        ),
        (
            msgid::CREATE_GROUP,
            "CREATE_GROUP",
            &[IdentityMismatch, InvalidValue, GroupNameTaken, LimitReached],
        ),
        (
            msgid::ADD_GROUP,
            "ADD_GROUP",
            &[IdentityMismatch, UnknownGroup, LimitReached],
        ),
        (
            msgid::GROUP_CHAT,
            "GROUP_CHAT",
            &[IdentityMismatch, InvalidValue, UnknownGroup, NotMember],
        ),
        (msgid::LOGINOUT, "LOGINOUT", &[IdentityMismatch]),
        (msgid::DELIVERED, "DELIVERED", &[]),
        (msgid::SYNC, "SYNC", &[]),
        (msgid::HISTORY, "HISTORY", &[UnknownGroup, NotMember]),
        (msgid::LIST_FRIENDS, "LIST_FRIENDS", &[]),
        (msgid::LIST_GROUPS, "LIST_GROUPS", &[]),
        (
            msgid::LIST_MEMBERS,
            "LIST_MEMBERS",
            &[UnknownGroup, NotMember],
        ),
        (
            msgid::REMOVE_FRIEND,
            "REMOVE_FRIEND",
            &[IdentityMismatch, NotFriend],
        ),
        (
            msgid::LEAVE_GROUP,
            "LEAVE_GROUP",
            &[IdentityMismatch, UnknownGroup, NotMember],
        ),
        (msgid::PING, "PING", &[]),
        (msgid::PONG, "PONG", &[]),
        (msgid::RESUME, "RESUME", &[ResumeRejected, Banned]),
        (
            msgid::CHANGE_PASSWORD,
            "CHANGE_PASSWORD",
            &[LoginFailed, TooManyAttempts, InvalidValue],
        ),
        (msgid::READ, "READ", &[UnknownUser, UnknownGroup, NotMember]),
        (msgid::CONVERSATIONS, "CONVERSATIONS", &[]),
        (msgid::FIND_USER, "FIND_USER", &[InvalidValue]),
    ]
};

/// Whether docs/protocol.md says request `req` may be refused with `code`.
pub(crate) fn is_documented_error(req: u32, code: ErrorCode) -> bool {
    GENERAL_ERRORS.contains(&code)
        || REQUEST_ERRORS
            .iter()
            .any(|(id, _, codes)| *id == req && codes.contains(&code))
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn errnos_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.errno()), "{code:?} reuses an errno");
            assert_eq!(ErrorCode::from_errno(code.errno()), Some(code));
        }
    }
}
