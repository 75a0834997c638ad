//! Sessions: `signin` (password or token, `validateonly`, `longtoken`), `getelement` (the guest
//! handshake) and the `refreshtoken` push before the session token expires.
//!
//! A failed sign-in leaves the session as it was. `validateonly` checks the credentials (with neither
//! credentials nor jwt given: the session's own token) and answers like a sign-in, without changing the
//! session. A refresh is a token sign-in with the current session token, so it is refused exactly when a
//! request would be (user disabled or deleted); then the connection is closed.

use crate::codec::{self, decode, ProtocolError, Result};
use crate::commands::reply_command;
use crate::connection::{strip_bearer, Connection, Reply, SessionState};
use crate::wire;
use flowkeep_core::identity::Session;
use serde_json::{json, Value};
use tokio::time::Instant;

/// The `config` string of a `SigninResponse` (the official client ignores it).
fn signin_config() -> String {
    codec::to_json(&json!({"supports_watch": true, "enable_analytics": false}))
}

/// The wire form of a core session's public user.
pub(crate) fn wire_user(user: &Value) -> wire::User {
    let text = |field: &str| user.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
    let roles = user
        .get("roles")
        .and_then(Value::as_array)
        .map(|roles| {
            roles
                .iter()
                .map(|r| wire::Role {
                    id: r.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    name: r.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    wire::User { id: text("_id"), name: text("name"), username: text("username"), email: text("email"), roles }
}

/// `signin`.
pub(crate) async fn signin(conn: &mut Connection, envelope: &wire::Envelope) -> Result<Reply> {
    let request: wire::SigninRequest = decode(envelope)?;
    let platform = conn.hub.platform.clone();
    let client = conn.client_info(&request.agent, &request.version);
    let jwt = strip_bearer(&request.jwt).to_owned();
    let session: Session = if !request.username.trim().is_empty() {
        platform.signin_password(&request.username, &request.password, &client, request.longtoken).await?
    } else if !jwt.is_empty() {
        platform.signin_token(&jwt, &client, request.longtoken).await?
    } else if request.validateonly {
        match conn.session.as_ref().map(|s| s.token.clone()) {
            Some(token) => platform.signin_token(&token, &client, request.longtoken).await?,
            None => return Err(ProtocolError::NotSignedIn),
        }
    } else {
        return Err(ProtocolError::field("username", "signin needs a username and password, or a jwt"));
    };
    let response = wire::SigninResponse {
        jwt: session.token.clone(),
        user: Some(wire_user(&session.user)),
        config: signin_config(),
    };
    if !request.validateonly {
        let caller = platform.authenticate(&session.token).await?;
        let (user_id, username, name) =
            (caller.user_id().to_owned(), caller.username().to_owned(), caller.name().to_owned());
        conn.session = Some(SessionState {
            token: session.token,
            expires_at: session.expires_at,
            long: request.longtoken,
            agent: request.agent.clone(),
            version: request.version.clone(),
            caller,
            checked: Instant::now(),
        });
        conn.greeted = true;
        conn.ping = request.ping;
        conn.schedule_session_timers(true);
        conn.registry.update(|entry| {
            entry.user_id = Some(user_id);
            entry.username = Some(username);
            entry.name = Some(name);
            entry.agent = request.agent.clone();
            entry.version = request.version.clone();
        });
    }
    Ok(Reply::new(&reply_command(envelope), &response))
}

/// `getelement`: the guest handshake. Answered with command `getelement` (the official client refuses
/// `getelementreply`), echoing the request's `xpath`.
pub(crate) fn getelement(conn: &mut Connection, envelope: &wire::Envelope) -> Reply {
    conn.greeted = true;
    let request: wire::GetElementRequest = decode(envelope).unwrap_or_default();
    Reply::new("getelement", &wire::GetElementResponse { xpath: request.xpath })
}

/// Replaces the session token before it expires and pushes `refreshtoken`; closes the connection when
/// the core refuses.
pub(crate) async fn refresh(conn: &mut Connection) {
    let Some(session) = conn.session.as_ref() else { return };
    let (token, long) = (session.token.clone(), session.long);
    let (agent, version) = (session.agent.clone(), session.version.clone());
    let platform = conn.hub.platform.clone();
    let client = conn.client_info(&agent, &version);
    let refreshed = match platform.signin_token(&token, &client, long).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(connection = conn.registry.id(), error = %e, "token refresh refused; closing");
            conn.close();
            return;
        }
    };
    let caller = match platform.authenticate(&refreshed.token).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(connection = conn.registry.id(), error = %e, "refreshed token does not resolve; closing");
            conn.close();
            return;
        }
    };
    let message = wire::RefreshToken {
        username: caller.username().to_owned(),
        jwt: refreshed.token.clone(),
        user: Some(wire_user(&refreshed.user)),
    };
    conn.session = Some(SessionState {
        token: refreshed.token,
        expires_at: refreshed.expires_at,
        long,
        agent,
        version,
        caller,
        checked: Instant::now(),
    });
    conn.schedule_session_timers(false);
    conn.send(codec::reply("refreshtoken", "", &message)).await;
}
