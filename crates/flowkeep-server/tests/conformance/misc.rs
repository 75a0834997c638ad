//! The remaining commands (`customcommand getclients`, `ensurecustomer`) and the README's client example.

use crate::harness::*;
use openiap_client::{
    Client, CustomCommandRequest, Customer, EnsureCustomerRequest, EnvConfig, InsertOneRequest, QueryRequest,
    SigninRequest,
};
use serde_json::{json, Value};

/// `getclients` lists the connected clients the caller may see: the admin sees its own connection (with
/// user and agent), a plain user never sees the admin's.
pub async fn getclients(t: Transport) {
    let client = admin(t).await;
    let me = client.get_user().expect("signed in");
    let text = ok(
        client.custom_command(CustomCommandRequest::bycommand("getclients"), env(), None).await,
        t,
        "customcommand getclients",
    );
    let clients = parse_array(&text, "getclients result");
    let mentions = |c: &Value, what: &str| c.to_string().contains(what);
    let mine: Vec<&Value> = clients.iter().filter(|c| mentions(c, &me.id) || mentions(c, ADMIN)).collect();
    assert!(!mine.is_empty(), "the admin's own connection is listed: {clients:?}");
    assert!(mine.iter().any(|c| mentions(c, "rust")), "the agent name (rust) is shown: {mine:?}");

    let user = create_user(&client, t, "clientlister").await;
    let plain = connect_user(t, &user).await;
    match plain.custom_command(CustomCommandRequest::bycommand("getclients"), env(), None).await {
        Ok(text) => {
            let theirs = parse_array(&text, "getclients result");
            assert!(
                theirs.iter().all(|c| !mentions(c, ADMIN) && !mentions(c, &me.id)),
                "a plain user does not see the admin's connections: {theirs:?}"
            );
            assert!(theirs.iter().any(|c| mentions(c, &user.id) || mentions(c, &user.username)), "{theirs:?}");
        }
        // Refusing the command to non-admins is also acceptable.
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let unknown = client.custom_command(CustomCommandRequest::bycommand("no-such-custom-command"), env(), None).await;
    assert!(unknown.is_err(), "an unknown custom command is an error: {unknown:?}");

    // The admin sees the user's connection while it is open, and not after it closed.
    let user_listed = |text: &str| parse_array(text, "getclients").iter().any(|c| mentions(c, &user.id));
    let request = CustomCommandRequest::bycommand("getclients");
    let text = ok(client.custom_command(request.clone(), env(), None).await, t, "getclients");
    assert!(user_listed(&text), "the admin sees the user's connection: {text}");
    plain.disconnect();
    drop(plain);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = ok(client.custom_command(request.clone(), env(), None).await, t, "getclients");
        if !user_listed(&text) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "a closed connection leaves the list: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    client.disconnect();
}

/// `ensurecustomer` creates a customer by name once, and finds the same one on the next call (by name
/// and by `_id`); it is a `_type: customer` document in `users`.
pub async fn ensure_customer(t: Transport) {
    let client = admin(t).await;
    let name = unique("Conformance Customer", t);
    let request = EnsureCustomerRequest::new(Some(Customer::byname(&name)), "", None);
    let first = ok(client.ensure_customer(request.clone(), env()).await, t, "ensurecustomer");
    let customer = first.customer.expect("the reply carries the customer");
    assert_eq!(customer.name, name);
    assert!(!customer.id.is_empty(), "the customer has an _id");

    let again = ok(client.ensure_customer(request, env()).await, t, "ensurecustomer again");
    assert_eq!(again.customer.map(|c| c.id), Some(customer.id.clone()), "found, not created twice");
    let by_id = Customer { id: customer.id.clone(), ..Customer::byname(&name) };
    let request = EnsureCustomerRequest::new(Some(by_id), "", None);
    let found = ok(client.ensure_customer(request, env()).await, t, "ensurecustomer by id");
    assert_eq!(found.customer.map(|c| c.name), Some(name.clone()));

    let stored = find(&client, t, "users", json!({"name": name})).await;
    assert_eq!(stored.len(), 1, "one customer document: {stored:?}");
    assert_eq!(stored[0]["_type"], json!("customer"));
    assert_eq!(stored[0]["_id"], json!(customer.id));
    client.disconnect();
}

/// The example of the README section "Connecting with the official clients", as written there (the
/// URL, password and name are the test's).
pub async fn readme_example(t: Transport) {
    let url = t.url(None);
    let name = unique("hello", t);
    let client = ok(Client::new_connect(&url).await, t, "Client::new_connect");
    ok(client.signin(SigninRequest::with_userpass(ADMIN, ADMIN_PASSWORD)).await, t, "signin");
    let item = InsertOneRequest {
        collectionname: "entities".into(),
        item: json!({"_type": "test", "name": name}).to_string(),
        ..Default::default()
    };
    ok(client.insert_one(item, EnvConfig::new()).await, t, "insert_one");
    let query = json!({"name": name}).to_string();
    let found = ok(client.query(QueryRequest::with_query("entities", &query), EnvConfig::new()).await, t, "query");
    let docs = parse_array(&found.results, "query results");
    assert_eq!(column(&docs, "name"), [json!(name)], "{docs:?}");
    assert_eq!(column(&docs, "_type"), [json!("test")], "{docs:?}");
    client.disconnect();
}
