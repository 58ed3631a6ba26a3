//! The admin API (`/admin/`), present only with `--admin-token-file`:
//! JSON over HTTP, every route behind `Authorization: Bearer <token>`.
//!
//! - `GET /admin/users/{id}`: the account and its live session, whichever
//!   node holds it;
//! - `POST /admin/users/{id}/kick`: end its session;
//! - `POST` / `DELETE /admin/users/{id}/ban`: ban (no login or resume on
//!   any node, session ended) or lift the ban;
//! - `POST /admin/users/{id}/password` with `{"password": "..."}`: set
//!   the password, revoking its resume tokens and ending its session;
//! - `DELETE /admin/users/{id}`: delete the account.
//!
//! Every call, allowed or not, leaves one line on the `chatd::audit` log
//! target: the action, the user id, the caller's address and the outcome
//! (never a password or a token).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use chatcore::ChatService;
use chatcore::model::UserId;
use chatcore::presence::LiveSession;
use chatcore::service::{Account, AdminError};

use super::token::AdminToken;

/// The log target of the audit lines.
const AUDIT: &str = "chatd::audit";

/// What the routes share.
#[derive(Debug)]
pub(crate) struct Api {
    pub(crate) service: ChatService,
    pub(crate) token: AdminToken,
}

/// The `/admin/` routes.
pub(crate) fn routes(api: Api) -> Router {
    Router::new()
        .route("/admin/users/{id}", get(show).delete(delete))
        .route("/admin/users/{id}/kick", post(kick))
        .route("/admin/users/{id}/ban", post(ban).delete(unban))
        .route("/admin/users/{id}/password", post(password))
        .with_state(Arc::new(api))
}

/// What one call is about: checked before anything runs.
struct Call {
    action: &'static str,
    user: UserId,
    caller: SocketAddr,
}

/// An answer: its status and JSON body.
fn answer(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    answer(status, json!({ "error": message.to_string() }))
}

/// Checks the bearer token and the user id of a call; the refusal to
/// send otherwise (audited here; boxed, as it is the rare path).
fn authorize(
    api: &Api,
    headers: &HeaderMap,
    action: &'static str,
    raw_id: &str,
    caller: SocketAddr,
) -> Result<Call, Box<Response>> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if !presented.is_some_and(|token| api.token.matches(token)) {
        tracing::warn!(
            target: AUDIT,
            action,
            user = ?raw_id,
            %caller,
            outcome = "unauthorized",
            "admin call refused: missing or wrong bearer token"
        );
        let mut refusal = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        );
        refusal
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Err(Box::new(refusal));
    }
    match raw_id.parse::<i64>() {
        Ok(id) if id > 0 => Ok(Call {
            action,
            user: UserId(id),
            caller,
        }),
        _ => {
            tracing::info!(target: AUDIT, action, user = ?raw_id, %caller, outcome = "bad_id", "admin call refused");
            Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                format_args!("bad user id {raw_id:?}: a positive integer is expected"),
            )))
        }
    }
}

/// Runs an authorized call and answers: `ok` as 200 with its JSON, a
/// failure with its status; one audit line either way.
fn finish(call: &Call, result: Result<(Value, usize), AdminError>) -> Response {
    let Call {
        action,
        user,
        caller,
    } = call;
    match result {
        Ok((body, sessions_ended)) => {
            tracing::info!(
                target: AUDIT,
                action,
                user = user.0,
                %caller,
                outcome = "ok",
                sessions_ended,
                "admin call"
            );
            answer(StatusCode::OK, body)
        }
        Err(e) => {
            let (status, outcome) = match &e {
                AdminError::UnknownUser(_) => (StatusCode::NOT_FOUND, "unknown_user"),
                AdminError::InvalidPassword(_) => (StatusCode::BAD_REQUEST, "invalid_password"),
                AdminError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                AdminError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            };
            tracing::info!(target: AUDIT, action, user = user.0, %caller, outcome, error = %e, "admin call failed");
            error(status, e)
        }
    }
}

fn sessions(list: &[LiveSession]) -> Value {
    list.iter()
        .map(|s| json!({ "session": s.session.to_string(), "node": s.node }))
        .collect()
}

fn account(account: &Account) -> Value {
    json!({
        "id": account.id.0,
        "name": account.name,
        "banned": account.banned_at_ms.is_some(),
        "banned_at_ms": account.banned_at_ms,
        "online": !account.sessions.is_empty(),
        "sessions": sessions(&account.sessions),
    })
}

/// A change's answer: the user and the sessions it ended.
fn ended(user: UserId, extra: Value, list: &[LiveSession]) -> (Value, usize) {
    let mut body = json!({ "id": user.0, "ended_sessions": sessions(list) });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (body, list.len())
}

type Caller = ConnectInfo<SocketAddr>;

async fn show(
    State(api): State<Arc<Api>>,
    ConnectInfo(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let call = match authorize(&api, &headers, "show", &id, caller) {
        Ok(call) => call,
        Err(refusal) => return *refusal,
    };
    let result = api.service.account(call.user).await;
    finish(&call, result.map(|found| (account(&found), 0)))
}

async fn kick(
    State(api): State<Arc<Api>>,
    ConnectInfo(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let call = match authorize(&api, &headers, "kick", &id, caller) {
        Ok(call) => call,
        Err(refusal) => return *refusal,
    };
    let result = api.service.kick(call.user).await;
    finish(&call, result.map(|list| ended(call.user, json!({}), &list)))
}

async fn ban(
    State(api): State<Arc<Api>>,
    ConnectInfo(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let call = match authorize(&api, &headers, "ban", &id, caller) {
        Ok(call) => call,
        Err(refusal) => return *refusal,
    };
    let result = api.service.ban(call.user).await;
    finish(
        &call,
        result.map(|list| ended(call.user, json!({ "banned": true }), &list)),
    )
}

async fn unban(
    State(api): State<Arc<Api>>,
    ConnectInfo(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let call = match authorize(&api, &headers, "unban", &id, caller) {
        Ok(call) => call,
        Err(refusal) => return *refusal,
    };
    let result = api.service.unban(call.user).await;
    finish(
        &call,
        result.map(|()| ended(call.user, json!({ "banned": false }), &[])),
    )
}

/// The body of `POST /admin/users/{id}/password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

async fn password(
    State(api): State<Arc<Api>>,
    ConnectInfo(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let call = match authorize(&api, &headers, "set_password", &id, caller) {
        Ok(call) => call,
        Err(refusal) => return *refusal,
    };
    let new: NewPassword = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(e) => {
            tracing::info!(target: AUDIT, action = call.action, user = call.user.0, caller = %call.caller, outcome = "bad_body", "admin call refused");
            // serde_json's message names the field and the place; it
            // quotes no string, so no password reaches the answer.
            return error(
                StatusCode::BAD_REQUEST,
                format_args!("the body must be {{\"password\": \"...\"}}: {e}"),
            );
        }
    };
    let result = api.service.reset_password(call.user, &new.password).await;
    finish(
        &call,
        result.map(|list| ended(call.user, json!({ "password_set": true }), &list)),
    )
}

async fn delete(
    State(api): State<Arc<Api>>,
    ConnectInfo(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let call = match authorize(&api, &headers, "delete", &id, caller) {
        Ok(call) => call,
        Err(refusal) => return *refusal,
    };
    let result = api.service.delete_account(call.user).await;
    finish(
        &call,
        result.map(|list| ended(call.user, json!({ "deleted": true }), &list)),
    )
}
