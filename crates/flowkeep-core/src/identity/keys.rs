//! The token signing keys at rest in `flowkeep.keys`, their rotation, the JWKS document, and the
//! rate-limited reload when another process rotated them.

use super::*;

/// How long retired signing keys stay for verification: the long token lifetime plus a day of margin,
/// so a long token issued just before a rotation still verifies until it expires.
fn key_retention(config: &PlatformConfig) -> Duration {
    config.long_token_ttl.saturating_add(Duration::from_secs(24 * 3600))
}

/// Persists ring changes to `flowkeep.keys` (system scope): saves first, then deletes, as
/// [`KeyRingChanges::apply`] does, so a new active key is durable before anything depends on it.
async fn save_key_changes(store: &dyn Store, changes: &KeyRingChanges) -> Result<()> {
    for record in &changes.save {
        let mut doc = serde_json::to_value(record).map_err(internal)?;
        if let Value::Object(map) = &mut doc {
            map.insert("_id".into(), Value::String(record.kid.clone()));
        }
        store.replace_one(KEYS_COLLECTION, &Scope::system(), &json!({"_id": record.kid}), doc, true).await?;
    }
    for kid in &changes.delete {
        store.delete_one(KEYS_COLLECTION, &Scope::system(), &json!({"_id": kid})).await?;
    }
    Ok(())
}

/// Loads the token signing keys from the store (creating the first at first start) and builds the
/// token service. A record that does not decrypt (another master key) stops the start: generating a
/// fresh key would silently invalidate every issued token.
pub(crate) async fn init_token_service(
    store: &dyn Store,
    config: &PlatformConfig,
    wrap: &PurposeKey,
) -> Result<TokenService> {
    let docs = store.find(KEYS_COLLECTION, &Scope::system(), &json!({}), &FindOptions::default()).await?;
    let records = docs
        .into_iter()
        .map(serde_json::from_value::<StoredSigningKey>)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| CoreError::Internal(format!("unreadable signing key record: {e}")))?;
    let (ring, changes) =
        SigningKeyRing::from_records(&records, wrap, key_retention(config), now_secs()).map_err(internal)?;
    save_key_changes(store, &changes).await?;
    let token_config = TokenConfig {
        issuer: config.token_issuer.clone(),
        short_ttl: config.short_token_ttl,
        long_ttl: config.long_token_ttl,
        legacy_aes_secret: config.legacy_aes_secret.clone(),
        ..TokenConfig::default()
    };
    TokenService::new(token_config, ring).map_err(internal)
}

/// How often, at most, a token with an unknown `kid` makes this process reload the signing keys.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Rate limit of signing-key reloads: another process on the same store may have rotated the key, so
/// an unknown `kid` triggers a reload — but forged tokens with random kids must not turn into a store
/// read and a key decryption each.
#[derive(Default)]
pub struct KeyReloadGate {
    last: Mutex<Option<std::time::Instant>>,
}

impl KeyReloadGate {
    /// Whether a reload may happen now (and, if so, records it).
    pub(super) fn allow(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < KEY_RELOAD_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

impl Platform {
    /// The JWKS document of every live signing key (active and retired, not yet pruned).
    pub async fn jwks(&self) -> Value {
        self.tokens.read().await.jwks()
    }

    /// Reloads the signing keys from the store (another process may have rotated them).
    pub(super) async fn reload_signing_keys(&self) -> Result<()> {
        let service = init_token_service(self.store.as_ref(), &self.config, &self.token_wrap).await?;
        *self.tokens.write().await = service;
        Ok(())
    }

    /// Generates a new active signing key, retires the current one (it keeps verifying until pruned)
    /// and prunes keys retired longer ago than the retention; persists and audits it. Returns the new
    /// key id. Other processes on the same store load the new key when they first see a token signed
    /// with it (at most one reload per 10 s).
    pub async fn rotate_signing_key(&self) -> Result<String> {
        let now = now_secs();
        let kid = {
            let mut tokens = self.tokens.write().await;
            let mut changes = tokens.ring_mut().rotate(&self.token_wrap, now).map_err(internal)?;
            changes.delete.extend(tokens.ring_mut().prune(now).delete);
            // Persisted under the write lock: no token is signed with the new key before it is durable.
            save_key_changes(self.store.as_ref(), &changes).await?;
            tokens.ring().active_kid().to_owned()
        };
        let mut entry = draft(AuditKind::KeyRotated);
        entry.details = json!({"kid": kid});
        self.audit(entry).await?;
        Ok(kid)
    }
}
