//! Client→server frames, parsed in two steps: the `msgid` (and `rid`)
//! first, then the body type that `msgid` names. Unknown keys are ignored,
//! so the seed client's extra `name` and `time` are accepted (and unused).

use std::fmt;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{ErrorCode, msgid};
use crate::model::{GroupId, MessageId, Seq, Target, UserId};

/// One parsed request with the client's optional request id, which every
/// reply to it echoes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFrame {
    pub rid: Option<u64>,
    pub request: Request,
}

/// Every request a client can make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Login(Login),
    Register(Register),
    Resume(Resume),
    ChangePassword(ChangePassword),
    Chat(Chat),
    AddFriend(AddFriend),
    CreateGroup(CreateGroup),
    AddGroup(AddGroup),
    Logout(Identity),
    DeliveryAck(DeliveryAck),
    Sync(SyncRequest),
    History(History),
    ListFriends,
    ListGroups,
    ListMembers(ListMembers),
    RemoveFriend(RemoveFriend),
    LeaveGroup(LeaveGroup),
    Ping,
    Pong,
}

impl Request {
    /// The `msgid` this request travels under.
    pub fn msgid(&self) -> u32 {
        match self {
            Request::Login(_) => msgid::LOGIN,
            Request::Register(_) => msgid::REG,
            Request::Resume(_) => msgid::RESUME,
            Request::ChangePassword(_) => msgid::CHANGE_PASSWORD,
            Request::Chat(chat) => chat.msgid(),
            Request::AddFriend(_) => msgid::ADD_FRIEND,
            Request::CreateGroup(_) => msgid::CREATE_GROUP,
            Request::AddGroup(_) => msgid::ADD_GROUP,
            Request::Logout(_) => msgid::LOGINOUT,
            Request::DeliveryAck(_) => msgid::DELIVERED,
            Request::Sync(_) => msgid::SYNC,
            Request::History(_) => msgid::HISTORY,
            Request::ListFriends => msgid::LIST_FRIENDS,
            Request::ListGroups => msgid::LIST_GROUPS,
            Request::ListMembers(_) => msgid::LIST_MEMBERS,
            Request::RemoveFriend(_) => msgid::REMOVE_FRIEND,
            Request::LeaveGroup(_) => msgid::LEAVE_GROUP,
            Request::Ping => msgid::PING,
            Request::Pong => msgid::PONG,
        }
    }
}

/// `LOGIN` (1).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Login {
    pub id: UserId,
    pub password: String,
    /// Present (2) for the native dialect, absent for the seed's client.
    #[serde(default)]
    pub proto: Option<u32>,
}

/// `REG` (3).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Register {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub proto: Option<u32>,
}

/// `RESUME` (30): log in with the token of an earlier login; implies the
/// native dialect.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Resume {
    pub token: String,
}

/// `CHANGE_PASSWORD` (31).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct ChangePassword {
    /// The current password, proving it is the user and not a stolen token.
    pub old: String,
    pub new: String,
}

// Passwords and tokens never reach a log through `Debug`.
impl fmt::Debug for Resume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resume").finish_non_exhaustive()
    }
}

impl fmt::Debug for ChangePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangePassword").finish_non_exhaustive()
    }
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("id", &self.id)
            .field("proto", &self.proto)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Register")
            .field("name", &self.name)
            .field("proto", &self.proto)
            .finish_non_exhaustive()
    }
}

/// The optional acting `id` of a request; when present it must be the
/// logged-in user. Also the body of `LOGINOUT` (10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Identity {
    #[serde(default)]
    pub id: Option<UserId>,
}

/// `ONE_CHAT` (5) and `GROUP_CHAT` (9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    pub id: Option<UserId>,
    pub target: Target,
    pub msg: String,
    /// Client message id: a resend with the same one is stored once.
    pub cmid: Option<String>,
}

impl Chat {
    /// `ONE_CHAT` or `GROUP_CHAT`, after the target.
    pub fn msgid(&self) -> u32 {
        match self.target {
            Target::User(_) => msgid::ONE_CHAT,
            Target::Group(_) => msgid::GROUP_CHAT,
        }
    }
}

#[derive(Deserialize)]
struct OneChatBody {
    #[serde(default)]
    id: Option<UserId>,
    toid: UserId,
    msg: String,
    #[serde(default)]
    cmid: Option<String>,
}

#[derive(Deserialize)]
struct GroupChatBody {
    #[serde(default)]
    id: Option<UserId>,
    groupid: GroupId,
    msg: String,
    #[serde(default)]
    cmid: Option<String>,
}

/// `ADD_FRIEND` (6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct AddFriend {
    #[serde(default)]
    pub id: Option<UserId>,
    pub friendid: UserId,
}

/// `REMOVE_FRIEND` (25).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RemoveFriend {
    #[serde(default)]
    pub id: Option<UserId>,
    pub friendid: UserId,
}

/// `CREATE_GROUP` (7).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreateGroup {
    #[serde(default)]
    pub id: Option<UserId>,
    pub groupname: String,
    #[serde(default)]
    pub groupdesc: String,
}

/// `ADD_GROUP` (8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct AddGroup {
    #[serde(default)]
    pub id: Option<UserId>,
    pub groupid: GroupId,
}

/// `LEAVE_GROUP` (26).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct LeaveGroup {
    #[serde(default)]
    pub id: Option<UserId>,
    pub groupid: GroupId,
}

/// `LIST_MEMBERS` (23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ListMembers {
    pub groupid: GroupId,
}

/// `DELIVERED` (14): everything up to `seq` has been received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct DeliveryAck {
    pub seq: Seq,
}

/// `SYNC` (15): inbox entries after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct SyncRequest {
    #[serde(default = "zero_seq")]
    pub after: Seq,
    #[serde(default)]
    pub limit: Option<u32>,
}

fn zero_seq() -> Seq {
    Seq::ZERO
}

/// `HISTORY` (17): one conversation, newest first, before a message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    pub target: Target,
    pub before: Option<MessageId>,
    pub limit: Option<u32>,
}

#[derive(Deserialize)]
struct HistoryBody {
    #[serde(default)]
    toid: Option<UserId>,
    #[serde(default)]
    groupid: Option<GroupId>,
    #[serde(default)]
    before: Option<MessageId>,
    #[serde(default)]
    limit: Option<u32>,
}

/// Why a frame could not be turned into a [`Request`]; the connection
/// answers with an error frame and carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ParseError {
    pub code: ErrorCode,
    /// The request's `msgid`, when it could be read.
    pub msgid: Option<u32>,
    pub rid: Option<u64>,
    /// The `proto` the frame asked for, so that a malformed login or
    /// register is answered in the dialect its client speaks.
    pub proto: Option<u32>,
    pub detail: String,
}

#[derive(Deserialize)]
struct Head {
    msgid: u32,
    #[serde(default)]
    rid: Option<u64>,
    #[serde(default)]
    proto: Option<u32>,
}

impl Request {
    /// Parses one frame (without its terminator).
    pub fn parse(frame: &[u8]) -> Result<RequestFrame, ParseError> {
        // serde would read a struct from a JSON array too; only objects are
        // frames.
        let first = frame.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(ParseError {
                code: ErrorCode::BadFrame,
                msgid: None,
                rid: None,
                proto: None,
                detail: ErrorCode::BadFrame.message().to_owned(),
            });
        }
        let head: Head = serde_json::from_slice(frame).map_err(|e| {
            let code = if e.is_data() {
                ErrorCode::BadField
            } else {
                ErrorCode::BadFrame
            };
            ParseError {
                code,
                msgid: None,
                rid: None,
                proto: None,
                detail: format!("{}: {e}", code.message()),
            }
        })?;
        let body_error = |e: serde_json::Error| {
            let code = if e.is_data() {
                ErrorCode::BadField
            } else {
                ErrorCode::BadFrame
            };
            ParseError {
                code,
                msgid: Some(head.msgid),
                rid: head.rid,
                proto: head.proto,
                detail: format!("{}: {e}", code.message()),
            }
        };
        fn body<T: DeserializeOwned>(frame: &[u8]) -> Result<T, serde_json::Error> {
            serde_json::from_slice(frame)
        }
        let request = match head.msgid {
            msgid::LOGIN => Request::Login(body(frame).map_err(body_error)?),
            msgid::REG => Request::Register(body(frame).map_err(body_error)?),
            msgid::RESUME => Request::Resume(body(frame).map_err(body_error)?),
            msgid::CHANGE_PASSWORD => Request::ChangePassword(body(frame).map_err(body_error)?),
            msgid::ONE_CHAT => {
                let b: OneChatBody = body(frame).map_err(body_error)?;
                Request::Chat(Chat {
                    id: b.id,
                    target: Target::User(b.toid),
                    msg: b.msg,
                    cmid: b.cmid,
                })
            }
            msgid::GROUP_CHAT => {
                let b: GroupChatBody = body(frame).map_err(body_error)?;
                Request::Chat(Chat {
                    id: b.id,
                    target: Target::Group(b.groupid),
                    msg: b.msg,
                    cmid: b.cmid,
                })
            }
            msgid::ADD_FRIEND => Request::AddFriend(body(frame).map_err(body_error)?),
            msgid::CREATE_GROUP => Request::CreateGroup(body(frame).map_err(body_error)?),
            msgid::ADD_GROUP => Request::AddGroup(body(frame).map_err(body_error)?),
            msgid::LOGINOUT => Request::Logout(body(frame).map_err(body_error)?),
            msgid::DELIVERED => Request::DeliveryAck(body(frame).map_err(body_error)?),
            msgid::SYNC => Request::Sync(body(frame).map_err(body_error)?),
            msgid::HISTORY => {
                let b: HistoryBody = body(frame).map_err(body_error)?;
                let target = match (b.toid, b.groupid) {
                    (Some(user), None) => Target::User(user),
                    (None, Some(group)) => Target::Group(group),
                    _ => {
                        return Err(ParseError {
                            code: ErrorCode::BadField,
                            msgid: Some(head.msgid),
                            rid: head.rid,
                            proto: head.proto,
                            detail: "history needs exactly one of `toid` and `groupid`".to_owned(),
                        });
                    }
                };
                Request::History(History {
                    target,
                    before: b.before,
                    limit: b.limit,
                })
            }
            msgid::LIST_FRIENDS => Request::ListFriends,
            msgid::LIST_GROUPS => Request::ListGroups,
            msgid::LIST_MEMBERS => Request::ListMembers(body(frame).map_err(body_error)?),
            msgid::REMOVE_FRIEND => Request::RemoveFriend(body(frame).map_err(body_error)?),
            msgid::LEAVE_GROUP => Request::LeaveGroup(body(frame).map_err(body_error)?),
            msgid::PING => Request::Ping,
            msgid::PONG => Request::Pong,
            other => {
                return Err(ParseError {
                    code: ErrorCode::UnknownMsgid,
                    msgid: Some(other),
                    rid: head.rid,
                    proto: head.proto,
                    detail: format!("unknown msgid {other}"),
                });
            }
        };
        Ok(RequestFrame {
            rid: head.rid,
            request,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RequestFrame, ParseError> {
        Request::parse(s.as_bytes())
    }

    #[test]
    fn seed_one_chat_parses_with_its_extra_fields() {
        let frame = parse(
            r#"{"msgid":5,"id":1,"name":"alice","toid":2,"msg":"hi","time":"2024-01-01 12:00:00"}"#,
        )
        .expect("valid");
        assert_eq!(
            frame.request,
            Request::Chat(Chat {
                id: Some(UserId(1)),
                target: Target::User(UserId(2)),
                msg: "hi".into(),
                cmid: None,
            })
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse(r#"{"msgid":1,"id":"1","password":"x"}"#).expect_err("invalid");
        assert_eq!(err.code, ErrorCode::BadField);
        assert_eq!(err.msgid, Some(1));
        assert!(err.detail.contains("invalid type"), "{}", err.detail);
    }

    #[test]
    fn missing_field_is_named() {
        let err = parse(r#"{"msgid":5,"toid":2}"#).expect_err("invalid");
        assert_eq!(err.code, ErrorCode::BadField);
        assert!(err.detail.contains("msg"), "{}", err.detail);
    }

    #[test]
    fn non_objects_are_bad_frames() {
        for input in ["[1,2]", "\"x\"", "42", "not json", "", "{\"msgid\":"] {
            let err = parse(input).expect_err(input);
            assert_eq!(err.code, ErrorCode::BadFrame, "{input}");
        }
    }

    #[test]
    fn unknown_msgid_keeps_the_request_id() {
        let err = parse(r#"{"msgid":999,"rid":7}"#).expect_err("unknown");
        assert_eq!(err.code, ErrorCode::UnknownMsgid);
        assert_eq!(err.rid, Some(7));
    }

    #[test]
    fn huge_numbers_and_deep_nesting_are_errors_not_panics() {
        let err = parse(r#"{"msgid":1,"id":123456789012345678901234567890,"password":"x"}"#)
            .expect_err("overflow");
        assert_eq!(err.code, ErrorCode::BadField);
        let deep = format!(
            r#"{{"msgid":5,"x":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn history_needs_one_target() {
        let err = parse(r#"{"msgid":17,"toid":1,"groupid":2}"#).expect_err("two targets");
        assert_eq!(err.code, ErrorCode::BadField);
        assert!(parse(r#"{"msgid":17,"groupid":2,"limit":10}"#).is_ok());
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let frame = parse(r#"{"msgid":1,"id":1,"password":"hunter2"}"#).expect("valid");
        assert!(!format!("{frame:?}").contains("hunter2"));
    }
}
