//! Client→server frames, parsed in two steps: the `msgid` (and `rid`)
//! first, then the body type that `msgid` names. Unknown keys are ignored,
//! so the seed client's extra `name` and `time` are accepted (and unused).

use std::borrow::Cow;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Dialect, ErrorCode, msgid};
use crate::model::{GroupId, MessageId, Seq, Target, UserId};

/// One client frame: a request with the client's optional request id,
/// which every reply to it echoes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    pub rid: Option<u64>,
    pub request: Request,
}

/// Every request a client can make, sorted at parse time by the state a
/// connection must be in to make it: the connection's state machine
/// matches on this, so "only after login" is a type, not a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Before login: who the connection is.
    Anonymous(AnonymousRequest),
    /// After login: what the user does.
    Session(SessionRequest),
    /// Heartbeats, in any state; the connection answers them itself.
    Ping,
    Pong,
}

/// The requests of a connection that is not logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnonymousRequest {
    Login(Login),
    Register(Register),
    Resume(Resume),
}

/// The requests of a logged-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRequest {
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
    Read(ReadMark),
    Conversations(Conversations),
    FindUser(FindUser),
}

impl Request {
    /// The `msgid` this request travels under.
    pub fn msgid(&self) -> u32 {
        match self {
            Request::Anonymous(request) => request.msgid(),
            Request::Session(request) => request.msgid(),
            Request::Ping => msgid::PING,
            Request::Pong => msgid::PONG,
        }
    }
}

impl AnonymousRequest {
    /// The `msgid` this request travels under.
    pub fn msgid(&self) -> u32 {
        match self {
            AnonymousRequest::Login(_) => msgid::LOGIN,
            AnonymousRequest::Register(_) => msgid::REG,
            AnonymousRequest::Resume(_) => msgid::RESUME,
        }
    }

    /// The dialect the request announces: login and register carry it in
    /// `proto`; a resume token is only ever issued to native clients.
    pub fn dialect(&self) -> Dialect {
        match self {
            AnonymousRequest::Login(login) => Dialect::from_proto(login.proto),
            AnonymousRequest::Register(register) => Dialect::from_proto(register.proto),
            AnonymousRequest::Resume(_) => Dialect::Native,
        }
    }
}

impl SessionRequest {
    /// The `msgid` this request travels under.
    pub fn msgid(&self) -> u32 {
        match self {
            SessionRequest::ChangePassword(_) => msgid::CHANGE_PASSWORD,
            SessionRequest::Chat(chat) => chat.msgid(),
            SessionRequest::AddFriend(_) => msgid::ADD_FRIEND,
            SessionRequest::CreateGroup(_) => msgid::CREATE_GROUP,
            SessionRequest::AddGroup(_) => msgid::ADD_GROUP,
            SessionRequest::Logout(_) => msgid::LOGINOUT,
            SessionRequest::DeliveryAck(_) => msgid::DELIVERED,
            SessionRequest::Sync(_) => msgid::SYNC,
            SessionRequest::History(_) => msgid::HISTORY,
            SessionRequest::ListFriends => msgid::LIST_FRIENDS,
            SessionRequest::ListGroups => msgid::LIST_GROUPS,
            SessionRequest::ListMembers(_) => msgid::LIST_MEMBERS,
            SessionRequest::RemoveFriend(_) => msgid::REMOVE_FRIEND,
            SessionRequest::LeaveGroup(_) => msgid::LEAVE_GROUP,
            SessionRequest::Read(_) => msgid::READ,
            SessionRequest::Conversations(_) => msgid::CONVERSATIONS,
            SessionRequest::FindUser(_) => msgid::FIND_USER,
        }
    }
}

/// `LOGIN` (1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub id: UserId,
    pub password: String,
    /// Present (2) for the native dialect, absent for the seed's client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u32>,
}

/// `REG` (3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    pub name: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u32>,
}

/// `RESUME` (30): log in with the token of an earlier login; implies the
/// native dialect.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub token: String,
}

/// `CHANGE_PASSWORD` (31).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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

// What people write to each other is theirs: a logged request shows how
// long its message is, not what it says.
impl fmt::Debug for Chat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chat")
            .field("id", &self.id)
            .field("target", &self.target)
            .field("msg", &format_args!("<{} bytes>", self.msg.len()))
            .field("cmid", &self.cmid)
            .finish()
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<UserId>,
}

/// `ONE_CHAT` (5) and `GROUP_CHAT` (9).
#[derive(Clone, PartialEq, Eq)]
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

// Text as `Cow`: decoded it is owned, encoded it borrows the request's,
// so that sending a message does not copy its body.
#[derive(Serialize, Deserialize)]
struct OneChatBody<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<UserId>,
    toid: UserId,
    msg: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cmid: Option<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
struct GroupChatBody<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<UserId>,
    groupid: GroupId,
    msg: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cmid: Option<Cow<'a, str>>,
}

/// `ADD_FRIEND` (6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddFriend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<UserId>,
    pub friendid: UserId,
}

/// `REMOVE_FRIEND` (25).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveFriend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<UserId>,
    pub friendid: UserId,
}

/// `CREATE_GROUP` (7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<UserId>,
    pub groupname: String,
    #[serde(default)]
    pub groupdesc: String,
}

/// `ADD_GROUP` (8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<UserId>,
    pub groupid: GroupId,
}

/// `LEAVE_GROUP` (26).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<UserId>,
    pub groupid: GroupId,
}

/// `LIST_MEMBERS` (23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMembers {
    pub groupid: GroupId,
}

/// `DELIVERED` (14): everything up to `seq` has been received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAck {
    pub seq: Seq,
}

/// `SYNC` (15): inbox entries after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    #[serde(default = "zero_seq")]
    pub after: Seq,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

#[derive(Serialize, Deserialize)]
struct HistoryBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    toid: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    groupid: Option<GroupId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
}

/// `READ` (33): the user has seen the conversation `target` up to message
/// `mid` (never negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    pub target: Target,
    pub mid: MessageId,
}

#[derive(Serialize, Deserialize)]
struct ReadBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    toid: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    groupid: Option<GroupId>,
    mid: MessageId,
}

/// `CONVERSATIONS` (34): a page of the caller's conversations, newest
/// first, those whose last message is below `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Conversations {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `FIND_USER` (36): the user named `name`, or with `prefix` the users
/// whose names start with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindUser {
    pub name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefix: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
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

impl ClientFrame {
    /// Parses one frame (without its terminator).
    pub fn decode(frame: &[u8]) -> Result<ClientFrame, ParseError> {
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
        use AnonymousRequest as A;
        use SessionRequest as S;
        let request = match head.msgid {
            msgid::LOGIN => Request::Anonymous(A::Login(body(frame, &head)?)),
            msgid::REG => Request::Anonymous(A::Register(body(frame, &head)?)),
            msgid::RESUME => Request::Anonymous(A::Resume(body(frame, &head)?)),
            msgid::CHANGE_PASSWORD => Request::Session(S::ChangePassword(body(frame, &head)?)),
            msgid::ONE_CHAT => {
                let b: OneChatBody<'_> = body(frame, &head)?;
                Request::Session(S::Chat(Chat {
                    id: b.id,
                    target: Target::User(b.toid),
                    msg: b.msg.into_owned(),
                    cmid: b.cmid.map(Cow::into_owned),
                }))
            }
            msgid::GROUP_CHAT => {
                let b: GroupChatBody<'_> = body(frame, &head)?;
                Request::Session(S::Chat(Chat {
                    id: b.id,
                    target: Target::Group(b.groupid),
                    msg: b.msg.into_owned(),
                    cmid: b.cmid.map(Cow::into_owned),
                }))
            }
            msgid::ADD_FRIEND => Request::Session(S::AddFriend(body(frame, &head)?)),
            msgid::CREATE_GROUP => Request::Session(S::CreateGroup(body(frame, &head)?)),
            msgid::ADD_GROUP => Request::Session(S::AddGroup(body(frame, &head)?)),
            msgid::LOGINOUT => Request::Session(S::Logout(body(frame, &head)?)),
            msgid::DELIVERED => Request::Session(S::DeliveryAck(body(frame, &head)?)),
            msgid::SYNC => Request::Session(S::Sync(body(frame, &head)?)),
            msgid::HISTORY => {
                let b: HistoryBody = body(frame, &head)?;
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
                Request::Session(S::History(History {
                    target,
                    before: b.before,
                    limit: b.limit,
                }))
            }
            msgid::READ => {
                let b: ReadBody = body(frame, &head)?;
                let bad = |detail: &str| ParseError {
                    code: ErrorCode::BadField,
                    msgid: Some(head.msgid),
                    rid: head.rid,
                    proto: head.proto,
                    detail: detail.to_owned(),
                };
                let target = match (b.toid, b.groupid) {
                    (Some(user), None) => Target::User(user),
                    (None, Some(group)) => Target::Group(group),
                    _ => return Err(bad("read needs exactly one of `toid` and `groupid`")),
                };
                if b.mid.0 < 0 {
                    return Err(bad("`mid` must not be negative"));
                }
                Request::Session(S::Read(ReadMark { target, mid: b.mid }))
            }
            msgid::CONVERSATIONS => Request::Session(S::Conversations(body(frame, &head)?)),
            msgid::FIND_USER => Request::Session(S::FindUser(body(frame, &head)?)),
            msgid::LIST_FRIENDS => Request::Session(S::ListFriends),
            msgid::LIST_GROUPS => Request::Session(S::ListGroups),
            msgid::LIST_MEMBERS => Request::Session(S::ListMembers(body(frame, &head)?)),
            msgid::REMOVE_FRIEND => Request::Session(S::RemoveFriend(body(frame, &head)?)),
            msgid::LEAVE_GROUP => Request::Session(S::LeaveGroup(body(frame, &head)?)),
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
        Ok(ClientFrame {
            rid: head.rid,
            request,
        })
    }

    /// Appends this frame, as a native client sends it, with its `\n`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let rid = self.rid;
        let msgid = self.request.msgid();
        use AnonymousRequest as A;
        use SessionRequest as S;
        match &self.request {
            Request::Anonymous(A::Login(b)) => envelope(out, msgid, rid, b),
            Request::Anonymous(A::Register(b)) => envelope(out, msgid, rid, b),
            Request::Anonymous(A::Resume(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::ChangePassword(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::Chat(chat)) => match chat.target {
                Target::User(toid) => {
                    let body = OneChatBody {
                        id: chat.id,
                        toid,
                        msg: Cow::Borrowed(&chat.msg),
                        cmid: chat.cmid.as_deref().map(Cow::Borrowed),
                    };
                    envelope(out, msgid, rid, &body)
                }
                Target::Group(groupid) => {
                    let body = GroupChatBody {
                        id: chat.id,
                        groupid,
                        msg: Cow::Borrowed(&chat.msg),
                        cmid: chat.cmid.as_deref().map(Cow::Borrowed),
                    };
                    envelope(out, msgid, rid, &body)
                }
            },
            Request::Session(S::AddFriend(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::CreateGroup(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::AddGroup(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::Logout(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::DeliveryAck(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::Sync(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::History(h)) => {
                let (toid, groupid) = match h.target {
                    Target::User(user) => (Some(user), None),
                    Target::Group(group) => (None, Some(group)),
                };
                let body = HistoryBody {
                    toid,
                    groupid,
                    before: h.before,
                    limit: h.limit,
                };
                envelope(out, msgid, rid, &body)
            }
            Request::Session(S::Read(r)) => {
                let (toid, groupid) = match r.target {
                    Target::User(user) => (Some(user), None),
                    Target::Group(group) => (None, Some(group)),
                };
                let body = ReadBody {
                    toid,
                    groupid,
                    mid: r.mid,
                };
                envelope(out, msgid, rid, &body)
            }
            Request::Session(S::Conversations(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::FindUser(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::ListMembers(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::RemoveFriend(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::LeaveGroup(b)) => envelope(out, msgid, rid, b),
            Request::Session(S::ListFriends | S::ListGroups) | Request::Ping | Request::Pong => {
                envelope(out, msgid, rid, &Empty {})
            }
        }
    }
}

/// The fields of the request `head` names; a failure keeps what the head
/// told, so that the error reply can echo it.
fn body<T: DeserializeOwned>(frame: &[u8], head: &Head) -> Result<T, ParseError> {
    serde_json::from_slice(frame).map_err(|e| {
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
    })
}

/// A request without fields of its own.
#[derive(Serialize)]
struct Empty {}

/// `msgid` and `rid` around a request's own fields.
#[derive(Serialize)]
struct Envelope<'a, B> {
    msgid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
    #[serde(flatten)]
    body: &'a B,
}

fn envelope<B: Serialize>(out: &mut Vec<u8>, msgid: u32, rid: Option<u64>, body: &B) {
    super::push_json(out, &Envelope { msgid, rid, body });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ClientFrame, ParseError> {
        ClientFrame::decode(s.as_bytes())
    }

    #[test]
    fn seed_one_chat_parses_with_its_extra_fields() {
        let frame = parse(
            r#"{"msgid":5,"id":1,"name":"alice","toid":2,"msg":"hi","time":"2024-01-01 12:00:00"}"#,
        )
        .expect("valid");
        assert_eq!(
            frame.request,
            Request::Session(SessionRequest::Chat(Chat {
                id: Some(UserId(1)),
                target: Target::User(UserId(2)),
                msg: "hi".into(),
                cmid: None,
            }))
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
    fn read_needs_one_target_and_a_mid_not_below_zero() {
        for bad in [
            r#"{"msgid":33,"toid":1,"groupid":2,"mid":3}"#,
            r#"{"msgid":33,"mid":3}"#,
            r#"{"msgid":33,"toid":1,"mid":-1}"#,
            r#"{"msgid":33,"toid":1}"#,
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.code, ErrorCode::BadField, "{bad}");
            assert_eq!(err.msgid, Some(msgid::READ), "{bad}");
        }
        let frame = parse(r#"{"msgid":33,"groupid":2,"mid":0}"#).expect("valid");
        assert_eq!(
            frame.request,
            Request::Session(SessionRequest::Read(ReadMark {
                target: Target::Group(GroupId(2)),
                mid: MessageId(0),
            }))
        );
    }

    #[test]
    fn find_user_is_exact_unless_prefix_is_asked_for() {
        let frame = parse(r#"{"msgid":36,"name":"bo"}"#).expect("valid");
        assert_eq!(
            frame.request,
            Request::Session(SessionRequest::FindUser(FindUser {
                name: "bo".into(),
                prefix: false,
                limit: None,
            }))
        );
        let err = parse(r#"{"msgid":36,"prefix":true}"#).expect_err("no name");
        assert_eq!(err.code, ErrorCode::BadField);
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let frame = parse(r#"{"msgid":1,"id":1,"password":"hunter2"}"#).expect("valid");
        assert!(!format!("{frame:?}").contains("hunter2"));
    }

    #[test]
    fn message_bodies_stay_out_of_debug_output() {
        for frame in [
            r#"{"msgid":5,"id":1,"toid":2,"msg":"meet me at the docks"}"#,
            r#"{"msgid":9,"id":1,"groupid":3,"msg":"meet me at the docks"}"#,
        ] {
            let request = parse(frame).expect("valid");
            let shown = format!("{request:?}");
            assert!(!shown.contains("docks"), "{shown}");
            assert!(shown.contains("<20 bytes>"), "{shown}");
        }
    }
}
