//! Sign-in: username and password (in the URL and with `signin`), the JWT from a first sign-in's reply (as
//! a session sign-in and as a per-request override), and a refused login.

use crate::harness::*;
use openiap_client::{EnvConfig, QueryRequest, SigninRequest};
use serde_json::json;

/// `signin` with username and password after a guest connect; the reply carries the user with its roles
/// and a JWT, and the session then runs as that user.
pub async fn signin_with_password(t: Transport) {
    let (client, reply) = connect_as(t, ADMIN, ADMIN_PASSWORD).await;
    let user = reply.user.as_ref().expect("the signin reply has a user");
    assert_eq!(user.username, ADMIN);
    assert!(!user.id.is_empty(), "the user has an _id: {user:?}");
    assert!(user.roles.iter().any(|r| r.name == "admins"), "the first admin is in admins: {:?}", user.roles);
    assert!(!reply.jwt.is_empty(), "the signin reply has a jwt");
    assert_eq!(reply.jwt.split('.').count(), 3, "the jwt is a compact JWS: {}", reply.jwt);
    assert_eq!(client.get_user().map(|u| u.username), Some(ADMIN.to_string()));

    // The session runs as the admin: the admin's own user document is readable.
    let me = find(&client, t, "users", json!({"_id": user.id})).await;
    assert_eq!(column(&me, "username"), [json!(ADMIN)], "{me:?}");
    client.disconnect();

    // The client read `/config` before connecting (over WebSocket: same host and port; over gRPC on a port
    // other than 50051 it asks the gRPC port, which fails harmlessly) and parsed it into its own struct.
    let config = client.get_config().map(|c| format!("{c:?}"));
    match t {
        Transport::Ws => {
            let config = config.expect("the client parsed /config");
            assert!(config.contains("enable_analytics: false"), "{config}");
        }
        Transport::Grpc => assert!(config.is_none(), "{config:?}"),
    }

    // Credentials in the URL sign in on connect, as OPENIAP_USERNAME/OPENIAP_PASSWORD would.
    let client = admin(t).await;
    assert_eq!(client.get_user().map(|u| u.id), Some(user.id.clone()));
    client.disconnect();
}

/// The JWT from the first sign-in signs a second connection in as the same user, and also works as a
/// per-request identity (`Envelope.jwt`) on a connection that never signed in.
pub async fn signin_with_jwt(t: Transport) {
    let creator = admin(t).await;
    let user = create_user(&creator, t, "jwtuser").await;
    creator.disconnect();
    let (first, reply) = connect_as(t, &user.username, &user.password).await;
    first.disconnect();
    assert_eq!(reply.user.as_ref().map(|u| u.id.clone()), Some(user.id.clone()));

    let second = connect_guest(t).await;
    let again = ok(second.signin(SigninRequest::with_jwt(&reply.jwt)).await, t, "signin with the jwt");
    let again_user = again.user.expect("the jwt signin reply has a user");
    assert_eq!(again_user.id, user.id);
    assert_eq!(again_user.username, user.username);
    let mine = find(&second, t, "users", json!({"_id": user.id})).await;
    assert_eq!(column(&mine, "username"), [json!(user.username)], "the session runs as the user: {mine:?}");
    second.disconnect();

    // A per-request jwt also narrows an admin session to that user for that one request, and a second
    // signin on a connection switches its user.
    let admin = admin(t).await;
    let admin_id = admin.get_user().expect("signed in").id;
    let narrowed = admin
        .query(
            QueryRequest::with_query("users", &json!({"_id": admin_id}).to_string()),
            EnvConfig::with_jwt(&reply.jwt),
        )
        .await;
    let narrowed = parse_array(&ok(narrowed, t, "query with the user's jwt").results, "queryreply results");
    assert!(narrowed.is_empty(), "the request ran as the user, who cannot read the admin: {narrowed:?}");
    assert_eq!(find(&admin, t, "users", json!({"_id": admin_id})).await.len(), 1, "the session is still admin");
    ok(admin.signin(SigninRequest::with_userpass(&user.username, &user.password)).await, t, "second signin");
    assert!(find(&admin, t, "users", json!({"_id": admin_id})).await.is_empty(), "the connection is now the user's");
    admin.disconnect();

    let guest = connect_guest(t).await;
    let as_user = guest
        .query(QueryRequest::with_query("users", &json!({"_id": user.id}).to_string()), EnvConfig::with_jwt(&reply.jwt))
        .await;
    let as_user = ok(as_user, t, "query with a per-request jwt");
    let docs = parse_array(&as_user.results, "queryreply results");
    assert_eq!(column(&docs, "_id"), [json!(user.id)], "{docs:?}");
    guest.disconnect();
}

/// A wrong password and an unknown user are refused with an error reply; the connection stays usable
/// and a correct sign-in afterwards works. Without a sign-in, commands are refused.
pub async fn bad_login_is_refused(t: Transport) {
    // A user of its own, so the failed attempts never count against the admin account's throttle.
    let admin = admin(t).await;
    let user = create_user(&admin, t, "badlogin").await;
    admin.disconnect();

    let client = connect_guest(t).await;
    let wrong = client.signin(SigninRequest::with_userpass(&user.username, "not the password at all")).await;
    let err = wrong.expect_err("a wrong password must be refused");
    assert!(!err.to_string().trim().is_empty(), "the error says something");
    assert!(client.get_user().is_none(), "no user after a refused sign-in");
    let unknown = client.signin(SigninRequest::with_userpass("no-such-user-here", "whatever-password")).await;
    assert!(unknown.is_err(), "an unknown user must be refused: {unknown:?}");
    let bad_jwt = client.signin(SigninRequest::with_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")).await;
    assert!(bad_jwt.is_err(), "a forged jwt must be refused: {bad_jwt:?}");

    let anonymous = client.query(QueryRequest::with_query("users", "{}"), env()).await;
    assert!(anonymous.is_err(), "a guest must not query: {anonymous:?}");

    // validateonly checks the credentials without signing the session in.
    let check =
        |password: &str| SigninRequest { validateonly: true, ..SigninRequest::with_userpass(&user.username, password) };
    let valid = ok(client.signin(check(&user.password)).await, t, "signin validateonly");
    assert_eq!(valid.user.map(|u| u.id), Some(user.id.clone()), "validateonly answers with the user");
    let still_guest = client.query(QueryRequest::with_query("users", "{}"), env()).await;
    assert!(still_guest.is_err(), "validateonly must not sign the session in: {still_guest:?}");
    let invalid = client.signin(check("not the password at all")).await;
    assert!(invalid.is_err(), "validateonly refuses a wrong password: {invalid:?}");

    let reply = ok(client.signin(SigninRequest::with_userpass(&user.username, &user.password)).await, t, "signin");
    assert_eq!(reply.user.map(|u| u.id), Some(user.id.clone()), "a correct sign-in works after refused ones");
    client.disconnect();

    // Wrong credentials in the URL make the connect itself fail.
    let url = t.url(Some((&user.username, "wrong-password-in-url")));
    let refused = connect_url(&url).await;
    assert!(refused.is_err(), "connect with wrong credentials in the URL must fail");
}
