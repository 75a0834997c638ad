//! Server configuration: defaults, then a TOML file, then `FLOWKEEP_*` environment variables, validated
//! once at start so a bad value stops the server with a message naming the key and the problem.

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Every configuration key, in one flat namespace (as OpenIAP Flow's configuration is): the TOML file
/// uses these names, and each can be overridden by `FLOWKEEP_<NAME>` (e.g. `FLOWKEEP_HTTP_ADDR`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the HTTP listener (`/health`, `/config`).
    pub http_addr: String,
    /// Folder for the database file and, later, the generated key file. Created when missing.
    pub data_dir: PathBuf,
    /// Log output: `human` or `json`.
    pub log_format: String,
    /// Log filter in `tracing` syntax (`info`, `flowkeep=debug,info`).
    pub log_level: String,
    /// Public domain name, reported by `/config`.
    pub domain: String,
    /// Deepest nesting accepted in a query, update or pipeline.
    pub max_query_depth: usize,
    /// Largest query, update or pipeline accepted, in JSON nodes.
    pub max_query_nodes: usize,
    /// Most stages in an aggregation pipeline, nested pipelines included.
    pub max_pipeline_stages: usize,
    /// Most documents one aggregation stage may hold in memory.
    pub max_stage_documents: usize,
    /// How often expired documents (TTL indexes, `expireAfterSeconds`) are removed, in seconds.
    pub ttl_sweep_seconds: u64,
    /// The master key (64 hex digits or base64 of 32 bytes). When empty, the key is read from — or, at
    /// first start, generated into — the owner-only file `flowkeep.key` beside the database.
    pub master_key: String,
    /// Password of the first admin (`flowkeep-admin`), used only when no admin exists yet. When empty, a
    /// random password is generated and printed once to the log.
    pub admin_password: String,
    /// OpenIAP Flow's `aes_secret`, to accept its tokens and read its encrypted fields while migrating.
    pub legacy_aes_secret: String,
    /// Lifetime of short tokens, in minutes.
    pub short_token_minutes: u64,
    /// Lifetime of long tokens, in days.
    pub long_token_days: u64,
    /// Deepest role nesting followed when resolving a caller's roles.
    pub max_role_depth: usize,
    /// Most entries in one access-control list.
    pub max_ace_count: usize,
    /// Collections that keep no history (comma-separated in the environment).
    pub history_skip_collections: Vec<String>,
    /// Address of the OpenIAP gRPC listener (`SetupStream`); clients pick gRPC for port 50051.
    pub grpc_addr: String,
    /// TLS certificate chain (PEM). With `tls_key_file`, both listeners serve TLS only.
    pub tls_cert_file: String,
    /// TLS private key (PEM) of `tls_cert_file`.
    pub tls_key_file: String,
    /// Serve TLS with a self-signed certificate for `localhost`/`127.0.0.1`, generated into
    /// `<data_dir>/dev-tls/` (for development only; clients must trust it explicitly).
    pub dev_tls: bool,
    /// Largest envelope accepted from a client, in MiB; larger ones get an `error` reply. The transports
    /// close a connection only for a frame over twice this size (the hard cap).
    pub max_message_mib: usize,
    /// Largest file one upload may stream, in MiB.
    pub max_upload_mib: usize,
    /// Interval of the server's `ping` to clients that asked for pings at sign-in, in seconds.
    pub heartbeat_seconds: u64,
    /// A connection with no message from its client for this long is closed, in seconds.
    pub idle_timeout_seconds: u64,
    /// A connection that has not signed in after this long is closed, in seconds.
    pub signin_timeout_seconds: u64,
    /// RabbitMQ to use for queues and exchanges (`amqp://user:password@host:5672/vhost`); empty: the
    /// in-process broker of the embedded default.
    pub amqp_url: String,
    /// Default lifetime of a queue message that gives none, in seconds.
    pub message_expiration_seconds: u64,
    /// How long a popped workitem stays leased to its consumer before it returns to its queue, in seconds.
    pub workitem_lease_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        let limits = flowkeep_query::Limits::default();
        Config {
            http_addr: "127.0.0.1:3000".into(),
            data_dir: PathBuf::from("data"),
            log_format: "human".into(),
            log_level: "info".into(),
            domain: "localhost".into(),
            max_query_depth: limits.max_depth,
            max_query_nodes: limits.max_nodes,
            max_pipeline_stages: limits.max_pipeline_stages,
            max_stage_documents: limits.max_stage_documents,
            ttl_sweep_seconds: 60,
            master_key: String::new(),
            admin_password: String::new(),
            legacy_aes_secret: String::new(),
            short_token_minutes: 15,
            long_token_days: 30,
            max_role_depth: 16,
            max_ace_count: 128,
            history_skip_collections: vec!["audit".into()],
            grpc_addr: "127.0.0.1:50051".into(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            dev_tls: false,
            max_message_mib: 16,
            max_upload_mib: 64,
            heartbeat_seconds: 10,
            idle_timeout_seconds: 60,
            signin_timeout_seconds: 120,
            amqp_url: String::new(),
            message_expiration_seconds: 60,
            workitem_lease_seconds: 300,
        }
    }
}

/// A configuration that could not be loaded or is invalid. The message names the key at fault.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read or has the wrong type.
    #[error("configuration: {0}")]
    Load(String),
    /// A value was read but is not acceptable.
    #[error("configuration key '{key}': {message}")]
    Invalid { key: &'static str, message: String },
}

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "FLOWKEEP_";

/// Keys whose values are secrets: never printed, always read as text.
pub const SECRET_KEYS: &[&str] = &["master_key", "admin_password", "legacy_aes_secret", "amqp_url"];

/// Keys whose values are lists.
const LIST_KEYS: &[&str] = &["history_skip_collections"];

/// Environment variables with the prefix that are not configuration keys (they steer tools and tests).
const ENV_NOT_KEYS: &[&str] = &["CONFIG"];

impl Config {
    /// Loads defaults, then `file` (if given), then the process environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!("config file {} does not exist", path.display())));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let known = Config::keys();
        let mut overrides = figment::value::Dict::new();
        for (name, raw) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else { continue };
            if ENV_NOT_KEYS.contains(&key) {
                continue;
            }
            let key = key.to_ascii_lowercase();
            if !known.contains(&key.as_str()) {
                // Unknown variables with our prefix also steer test tools; name them, but do not refuse.
                tracing::warn!(variable = %name, "ignoring environment variable: not a configuration key");
                continue;
            }
            let value: figment::value::Value = if LIST_KEYS.contains(&key.as_str()) {
                // Lists are comma-separated in the environment.
                let items: Vec<String> =
                    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
                figment::value::Value::from(items)
            } else if SECRET_KEYS.contains(&key.as_str()) {
                // Secrets are always text, even when they look like a number.
                figment::value::Value::from(raw)
            } else {
                // Values are read as TOML-like scalars (`5000` is a number, `true` a boolean), else strings.
                raw.parse().unwrap_or_else(|_| figment::value::Value::from(raw))
            };
            overrides.insert(key, value);
        }
        figment = figment.merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(|e| ConfigError::Load(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The names of all configuration keys.
    pub fn keys() -> Vec<&'static str> {
        vec![
            "http_addr",
            "data_dir",
            "log_format",
            "log_level",
            "domain",
            "max_query_depth",
            "max_query_nodes",
            "max_pipeline_stages",
            "max_stage_documents",
            "ttl_sweep_seconds",
            "master_key",
            "admin_password",
            "legacy_aes_secret",
            "short_token_minutes",
            "long_token_days",
            "max_role_depth",
            "max_ace_count",
            "history_skip_collections",
            "grpc_addr",
            "tls_cert_file",
            "tls_key_file",
            "dev_tls",
            "max_message_mib",
            "max_upload_mib",
            "heartbeat_seconds",
            "idle_timeout_seconds",
            "signin_timeout_seconds",
            "amqp_url",
            "message_expiration_seconds",
            "workitem_lease_seconds",
        ]
    }

    /// Checks every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.http_socket_addr()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        if !matches!(self.log_format.as_str(), "human" | "json") {
            return Err(invalid("log_format", format!("must be 'human' or 'json', not '{}'", self.log_format)));
        }
        if self.log_level.trim().is_empty() {
            return Err(invalid("log_level", "must not be empty"));
        }
        if self.domain.trim().is_empty() {
            return Err(invalid("domain", "must not be empty"));
        }
        range("max_query_depth", self.max_query_depth, 4, 10_000)?;
        range("max_query_nodes", self.max_query_nodes, 16, 100_000_000)?;
        range("max_pipeline_stages", self.max_pipeline_stages, 1, 100_000)?;
        range("max_stage_documents", self.max_stage_documents, 1, 1_000_000_000)?;
        range("ttl_sweep_seconds", self.ttl_sweep_seconds as usize, 1, 86_400)?;
        range("short_token_minutes", self.short_token_minutes as usize, 1, 24 * 60)?;
        range("long_token_days", self.long_token_days as usize, 1, 365)?;
        range("max_role_depth", self.max_role_depth, 1, 1_000)?;
        range("max_ace_count", self.max_ace_count, 1, 10_000)?;
        let grpc = self.grpc_socket_addr()?;
        if grpc.port() != 0 && Some(grpc) == self.http_socket_addr().ok() {
            return Err(invalid("grpc_addr", "must differ from http_addr"));
        }
        match (self.tls_cert_file.trim().is_empty(), self.tls_key_file.trim().is_empty()) {
            (true, false) => return Err(invalid("tls_cert_file", "must be set together with tls_key_file")),
            (false, true) => return Err(invalid("tls_key_file", "must be set together with tls_cert_file")),
            (false, false) if self.dev_tls => {
                return Err(invalid("dev_tls", "cannot be combined with tls_cert_file/tls_key_file"))
            }
            _ => {}
        }
        range("max_message_mib", self.max_message_mib, 16, 512)?;
        range("max_upload_mib", self.max_upload_mib, 1, 1_048_576)?;
        range("heartbeat_seconds", self.heartbeat_seconds as usize, 1, 3_600)?;
        range("idle_timeout_seconds", self.idle_timeout_seconds as usize, 5, 86_400)?;
        range("signin_timeout_seconds", self.signin_timeout_seconds as usize, 1, 86_400)?;
        range("message_expiration_seconds", self.message_expiration_seconds as usize, 1, 7 * 86_400)?;
        range("workitem_lease_seconds", self.workitem_lease_seconds as usize, 5, 7 * 86_400)?;
        let amqp = self.amqp_url.trim();
        if amqp.starts_with("amqps://") {
            return Err(invalid("amqp_url", "amqps:// (TLS to RabbitMQ) is not supported yet; use amqp://"));
        }
        if !(amqp.is_empty() || amqp.starts_with("amqp://")) {
            return Err(invalid("amqp_url", "must start with amqp:// (or be empty for the in-process broker)"));
        }
        if self.idle_timeout_seconds <= self.heartbeat_seconds {
            return Err(invalid(
                "idle_timeout_seconds",
                format!(
                    "{} must be longer than heartbeat_seconds ({}), or clients that answer pings time out",
                    self.idle_timeout_seconds, self.heartbeat_seconds
                ),
            ));
        }
        if !self.admin_password.is_empty() && self.admin_password.chars().count() < 12 {
            return Err(invalid("admin_password", "must be at least 12 characters (or empty for a random one)"));
        }
        // Secret values are checked (empty, short, well-known) when the keys are loaded at start.
        Ok(())
    }

    /// The HTTP listener address.
    pub fn http_socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http_addr.parse().map_err(|e| {
            invalid("http_addr", format!("'{}' is not an address like 127.0.0.1:3000 ({e})", self.http_addr))
        })
    }

    /// The gRPC listener address.
    pub fn grpc_socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.grpc_addr.parse().map_err(|e| {
            invalid("grpc_addr", format!("'{}' is not an address like 127.0.0.1:50051 ({e})", self.grpc_addr))
        })
    }

    /// Whether the listeners serve TLS (configured certificate files or the development certificate).
    pub fn tls_enabled(&self) -> bool {
        self.dev_tls || !self.tls_cert_file.trim().is_empty()
    }

    /// Largest envelope accepted from a client, in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_mib * MIB
    }

    /// The transports' hard cap on one frame: twice `max_message_bytes`. Envelopes between the two get
    /// an `error` reply from the protocol and the connection stays open; a frame over the cap closes it.
    pub fn hard_cap_bytes(&self) -> usize {
        self.max_message_bytes() * 2
    }

    /// The protocol's limits and timers from this configuration.
    pub fn protocol_config(&self) -> flowkeep_protocol::ProtocolConfig {
        use std::time::Duration;
        flowkeep_protocol::ProtocolConfig {
            max_message_bytes: self.max_message_bytes(),
            max_upload_bytes: self.max_upload_mib * MIB,
            heartbeat_interval: Duration::from_secs(self.heartbeat_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            signin_timeout: Duration::from_secs(self.signin_timeout_seconds),
            ..flowkeep_protocol::ProtocolConfig::default()
        }
    }

    /// The path of the embedded database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("flowkeep.db")
    }

    /// The path of the master key file used when `master_key` is not configured: beside the database,
    /// never inside it, so a copy of the database alone does not reveal encrypted fields or keys.
    pub fn master_key_path(&self) -> PathBuf {
        flowkeep_security::keys::key_file_beside(&self.database_path())
    }

    /// The core's settings from this configuration.
    pub fn platform_config(&self) -> flowkeep_core::PlatformConfig {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        flowkeep_core::PlatformConfig {
            short_token_ttl: std::time::Duration::from_secs(self.short_token_minutes * 60),
            long_token_ttl: std::time::Duration::from_secs(self.long_token_days * 24 * 3600),
            legacy_aes_secret: non_empty(&self.legacy_aes_secret),
            admin_password: non_empty(&self.admin_password),
            max_role_depth: self.max_role_depth,
            max_ace_count: self.max_ace_count,
            history_skip_collections: self.history_skip_collections.clone(),
            message_expiration: std::time::Duration::from_secs(self.message_expiration_seconds),
            workitem_lease: std::time::Duration::from_secs(self.workitem_lease_seconds),
            ..flowkeep_core::PlatformConfig::default()
        }
    }

    /// The query-language limits this configuration sets.
    pub fn query_limits(&self) -> flowkeep_query::Limits {
        flowkeep_query::Limits {
            max_depth: self.max_query_depth,
            max_nodes: self.max_query_nodes,
            max_pipeline_stages: self.max_pipeline_stages,
            max_stage_documents: self.max_stage_documents,
            ..flowkeep_query::Limits::default()
        }
    }
}

/// One mebibyte.
pub const MIB: usize = 1024 * 1024;

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

fn range(key: &'static str, value: usize, min: usize, max: usize) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(invalid(key, format!("{value} is outside the accepted range {min}..={max}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(Config::keys().len(), serde_json::to_value(&c).unwrap().as_object().unwrap().len());
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("flowkeep.toml");
        std::fs::write(&file, "http_addr = \"0.0.0.0:8080\"\nmax_query_depth = 50\ndomain = \"file.example\"\n")
            .unwrap();
        let c = Config::load_from(
            Some(&file),
            env(&[("FLOWKEEP_DOMAIN", "env.example"), ("FLOWKEEP_MAX_QUERY_NODES", "5000"), ("OTHER", "x")]),
        )
        .unwrap();
        assert_eq!(c.http_addr, "0.0.0.0:8080");
        assert_eq!(c.max_query_depth, 50);
        assert_eq!(c.domain, "env.example", "environment wins over the file");
        assert_eq!(c.max_query_nodes, 5000);
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = Config::load_from(None, env(&[("FLOWKEEP_HTTP_ADDR", "nonsense")])).unwrap_err().to_string();
        assert!(err.contains("http_addr"), "{err}");
        let err = Config::load_from(None, env(&[("FLOWKEEP_LOG_FORMAT", "xml")])).unwrap_err().to_string();
        assert!(err.contains("log_format") && err.contains("xml"), "{err}");
        let err = Config::load_from(None, env(&[("FLOWKEEP_MAX_QUERY_DEPTH", "1")])).unwrap_err().to_string();
        assert!(err.contains("max_query_depth"), "{err}");
        let err = Config::load_from(None, env(&[("FLOWKEEP_MAX_QUERY_DEPTH", "deep")])).unwrap_err().to_string();
        assert!(err.contains("max_query_depth"), "{err}");
    }

    #[test]
    fn transport_keys_are_validated() {
        let c = Config::load_from(
            None,
            env(&[
                ("FLOWKEEP_GRPC_ADDR", "0.0.0.0:50052"),
                ("FLOWKEEP_MAX_MESSAGE_MIB", "32"),
                ("FLOWKEEP_DEV_TLS", "true"),
                ("FLOWKEEP_IDLE_TIMEOUT_SECONDS", "90"),
            ]),
        )
        .unwrap();
        assert_eq!(c.grpc_addr, "0.0.0.0:50052");
        assert!(c.dev_tls && c.tls_enabled());
        assert_eq!(c.max_message_bytes(), 32 * MIB);
        assert_eq!(c.hard_cap_bytes(), 64 * MIB);
        let p = c.protocol_config();
        assert_eq!(p.max_message_bytes, 32 * MIB);
        assert_eq!(p.max_upload_bytes, 64 * MIB);
        assert_eq!(p.idle_timeout, std::time::Duration::from_secs(90));
        assert_eq!(p.heartbeat_interval, std::time::Duration::from_secs(10));
        assert_eq!(p.signin_timeout, std::time::Duration::from_secs(120));

        for (pairs, key) in [
            (vec![("FLOWKEEP_GRPC_ADDR", "nowhere")], "grpc_addr"),
            (vec![("FLOWKEEP_GRPC_ADDR", "127.0.0.1:3000")], "grpc_addr"),
            (vec![("FLOWKEEP_GRPC_ADDR", "127.0.0.1:0x")], "grpc_addr"),
            (vec![("FLOWKEEP_MAX_MESSAGE_MIB", "8")], "max_message_mib"),
            (vec![("FLOWKEEP_MAX_UPLOAD_MIB", "0")], "max_upload_mib"),
            (vec![("FLOWKEEP_TLS_CERT_FILE", "/tmp/cert.pem")], "tls_cert_file"),
            (vec![("FLOWKEEP_TLS_KEY_FILE", "/tmp/key.pem")], "tls_key_file"),
            (
                vec![
                    ("FLOWKEEP_TLS_CERT_FILE", "c.pem"),
                    ("FLOWKEEP_TLS_KEY_FILE", "k.pem"),
                    ("FLOWKEEP_DEV_TLS", "true"),
                ],
                "dev_tls",
            ),
            (vec![("FLOWKEEP_HEARTBEAT_SECONDS", "0")], "heartbeat_seconds"),
            (vec![("FLOWKEEP_IDLE_TIMEOUT_SECONDS", "10")], "idle_timeout_seconds"),
            (vec![("FLOWKEEP_SIGNIN_TIMEOUT_SECONDS", "0")], "signin_timeout_seconds"),
            (vec![("FLOWKEEP_DEV_TLS", "maybe")], "dev_tls"),
        ] {
            let err = Config::load_from(None, env(&pairs)).unwrap_err().to_string();
            assert!(err.contains(key), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn secrets_stay_text_and_lists_split_on_commas() {
        let c = Config::load_from(
            None,
            env(&[
                ("FLOWKEEP_ADMIN_PASSWORD", "123456789012345"),
                ("FLOWKEEP_HISTORY_SKIP_COLLECTIONS", "audit, logs,,metrics"),
            ]),
        )
        .unwrap();
        assert_eq!(c.admin_password, "123456789012345");
        assert_eq!(c.history_skip_collections, ["audit", "logs", "metrics"]);
        let err = Config::load_from(None, env(&[("FLOWKEEP_ADMIN_PASSWORD", "short")])).unwrap_err().to_string();
        assert!(err.contains("admin_password"), "{err}");
    }

    #[test]
    fn unknown_file_keys_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("flowkeep.toml");
        std::fs::write(&file, "htp_addr = \"0.0.0.0:8080\"\n").unwrap();
        let err = Config::load_from(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("htp_addr"), "{err}");
        let err = Config::load_from(Some(&dir.path().join("nope.toml")), env(&[])).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
