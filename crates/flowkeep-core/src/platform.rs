//! [`Platform`]: the running core. It owns the store handle, the security state (token key ring, field
//! keys, audit writer, role cache) and the change feed, and is shared by every transport.

use crate::audit_log::AuditWriter;
use crate::changes::{ChangeEvent, CHANGE_FEED_CAPACITY};
use crate::error::{CoreError, Result};
use crate::identity::{KeyReloadGate, LoginThrottle, RoleCache};
use crate::workitems::{WorkitemReady, WORKITEM_READY_CAPACITY};
use flowkeep_broker::{Broker, InProcessBroker, InProcessConfig};
use flowkeep_security::policy::QueuePermissions;
use flowkeep_security::{AuditKey, FieldCrypter, FieldKey, MasterKey, Purpose, PurposeKey, TokenService};
use flowkeep_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, RwLock};

/// Default of [`PlatformConfig::max_file_bytes`]: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// Default of [`PlatformConfig::workitem_lease`]: 5 minutes.
pub const DEFAULT_WORKITEM_LEASE: Duration = Duration::from_secs(5 * 60);

/// Settings of the core (the server maps its configuration onto this). `Debug` redacts the secrets.
#[derive(Clone)]
pub struct PlatformConfig {
    /// `iss` of issued tokens.
    pub token_issuer: String,
    /// Lifetime of short tokens.
    pub short_token_ttl: Duration,
    /// Lifetime of long tokens.
    pub long_token_ttl: Duration,
    /// OpenIAP Flow's `aes_secret`, to read its tokens and encrypted fields while migrating.
    pub legacy_aes_secret: Option<String>,
    /// Password of the first admin ([`crate::identity::FIRST_ADMIN_USERNAME`]), used only when no admin
    /// user exists yet; when `None`, a random password is generated and printed once to the log.
    /// [`Platform::open`] forgets it once bootstrap is done.
    pub admin_password: Option<String>,
    /// Deepest role nesting followed when resolving a caller's roles.
    pub max_role_depth: usize,
    /// Most entries in one ACL.
    pub max_ace_count: usize,
    /// Collections that keep no history.
    pub history_skip_collections: Vec<String>,
    /// Failed logins allowed per account within `login_window` before throttling.
    pub login_failures_per_account: u32,
    /// Failed logins allowed per source address within `login_window` before throttling.
    pub login_failures_per_source: u32,
    /// The window over which failed logins are counted.
    pub login_window: Duration,
    /// The largest file an upload may store, in bytes; bigger uploads are refused.
    pub max_file_bytes: usize,
    /// How long a popped workitem stays leased to its consumer (the visibility timeout): once the lease
    /// runs out, [`Platform::expire_workitem_leases`] puts the item back as a retry.
    pub workitem_lease: Duration,
    /// The time to live of a queue message sent without one (reference `amqp_default_expiration`).
    pub message_expiration: Duration,
    /// How many deliveries a queue consumer may hold unacknowledged (reference `amqp_prefetch`).
    pub queue_prefetch: u16,
    /// Which rights queues and exchanges need (reference `amqp_force_sender_has_invoke`,
    /// `amqp_force_consumer_has_update`).
    pub queue_permissions: QueuePermissions,
}

impl std::fmt::Debug for PlatformConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("PlatformConfig")
            .field("token_issuer", &self.token_issuer)
            .field("short_token_ttl", &self.short_token_ttl)
            .field("long_token_ttl", &self.long_token_ttl)
            .field("legacy_aes_secret", &redacted(&self.legacy_aes_secret))
            .field("admin_password", &redacted(&self.admin_password))
            .field("max_role_depth", &self.max_role_depth)
            .field("max_ace_count", &self.max_ace_count)
            .field("history_skip_collections", &self.history_skip_collections)
            .field("login_failures_per_account", &self.login_failures_per_account)
            .field("login_failures_per_source", &self.login_failures_per_source)
            .field("login_window", &self.login_window)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("workitem_lease", &self.workitem_lease)
            .field("message_expiration", &self.message_expiration)
            .field("queue_prefetch", &self.queue_prefetch)
            .field("queue_permissions", &self.queue_permissions)
            .finish()
    }
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            token_issuer: "flowkeep".into(),
            short_token_ttl: Duration::from_secs(15 * 60),
            long_token_ttl: Duration::from_secs(30 * 24 * 3600),
            legacy_aes_secret: None,
            admin_password: None,
            max_role_depth: 16,
            max_ace_count: 128,
            history_skip_collections: vec!["audit".into()],
            login_failures_per_account: 10,
            login_failures_per_source: 50,
            login_window: Duration::from_secs(15 * 60),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            workitem_lease: DEFAULT_WORKITEM_LEASE,
            message_expiration: crate::messaging::DEFAULT_MESSAGE_EXPIRATION,
            queue_prefetch: crate::messaging::DEFAULT_QUEUE_PREFETCH,
            queue_permissions: QueuePermissions::default(),
        }
    }
}

/// The running core.
pub struct Platform {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: PlatformConfig,
    pub(crate) tokens: RwLock<TokenService>,
    pub(crate) fields: FieldCrypter,
    pub(crate) audit: AuditWriter,
    pub(crate) roles: RoleCache,
    pub(crate) throttle: LoginThrottle,
    /// The key that encrypts token signing keys at rest, kept for rotation.
    pub(crate) token_wrap: PurposeKey,
    /// Limits how often an unknown `kid` reloads the signing keys from the store.
    pub(crate) key_reload: KeyReloadGate,
    /// The change feed behind `watch` (see [`crate::changes`]).
    pub(crate) changes: broadcast::Sender<Arc<ChangeEvent>>,
    /// Workitem queues that have ready items, for the broker (see [`crate::workitems`]).
    pub(crate) workitem_ready: broadcast::Sender<WorkitemReady>,
    /// The message broker of queues and exchanges (see [`crate::messaging`]).
    pub(crate) broker: Arc<dyn Broker>,
}

impl Platform {
    /// Opens the core over `store`: derives one key per purpose from `master`, loads (or creates, at first
    /// start) the token signing keys, and bootstraps the well-known roles and users and the first admin.
    /// Queues and exchanges run on an in-process broker ([`Platform::open_with_broker`] takes another).
    pub async fn open(store: Arc<dyn Store>, config: PlatformConfig, master: &MasterKey) -> Result<Platform> {
        let broker = InProcessBroker::new(InProcessConfig::default())
            .map_err(|e| CoreError::Internal(format!("in-process broker: {e}")))?;
        Platform::open_with_broker(store, config, master, Arc::new(broker)).await
    }

    /// [`Platform::open`] with queues and exchanges on `broker` (e.g. RabbitMQ). Starts the task that
    /// answers undeliverable messages with `timeout` replies (see [`crate::messaging`]).
    pub async fn open_with_broker(
        store: Arc<dyn Store>,
        config: PlatformConfig,
        master: &MasterKey,
        broker: Arc<dyn Broker>,
    ) -> Result<Platform> {
        let key_error = |e: flowkeep_security::KeyError| CoreError::Internal(e.to_string());
        let wrap = master.derive(Purpose::TokenKeyWrap).map_err(key_error)?;
        let tokens = crate::identity::init_token_service(store.as_ref(), &config, &wrap).await?;
        let field_key = master.derive(Purpose::FieldEncryption).map_err(key_error)?;
        let fields = FieldCrypter::new(
            FieldKey::new("f1", *field_key.expose_secret()).map_err(|e| CoreError::Internal(e.to_string()))?,
        );
        let audit_key = master.derive(Purpose::AuditChain).map_err(key_error)?;
        let audit = AuditWriter::new(AuditKey::new(*audit_key.expose_secret()));
        let mut platform = Platform {
            store,
            config,
            tokens: RwLock::new(tokens),
            fields,
            audit,
            roles: RoleCache::default(),
            throttle: LoginThrottle::default(),
            token_wrap: wrap,
            key_reload: KeyReloadGate::default(),
            // The receiver is dropped: subscribers come and go through `subscribe_changes`.
            changes: broadcast::channel(CHANGE_FEED_CAPACITY).0,
            workitem_ready: broadcast::channel(WORKITEM_READY_CAPACITY).0,
            broker,
        };
        crate::identity::bootstrap(&platform).await?;
        crate::workitems::ensure_item_indexes(platform.store.as_ref()).await?;
        // Needed only by bootstrap: not kept where `config()` would hand it out.
        platform.config.admin_password = None;
        crate::messaging::spawn_timeout_replies(&platform.broker, platform.config.message_expiration);
        Ok(platform)
    }

    /// The store this core runs on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The settings this core runs with.
    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }
}
