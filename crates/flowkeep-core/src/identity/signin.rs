//! Callers and sign-in: token → caller resolution, password and token sign-in with throttling and
//! audit, impersonation and its revert.

use super::*;

fn client_of(info: &ClientInfo) -> Client {
    Client { agent: info.agent.clone(), version: info.version.clone() }
}

fn user_target(id: Option<&str>, name: Option<&str>) -> Target {
    Target { collection: Some(USERS_COLLECTION.into()), id: id.map(str::to_owned), name: name.map(str::to_owned) }
}

fn token_kind(long: bool) -> TokenKind {
    if long {
        TokenKind::Long
    } else {
        TokenKind::Short
    }
}

/// The fields of a user document a client may see (reference `TokenUser`), plus the effective roles
/// and the impostor.
fn public_user(doc: &Value, caller: &Caller) -> Value {
    const FIELDS: [&str; 12] = [
        "_id",
        "_type",
        "name",
        "username",
        "email",
        "disabled",
        "validated",
        "emailvalidated",
        "formvalidated",
        "customerid",
        "selectedcustomerid",
        "dblocked",
    ];
    let mut map = Map::new();
    for field in FIELDS {
        if let Some(v) = doc.get(field) {
            map.insert(field.into(), v.clone());
        }
    }
    let roles: Vec<Value> = caller.roles().iter().map(|r| json!({"_id": r.id, "name": r.name})).collect();
    map.insert("roles".into(), Value::Array(roles));
    if let Some(imp) = caller.impostor() {
        map.insert("impostor".into(), Value::String(imp.user_id().to_owned()));
    }
    Value::Object(map)
}

impl Platform {
    /// The user document with this `_id`, read with the system scope: the user being authenticated (or
    /// its impostor) is looked up before any caller exists.
    pub(super) async fn load_user(&self, id: &str) -> Result<Option<Value>> {
        Ok(self.store.find_one(USERS_COLLECTION, &Scope::system(), &json!({"_id": id}), None).await?)
    }

    /// The user a sign-in names: by username first, then by email. Username first, because `email` is
    /// a free profile field: someone setting their email to another user's username must not be found
    /// instead of that user.
    async fn find_login(&self, attempted: &str, lower: &str) -> Result<Option<Value>> {
        let by_username = json!({"_type": "user", "username": lower});
        if let Some(user) = self.store.find_one(USERS_COLLECTION, &Scope::system(), &by_username, None).await? {
            return Ok(Some(user));
        }
        let by_email = json!({"_type": "user", "$or": [{"email": attempted}, {"email": lower}]});
        Ok(self.store.find_one(USERS_COLLECTION, &Scope::system(), &by_email, None).await?)
    }

    /// The role graph (cached).
    async fn role_graph(&self) -> Result<Arc<RoleGraph>> {
        self.roles.graph(self.store.as_ref(), self.config.max_role_depth).await
    }

    /// Token → verified claims → the user loaded afresh → caller. Returns the caller and its user
    /// document.
    async fn resolve_token(&self, token: &str) -> Result<(Caller, Value, VerifiedToken)> {
        let unauth = |e: &dyn std::fmt::Display| CoreError::Unauthenticated(e.to_string());
        let first = self.tokens.read().await.verify(token, now_secs());
        let verified = match first {
            Err(TokenError::UnknownKid) if self.key_reload.allow() => {
                self.reload_signing_keys().await?;
                self.tokens.read().await.verify(token, now_secs())
            }
            other => other,
        }
        .map_err(|e| unauth(&e))?;
        let graph = self.role_graph().await?;
        let gone = || CoreError::Unauthenticated("the token is valid but its user no longer exists".into());
        let user = self.load_user(verified.user_id()).await?.ok_or_else(gone)?;
        let caller = match verified.impostor() {
            None => Caller::resolve(&user, &graph).map_err(|e| unauth(&e))?,
            Some(impostor_id) => {
                // The impostor is re-checked on every request too: disabling it, or taking away its
                // read or update right on the target, ends the impersonation at once.
                let impostor_doc = self.load_user(impostor_id).await?.ok_or_else(gone)?;
                let impostor = Caller::resolve(&impostor_doc, &graph).map_err(|e| unauth(&e))?;
                impostor.impersonate(&user, &graph).map_err(|e| unauth(&e))?
            }
        };
        if caller.roles_truncated() {
            tracing::warn!(
                user = caller.username(),
                "role nesting deeper than max_role_depth; roles beyond it ignored"
            );
        }
        Ok((caller, user, verified))
    }

    /// Resolves a request's token to the caller it runs as: the token is verified, then the user (and
    /// the impostor, when impersonating) is loaded afresh and its roles taken from the role cache, so a
    /// disabled or deleted user's token stops working at once and role changes apply to the next call.
    pub async fn authenticate(&self, token: &str) -> Result<Caller> {
        self.resolve_token(token).await.map(|(caller, _, _)| caller)
    }

    /// Issues a token for `caller` (keeping its impostor) and builds the session; also returns what the
    /// audit records about the token (`jti`, `kid`, kind, expiry — never the token itself).
    async fn session_for(&self, caller: &Caller, user: &Value, kind: TokenKind) -> Result<(Session, Value)> {
        let request = TokenRequest {
            user_id: caller.user_id(),
            username: caller.username(),
            impostor: caller.impostor().map(|i| i.user_id()),
            kind,
        };
        let issued = self.tokens.read().await.issue(&request, now_secs()).map_err(internal)?;
        let details =
            json!({"jti": issued.jti, "kid": issued.kid, "kind": issued.kind, "expires_at": issued.expires_at});
        Ok((Session { token: issued.token, expires_at: issued.expires_at, user: public_user(user, caller) }, details))
    }

    /// Audits a refused sign-in; an audit failure is logged (the sign-in is refused anyway).
    async fn audit_login_failed(&self, attempted: Option<&str>, reason: &str, client: &ClientInfo, id: Option<&str>) {
        let mut entry = draft(AuditKind::LoginFailed);
        entry.actor = Actor { id: id.map(str::to_owned), name: attempted.map(str::to_owned), impostor: None };
        entry.target = user_target(id, attempted);
        entry.client = client_of(client);
        entry.address = client.address.clone();
        entry.reason = Some(reason.to_owned());
        if let Err(e) = self.audit(entry).await {
            tracing::error!(error = %e, "could not audit a failed sign-in");
        }
    }

    /// Audits a successful sign-in. A failure aborts the sign-in: no unaudited logins.
    async fn audit_login_success(
        &self,
        caller: &Caller,
        client: &ClientInfo,
        method: &str,
        token: Value,
    ) -> Result<()> {
        let mut entry = draft(AuditKind::LoginSuccess);
        entry.actor = actor_of(caller);
        entry.target = user_target(Some(caller.user_id()), Some(caller.username()));
        entry.client = client_of(client);
        entry.address = client.address.clone();
        entry.details = json!({"method": method, "token": token});
        self.audit(entry).await
    }

    /// Signs in with a username (or email) and password.
    ///
    /// Failed attempts are counted per account and per source address over `login_window`; once either
    /// is over its limit the attempt is refused with `Throttled` **before** the password is checked, so
    /// throttled attempts reveal nothing. An unknown user and a wrong password give the same error (and
    /// cost the same hashing time). A bcrypt (or outdated argon2) hash is replaced by a fresh argon2id
    /// hash on success. Every outcome is audited (throttled refusals once per account, source and window).
    pub async fn signin_password(
        &self,
        username_or_email: &str,
        password: &str,
        client: &ClientInfo,
        long: bool,
    ) -> Result<Session> {
        let attempted = username_or_email.trim();
        let account = attempted.to_lowercase();
        let source = client.address.as_deref();
        if self.throttle.is_throttled(Some(&account), source, &self.config) {
            if self.throttle.should_report(Some(&account), source, &self.config) {
                self.audit_login_failed(Some(attempted), "throttled", client, None).await;
            }
            return Err(CoreError::Throttled("too many failed sign-in attempts; try again later".into()));
        }
        let user = if attempted.is_empty() { None } else { self.find_login(attempted, &account).await? };
        let user_id = user.as_ref().and_then(|u| str_field(u, "_id")).map(str::to_owned);
        // The account is also counted by its id, so switching between username and email (or their
        // case) does not buy more guesses.
        let id_key = user_id.as_ref().map(|id| format!("id:{id}"));
        if self.throttle.is_throttled(id_key.as_deref(), None, &self.config) {
            if self.throttle.should_report(id_key.as_deref(), source, &self.config) {
                self.audit_login_failed(Some(attempted), "throttled", client, user_id.as_deref()).await;
            }
            return Err(CoreError::Throttled("too many failed sign-in attempts; try again later".into()));
        }
        let stored = user.as_ref().and_then(|u| str_field(u, "passwordhash")).map(str::to_owned);
        let is_root = user_id.as_deref() == Some(wellknown::ROOT);
        let (hash, known) = match stored {
            Some(h) if !is_root => (h, true),
            _ => (dummy_hash().await?, false),
        };
        let verification = verify_blocking(hash, password.to_owned()).await?;
        let (Some(user), true, true) = (user, known, verification.ok) else {
            self.throttle.record_failure(Some(&account), source, &self.config);
            if let Some(id_key) = &id_key {
                self.throttle.record_failure(Some(id_key), None, &self.config);
            }
            let reason = match (&user_id, is_root, known) {
                (None, _, _) => "unknown user",
                (Some(_), true, _) => "root is not a login",
                (Some(_), false, false) => "no password set",
                _ => "wrong password",
            };
            self.audit_login_failed(Some(attempted), reason, client, user_id.as_deref()).await;
            return Err(CoreError::Unauthenticated(BAD_CREDENTIALS.into()));
        };
        let graph = self.role_graph().await?;
        let caller = match Caller::resolve(&user, &graph) {
            Ok(caller) => caller,
            Err(e) => {
                self.audit_login_failed(Some(attempted), &e.to_string(), client, user_id.as_deref()).await;
                return Err(CoreError::Unauthenticated(e.to_string()));
            }
        };
        if verification.needs_rehash {
            self.rehash(caller.user_id(), password).await;
        }
        self.throttle.clear_account(&account);
        if let Some(id_key) = &id_key {
            self.throttle.clear_account(id_key);
        }
        let (session, token) = self.session_for(&caller, &user, token_kind(long)).await?;
        self.audit_login_success(&caller, client, "password", token).await?;
        Ok(session)
    }

    /// Replaces a user's password hash with a current argon2id hash of the password that just matched.
    /// Done directly in the store (system scope): it changes no password, so it is neither a versioned
    /// change nor a `password_changed` event. A failure is logged; the old hash keeps working.
    async fn rehash(&self, user_id: &str, password: &str) {
        let result = async {
            let hash = hash_blocking(password.to_owned()).await?;
            let update = json!({"$set": {"passwordhash": hash}});
            self.store.update_one(USERS_COLLECTION, &Scope::system(), &json!({"_id": user_id}), &update, false).await?;
            Ok::<_, CoreError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, user_id, "could not rehash a password");
        }
    }

    /// Signs in with a token (the `validate_only`/refresh style): the token is verified and its user
    /// resolved afresh exactly as [`Platform::authenticate`] does, and a fresh short or long token is
    /// issued for the same user and impostor. Failures count against the source address.
    pub async fn signin_token(&self, token: &str, client: &ClientInfo, long: bool) -> Result<Session> {
        let source = client.address.as_deref();
        if self.throttle.is_throttled(None, source, &self.config) {
            if self.throttle.should_report(None, source, &self.config) {
                self.audit_login_failed(None, "throttled", client, None).await;
            }
            return Err(CoreError::Throttled("too many failed sign-in attempts; try again later".into()));
        }
        let (caller, user, _) = match self.resolve_token(token).await {
            Ok(resolved) => resolved,
            Err(e) => {
                if matches!(e, CoreError::Unauthenticated(_)) {
                    self.throttle.record_failure(None, source, &self.config);
                    self.audit_login_failed(None, &e.to_string(), client, None).await;
                }
                return Err(e);
            }
        };
        let (session, token) = self.session_for(&caller, &user, token_kind(long)).await?;
        self.audit_login_success(&caller, client, "token", token).await?;
        Ok(session)
    }

    /// `caller` starts acting as the user `target_id` (reference §3.5). The target is read with the
    /// caller's own read scope, and [`Caller::impersonate`] requires read **and** update on it (and a
    /// target that could sign in itself). The new short token records both users; success and refusal
    /// are audited. Impersonating one's own real user is a revert.
    pub async fn impersonate(&self, caller: &Caller, target_id: &str, client: &ClientInfo) -> Result<Session> {
        let real_id = caller.impostor().map(|i| i.user_id()).unwrap_or(caller.user_id());
        if target_id == real_id && caller.impostor().is_some() {
            return self.revert_impersonation(caller, client).await;
        }
        let graph = self.role_graph().await?;
        let target_doc = self
            .store
            .find_one(USERS_COLLECTION, &store_scope(caller, Rights::READ), &json!({"_id": target_id}), None)
            .await?;
        let outcome = match &target_doc {
            None => Err(CoreError::AccessDenied("cannot impersonate: no such user you may read".into())),
            Some(doc) => caller.impersonate(doc, &graph).map_err(CoreError::from),
        };
        let target_name = target_doc.as_ref().and_then(|d| str_field(d, "username")).map(str::to_owned);
        let mut entry = draft(AuditKind::Impersonate);
        entry.actor = actor_of(caller);
        entry.target = user_target(Some(target_id), target_name.as_deref());
        entry.client = client_of(client);
        entry.address = client.address.clone();
        let as_target = match outcome {
            Ok(as_target) => as_target,
            Err(e) => {
                entry.kind = AuditKind::ImpersonateFailed;
                entry.reason = Some(e.to_string());
                if let Err(audit_error) = self.audit(entry).await {
                    tracing::error!(error = %audit_error, "could not audit a refused impersonation");
                }
                return Err(e);
            }
        };
        let (session, token) = match &target_doc {
            Some(doc) => self.session_for(&as_target, doc, TokenKind::Short).await?,
            None => return Err(CoreError::Internal("impersonation target vanished".into())),
        };
        entry.details = json!({"token": token});
        self.audit(entry).await?;
        Ok(session)
    }

    /// Ends an impersonation: a fresh short token for the real user (looked up afresh and resolved like
    /// any sign-in). Audited.
    pub async fn revert_impersonation(&self, caller: &Caller, client: &ClientInfo) -> Result<Session> {
        let Some(impostor) = caller.impostor() else {
            return Err(CoreError::InvalidRequest("not impersonating".into()));
        };
        let graph = self.role_graph().await?;
        let gone = || CoreError::Unauthenticated("the impersonating user no longer exists".into());
        let user = self.load_user(impostor.user_id()).await?.ok_or_else(gone)?;
        let real = Caller::resolve(&user, &graph).map_err(|e| CoreError::Unauthenticated(e.to_string()))?;
        let (session, token) = self.session_for(&real, &user, TokenKind::Short).await?;
        let mut entry = draft(AuditKind::ImpersonateReverted);
        entry.details = json!({"token": token});
        entry.actor = actor_of(caller);
        entry.target = user_target(Some(caller.user_id()), Some(caller.username()));
        entry.client = client_of(client);
        entry.address = client.address.clone();
        self.audit(entry).await?;
        Ok(session)
    }
}
