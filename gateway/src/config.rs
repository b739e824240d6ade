//! The one TOML configuration file, its defaults (from the product brief) and
//! its validation. A value of 0 turns a limit off.
//!
//! Unknown keys and bad values are refused with the key's name and the reason
//! (the binary exits 2); nothing is silently ignored.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// What the gateway does with client messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Echo every message back with its type and boundaries.
    Echo,
    /// Publish/subscribe through routers (the default; with no `[[router]]`
    /// an embedded router runs inside the gateway).
    Relay,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub limits: LimitsConfig,
    /// Routers for relay mode (`[[router]]` tables). Empty: an embedded
    /// router runs inside the gateway (the single-host default).
    pub router: Vec<RouterConfig>,
    /// JWT authentication at upgrade (`[auth]`).
    pub auth: crate::defense::auth::AuthConfig,
    /// `[tls]`: serve wss with this certificate and key; absent: plain ws.
    pub tls: Option<crate::defense::tls::TlsConfig>,
    /// `[admin]`: the metrics and health listener.
    pub admin: AdminConfig,
    /// `[log]`: format, level, sampling, rate limit (docs/OPERATIONS.md).
    pub log: ringgate_logging::LogConfig,
}

/// The admin HTTP listener (`/metrics`, `/healthz`, `/readyz`, `/status`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address to listen on; `"off"` (or `""`) runs no admin listener and
    /// skips the shards' metric snapshots.
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9090".into(),
        }
    }
}

impl AdminConfig {
    /// The address, or `None` when off.
    pub fn address(&self) -> Result<Option<SocketAddr>, String> {
        match self.listen.trim() {
            "" | "off" => Ok(None),
            text => text
                .parse()
                .map(Some)
                .map_err(|_| format!("{text:?} is not ADDRESS:PORT or \"off\"")),
        }
    }
}

/// One router a relay-mode gateway links to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// The router's node id (its `--id`); the shard map hashes over these.
    pub id: u32,
    /// Where it listens for gateways.
    pub address: SocketAddr,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address every shard's SO_REUSEPORT listener binds.
    pub listen: SocketAddr,
    /// Shard threads; 0 = one per available core.
    pub shards: usize,
    /// This gateway's id among gateways (below 2^24); routers see shard `i`
    /// as node `node_id * 256 + i`.
    pub node_id: u32,
    pub mode: Mode,
    /// Subprotocols offered, in preference order of the client's list.
    pub subprotocols: Vec<String>,
    /// Browser origins allowed to upgrade (cross-site WebSocket hijacking
    /// defense), e.g. `["https://chat.example.com"]`. Empty: any origin. A
    /// request without an Origin header (a non-browser client) is allowed.
    pub allowed_origins: Vec<String>,
    /// After SIGTERM/SIGINT, how long to wait for close handshakes.
    pub drain_timeout_ms: u64,
    /// Provided receive buffers per shard (power of two, <= 32768).
    pub recv_buffers: u16,
    /// Bytes per provided receive buffer.
    pub recv_buffer_bytes: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_frame_bytes: u64,
    pub max_text_message_bytes: usize,
    pub max_binary_message_bytes: usize,
    pub max_header_bytes: usize,
    pub handshake_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub ping_interval_ms: u64,
    pub max_connections: usize,
    pub max_write_queue_bytes: usize,
    pub frame_timeout_ms: u64,
    /// Relay mode: most publishes each shard holds per router while that
    /// router is down after having been up (0: hold none).
    pub degraded_buffer_messages: usize,
    /// `[limits.per_ip]`: per-address limits at accept.
    pub per_ip: PerIpConfig,
    /// `[limits.per_user]`: devices at upgrade, message rates (relay mode).
    pub per_user: PerUserConfig,
    /// `[limits.per_topic]`: message rate per topic (relay mode).
    pub per_topic: PerTopicConfig,
    /// `[limits.content]`: rules for client envelopes (relay mode).
    pub content: ContentConfig,
}

/// `[limits.content]`: what a client envelope may contain (0: no limit).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentConfig {
    pub max_topic_bytes: usize,
    pub max_id_bytes: usize,
    pub max_trace_bytes: usize,
    /// Refuse NUL and C0 control characters other than tab, CR and LF
    /// (raw or escaped) with `err bad_request`.
    pub refuse_control_characters: bool,
}

impl Default for ContentConfig {
    fn default() -> Self {
        let rules = crate::envelope::Rules::default();
        ContentConfig {
            max_topic_bytes: rules.max_topic_bytes,
            max_id_bytes: rules.max_id_bytes,
            max_trace_bytes: rules.max_trace_bytes,
            refuse_control_characters: rules.refuse_control_characters,
        }
    }
}

impl ContentConfig {
    pub fn rules(&self) -> crate::envelope::Rules {
        crate::envelope::Rules {
            max_topic_bytes: self.max_topic_bytes,
            max_id_bytes: self.max_id_bytes,
            max_trace_bytes: self.max_trace_bytes,
            refuse_control_characters: self.refuse_control_characters,
        }
    }
}

/// `[limits.per_user]` (brief defaults; 0 turns a limit off).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerUserConfig {
    /// Concurrent connections (devices) per user: the next is refused 429.
    pub max_connections: u32,
    /// `"refuse"` the new connection (429), or `"close_oldest"`: close the
    /// user's oldest connection on the accepting shard with 1008 and admit
    /// the new one (refused 429 if that shard holds none of the user's).
    pub on_device_limit: crate::defense::user_table::DeviceLimitPolicy,
    /// Token buckets; burst equals the value.
    pub messages_per_minute: u32,
    pub messages_per_hour: u32,
    /// Refusals in a minute after which the connection is closed 1008.
    pub abuse_refusals_per_minute: u32,
    /// The same payload more than this many times in the window is throttled.
    pub repeated_content_max: u32,
    pub repeated_content_window_s: u32,
    /// Slots in the shared table (power of two, 64 bytes each, fixed at
    /// start-up); about 4 per user holding state.
    pub table_slots: usize,
}

/// `[limits.per_topic]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerTopicConfig {
    pub messages_per_minute: u32,
    /// Slots in the shared table (power of two, 16 bytes each).
    pub table_slots: usize,
}

impl Default for PerUserConfig {
    fn default() -> Self {
        let limits = crate::defense::user_table::UserLimits::default();
        PerUserConfig {
            max_connections: limits.max_connections,
            on_device_limit: limits.on_device_limit,
            messages_per_minute: limits.messages_per_minute,
            messages_per_hour: limits.messages_per_hour,
            abuse_refusals_per_minute: limits.abuse_refusals_per_minute,
            repeated_content_max: limits.repeated_content_max,
            repeated_content_window_s: limits.repeated_content_window_s,
            table_slots: limits.slots,
        }
    }
}

impl PerUserConfig {
    pub fn limits(&self) -> crate::defense::user_table::UserLimits {
        crate::defense::user_table::UserLimits {
            max_connections: self.max_connections,
            on_device_limit: self.on_device_limit,
            messages_per_minute: self.messages_per_minute,
            messages_per_hour: self.messages_per_hour,
            abuse_refusals_per_minute: self.abuse_refusals_per_minute,
            repeated_content_max: self.repeated_content_max,
            repeated_content_window_s: self.repeated_content_window_s,
            slots: self.table_slots,
        }
    }
}

impl Default for PerTopicConfig {
    fn default() -> Self {
        let limits = crate::defense::user_table::TopicLimits::default();
        PerTopicConfig {
            messages_per_minute: limits.messages_per_minute,
            table_slots: limits.slots,
        }
    }
}

impl PerTopicConfig {
    pub fn limits(&self) -> crate::defense::user_table::TopicLimits {
        crate::defense::user_table::TopicLimits {
            messages_per_minute: self.messages_per_minute,
            slots: self.table_slots,
        }
    }
}

/// `[limits.per_ip]` (brief defaults; 0 turns a limit off).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerIpConfig {
    pub max_connections: u32,
    pub connects_per_minute: u32,
    pub failed_auths_per_minute: u32,
    pub ban_seconds: u32,
    /// CIDRs that bypass every per-IP limit (load balancers, test hosts).
    pub exempt: Vec<crate::defense::ip_table::Cidr>,
    /// Slots in the shared table (power of two); about 4 per address that
    /// holds state at once. 48 bytes each, allocated at start-up.
    pub table_slots: usize,
    /// Addresses are grouped by these prefix lengths.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl Default for PerIpConfig {
    fn default() -> Self {
        let limits = crate::defense::ip_table::IpLimits::default();
        PerIpConfig {
            max_connections: limits.max_connections,
            connects_per_minute: limits.connects_per_minute,
            failed_auths_per_minute: limits.failed_auths_per_minute,
            ban_seconds: limits.ban_seconds,
            exempt: Vec::new(),
            table_slots: limits.slots,
            ipv4_prefix: limits.v4_prefix,
            ipv6_prefix: limits.v6_prefix,
        }
    }
}

impl PerIpConfig {
    pub fn limits(&self) -> crate::defense::ip_table::IpLimits {
        crate::defense::ip_table::IpLimits {
            max_connections: self.max_connections,
            connects_per_minute: self.connects_per_minute,
            failed_auths_per_minute: self.failed_auths_per_minute,
            ban_seconds: self.ban_seconds,
            exempt: self.exempt.clone(),
            slots: self.table_slots,
            v4_prefix: self.ipv4_prefix,
            v6_prefix: self.ipv6_prefix,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shards: 0,
            node_id: 1,
            mode: Mode::Relay,
            subprotocols: Vec::new(),
            allowed_origins: Vec::new(),
            drain_timeout_ms: 10_000,
            recv_buffers: 2048,
            recv_buffer_bytes: 4096,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_frame_bytes: 1 << 20,
            max_text_message_bytes: 64 << 10,
            max_binary_message_bytes: 64 << 10,
            max_header_bytes: 8 << 10,
            handshake_timeout_ms: 5_000,
            idle_timeout_ms: 60_000,
            ping_interval_ms: 20_000,
            max_connections: 0,
            max_write_queue_bytes: 1 << 20,
            frame_timeout_ms: 10_000,
            degraded_buffer_messages: 10_000,
            per_ip: PerIpConfig::default(),
            per_user: PerUserConfig::default(),
            per_topic: PerTopicConfig::default(),
            content: ContentConfig::default(),
        }
    }
}

/// A refused configuration: which key, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: key `{key}`: {reason}")]
    Invalid {
        path: String,
        key: &'static str,
        reason: String,
    },
}

impl Config {
    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.clone(),
            source,
        })?;
        Config::parse(&text, &display)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: origin.to_string(),
            message: describe_toml_error(&error, text),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks relations between values that the types cannot express.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| ConfigError::Invalid {
            path: origin.to_string(),
            key,
            reason,
        };
        let gateway = &self.gateway;
        let limits = &self.limits;
        if let Err(reason) = self.admin.address() {
            return Err(invalid("admin.listen", reason));
        }
        if let Err(error) = crate::defense::auth::Authenticator::from_config(&self.auth) {
            return Err(invalid(error.key(), error.to_string()));
        }
        if let Some(tls) = &self.tls
            && let Err(error) = crate::defense::tls::TlsAcceptor::from_config(tls)
        {
            return Err(invalid(error.key(), error.to_string()));
        }
        if let Err(error) = self.log.validate() {
            return Err(invalid(error.key, error.reason));
        }
        if let Err(error) = limits.per_user.limits().validate() {
            return Err(ConfigError::Parse {
                path: origin.to_string(),
                message: error.to_string(),
            });
        }
        if let Err(error) = limits.per_topic.limits().validate() {
            return Err(ConfigError::Parse {
                path: origin.to_string(),
                message: error.to_string(),
            });
        }
        if let Err(error) = limits.per_ip.limits().validate() {
            // The message names the limits.per_ip key.
            return Err(ConfigError::Parse {
                path: origin.to_string(),
                message: error.to_string(),
            });
        }
        if gateway.node_id == 0 || gateway.node_id >= 1 << 24 {
            return Err(invalid(
                "gateway.node_id",
                format!("{} must be from 1 to 16777215", gateway.node_id),
            ));
        }
        if gateway.shards > 256 {
            return Err(invalid(
                "gateway.shards",
                format!("{} is more than 256", gateway.shards),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for router in &self.router {
            if !ids.insert(router.id) {
                return Err(invalid(
                    "router.id",
                    format!("router id {} appears twice", router.id),
                ));
            }
        }
        if self.router.len() > 64 {
            return Err(invalid(
                "router",
                format!("{} routers; at most 64", self.router.len()),
            ));
        }
        if gateway.shards > 1024 {
            return Err(invalid(
                "gateway.shards",
                format!("{} is more than 1024", gateway.shards),
            ));
        }
        if !gateway.recv_buffers.is_power_of_two() || gateway.recv_buffers > 32_768 {
            return Err(invalid(
                "gateway.recv_buffers",
                format!(
                    "{} must be a power of two from 1 to 32768",
                    gateway.recv_buffers
                ),
            ));
        }
        if !(512..=1 << 20).contains(&gateway.recv_buffer_bytes) {
            return Err(invalid(
                "gateway.recv_buffer_bytes",
                format!(
                    "{} must be between 512 and 1048576",
                    gateway.recv_buffer_bytes
                ),
            ));
        }
        for protocol in &gateway.subprotocols {
            if protocol.is_empty() || !protocol.bytes().all(is_http_token_byte) {
                return Err(invalid(
                    "gateway.subprotocols",
                    format!("{protocol:?} is not an HTTP token"),
                ));
            }
        }
        for origin in &gateway.allowed_origins {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/')
                && !origin[origin.find("://").map_or(0, |i| i + 3)..].contains('/');
            if !valid {
                return Err(invalid(
                    "gateway.allowed_origins",
                    format!("{origin:?} is not an origin (scheme://host[:port], no path)"),
                ));
            }
        }
        if limits.content.max_id_bytes > 255 {
            return Err(invalid(
                "limits.content.max_id_bytes",
                format!(
                    "{} is above 255 (ids travel with a one-byte length)",
                    limits.content.max_id_bytes
                ),
            ));
        }
        if limits.max_header_bytes != 0 && limits.max_header_bytes < 256 {
            return Err(invalid(
                "limits.max_header_bytes",
                format!(
                    "{} is too small for any upgrade request (min 256)",
                    limits.max_header_bytes
                ),
            ));
        }
        if limits.degraded_buffer_messages > 1_000_000 {
            return Err(invalid(
                "limits.degraded_buffer_messages",
                format!(
                    "{} is more than 1000000 publishes per router per shard",
                    limits.degraded_buffer_messages
                ),
            ));
        }
        if limits.max_write_queue_bytes != 0 && limits.max_write_queue_bytes < 256 {
            return Err(invalid(
                "limits.max_write_queue_bytes",
                format!(
                    "{} is too small to hold a close frame (min 256)",
                    limits.max_write_queue_bytes
                ),
            ));
        }
        let largest_message = limits
            .max_text_message_bytes
            .max(limits.max_binary_message_bytes);
        if limits.max_write_queue_bytes != 0
            && (largest_message == 0 || limits.max_write_queue_bytes < largest_message + 14)
        {
            return Err(invalid(
                "limits.max_write_queue_bytes",
                format!(
                    "{} cannot hold one message of the largest allowed size ({}) plus its \
                     frame header, so such messages could never be delivered",
                    limits.max_write_queue_bytes,
                    if largest_message == 0 {
                        "unlimited".to_string()
                    } else {
                        largest_message.to_string()
                    }
                ),
            ));
        }
        if limits.ping_interval_ms != 0
            && limits.idle_timeout_ms != 0
            && limits.ping_interval_ms >= limits.idle_timeout_ms
        {
            return Err(invalid(
                "limits.ping_interval_ms",
                format!(
                    "{} must be below limits.idle_timeout_ms ({}) so a live client can answer",
                    limits.ping_interval_ms, limits.idle_timeout_ms
                ),
            ));
        }
        Ok(())
    }
}

fn is_http_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// toml names an unknown key but not the key of a bad value, so find the
/// dotted key at the error's position and put it first.
fn describe_toml_error(error: &toml::de::Error, text: &str) -> String {
    let message = error.message().trim();
    let Some(span) = error.span() else {
        return message.to_string();
    };
    let before = &text[..span.start.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    let line_number = before.matches('\n').count() + 1;
    match line.split_once('=').map(|(key, _)| key.trim()) {
        Some(key) if !key.is_empty() && !message.contains(key) => {
            let key = match table {
                Some(table) => format!("{table}.{key}"),
                None => key.to_string(),
            };
            format!("key `{key}` (line {line_number}): {message}")
        }
        _ => format!("line {line_number}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_brief_defaults() {
        let config = Config::parse("", "test").unwrap();
        assert_eq!(config.gateway.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.limits.max_frame_bytes, 1_048_576);
        assert_eq!(config.limits.max_text_message_bytes, 65_536);
        assert_eq!(config.limits.handshake_timeout_ms, 5_000);
        assert_eq!(config.limits.idle_timeout_ms, 60_000);
        assert_eq!(config.limits.ping_interval_ms, 20_000);
        assert_eq!(config.limits.max_write_queue_bytes, 1_048_576);
        assert_eq!(config.limits.frame_timeout_ms, 10_000);
    }

    #[test]
    fn unknown_key_is_named() {
        let error = Config::parse("[limits]\nmax_frame_byte = 5\n", "test").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("max_frame_byte"), "{text}");
        assert!(text.contains("unknown field"), "{text}");
    }

    #[test]
    fn bad_value_is_named() {
        let error = Config::parse("[gateway]\nlisten = \"nowhere\"\n", "test").unwrap_err();
        assert!(error.to_string().contains("listen") || error.to_string().contains("address"));
        let error = Config::parse("[limits]\nidle_timeout_ms = -1\n", "test").unwrap_err();
        assert!(
            error.to_string().contains("key `limits.idle_timeout_ms`"),
            "{error}"
        );
    }

    #[test]
    fn relations_are_checked() {
        let error = Config::parse("[limits]\nping_interval_ms = 70000\n", "test")
            .unwrap_err()
            .to_string();
        assert!(error.contains("limits.ping_interval_ms"), "{error}");
        let error = Config::parse("[gateway]\nrecv_buffers = 1000\n", "test").unwrap_err();
        assert!(error.to_string().contains("gateway.recv_buffers"));
        let error = Config::parse("[limits]\nmax_binary_message_bytes = 2000000\n", "test");
        assert!(
            error
                .unwrap_err()
                .to_string()
                .contains("limits.max_write_queue_bytes")
        );
        let error = Config::parse("[gateway]\nsubprotocols = [\"a b\"]\n", "test").unwrap_err();
        assert!(error.to_string().contains("gateway.subprotocols"));
        let error = Config::parse("[limits]\ndegraded_buffer_messages = 2000000\n", "test");
        let error = error.unwrap_err().to_string();
        assert!(error.contains("limits.degraded_buffer_messages"), "{error}");
    }

    #[test]
    fn routers_are_listed_with_unique_ids() {
        let text = "[gateway]\nmode = \"relay\"\n[[router]]\nid = 1\naddress = \"127.0.0.1:7100\"\n\
                    [[router]]\nid = 2\naddress = \"127.0.0.1:7101\"\n";
        let config = Config::parse(text, "t").unwrap();
        assert_eq!(config.router.len(), 2);
        let error = Config::parse(&text.replace("id = 2", "id = 1"), "t").unwrap_err();
        assert!(error.to_string().contains("router.id"), "{error}");
        let error = Config::parse("[gateway]\nnode_id = 0\n", "t").unwrap_err();
        assert!(error.to_string().contains("gateway.node_id"), "{error}");
    }

    #[test]
    fn log_section_is_read_and_checked() {
        let config = Config::parse(
            "[log]\nformat = \"pretty\"\nlevel = \"warn\"\nsample_rate = 0\n",
            "t",
        )
        .unwrap();
        assert_eq!(config.log.format, ringgate_logging::Format::Pretty);
        assert_eq!(config.log.sample_rate, 0.0);
        let error = Config::parse("[log]\nsample_rate = 2.0\n", "t").unwrap_err();
        assert!(error.to_string().contains("log.sample_rate"), "{error}");
        let error = Config::parse("[log]\nformat = \"xml\"\n", "t").unwrap_err();
        assert!(error.to_string().contains("format"), "{error}");
        let error = Config::parse("[log]\nlevel = \"loud\"\n", "t").unwrap_err();
        assert!(error.to_string().contains("log.level"), "{error}");
    }

    #[test]
    fn zero_turns_limits_off() {
        let config = Config::parse("[limits]\nidle_timeout_ms = 0\nping_interval_ms = 0\n", "t");
        assert!(config.is_ok());
    }
}
