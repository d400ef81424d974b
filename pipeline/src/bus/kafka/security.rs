//! Security settings (SASL, TLS) passed through to librdkafka, from the
//! deployment's configuration, never from the repository:
//!
//! - `CLEARING_KAFKA_CONFIG=FILE`: a properties file, `key=value` per line,
//!   `#` comments (librdkafka names: `security.protocol`, `sasl.mechanisms`,
//!   `sasl.username`, `ssl.ca.location`, …);
//! - `CLEARING_KAFKA_CONF_<NAME>=value`: one property each, the name upper
//!   case with `_` for `.` (`CLEARING_KAFKA_CONF_SASL_PASSWORD` is
//!   `sasl.password`); these override the file, so a secret can come from the
//!   secret store's environment while the file holds the rest.
//!
//! Only security properties are accepted: everything that decides delivery,
//! ordering or offsets (acks, idempotence, commits, groups) stays as the
//! backend sets it, so a configuration file cannot weaken the guarantees.
//! Values never appear in an error, a log line or `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use rdkafka::config::ClientConfig;

pub const CONFIG_ENV: &str = "CLEARING_KAFKA_CONFIG";
pub const PROPERTY_ENV_PREFIX: &str = "CLEARING_KAFKA_CONF_";

/// Properties accepted: exact names, and prefixes.
const ALLOWED: &[&str] = &[
    "security.protocol",
    "enable.ssl.certificate.verification",
    "ssl.endpoint.identification.algorithm",
];
const ALLOWED_PREFIXES: &[&str] = &["sasl.", "ssl.", "ssl_engine."];

/// Properties to set on every client. `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecurityProperties(BTreeMap<String, String>);

impl fmt::Debug for SecurityProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

fn allowed(key: &str) -> bool {
    ALLOWED.contains(&key) || ALLOWED_PREFIXES.iter().any(|p| key.starts_with(p))
}

fn check_key(key: &str, origin: &dyn fmt::Display) -> Result<(), String> {
    let shaped = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_'));
    if !shaped {
        return Err(format!("{origin}: not a librdkafka property name"));
    }
    if !allowed(key) {
        return Err(format!(
            "{origin}: {key} is not a security setting (security.protocol, sasl.*, ssl.*); \
             clearing sets the other client properties itself"
        ));
    }
    Ok(())
}

impl SecurityProperties {
    /// Parses a properties file's text; `origin` names it in errors.
    pub fn parse_file(text: &str, origin: &str) -> Result<SecurityProperties, String> {
        let mut map = BTreeMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let here = format!("{origin}: line {}", index + 1);
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("{here}: expected key=value"));
            };
            let key = key.trim();
            check_key(key, &here)?;
            map.insert(key.to_string(), value.trim().to_string());
        }
        Ok(SecurityProperties(map))
    }

    /// Adds the `CLEARING_KAFKA_CONF_*` variables of `vars` (overriding).
    pub fn with_env(
        mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<SecurityProperties, String> {
        for (name, value) in vars {
            let Some(suffix) = name.strip_prefix(PROPERTY_ENV_PREFIX) else {
                continue;
            };
            let key = suffix.to_ascii_lowercase().replace('_', ".");
            check_key(&key, &name)?;
            self.0.insert(key, value);
        }
        Ok(self)
    }

    /// From this process's environment (and the file it names).
    pub fn from_env() -> Result<SecurityProperties, String> {
        let file = match std::env::var_os(CONFIG_ENV) {
            None => SecurityProperties::default(),
            Some(path) => {
                let path = std::path::PathBuf::from(path);
                let origin = format!("{CONFIG_ENV}={}", path.display());
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{origin}: {e}"))?;
                warn_if_readable_by_others(&path, &origin);
                SecurityProperties::parse_file(&text, &origin)?
            }
        };
        file.with_env(std::env::vars())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Why the connection can be read on the network, if it can: no TLS
    /// (librdkafka's default `PLAINTEXT`, or `SASL_PLAINTEXT`, which
    /// authenticates but sends every record in clear), or TLS whose
    /// certificate is not verified (anyone in the path can pose as the
    /// broker). `None` for `SSL` or `SASL_SSL` with verification on.
    pub fn in_clear(&self) -> Option<String> {
        let protocol = self
            .0
            .get("security.protocol")
            .map_or("plaintext".to_string(), |p| p.trim().to_ascii_lowercase());
        if !matches!(protocol.as_str(), "ssl" | "sasl_ssl") {
            return Some(format!(
                "security.protocol is {}",
                protocol.to_ascii_uppercase()
            ));
        }
        let verification = self
            .0
            .get("enable.ssl.certificate.verification")
            .map(|v| v.trim().to_ascii_lowercase());
        if matches!(verification.as_deref(), Some("false" | "0" | "no" | "off")) {
            return Some("enable.ssl.certificate.verification is off".to_string());
        }
        None
    }

    /// Sets every property on a client's configuration.
    pub fn apply(&self, config: &mut ClientConfig) {
        for (key, value) in &self.0 {
            config.set(key, value);
        }
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &std::path::Path, origin: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!("clearing: warning: {origin} is readable by other users (chmod 600 it)");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &std::path::Path, _: &str) {}

/// This process's properties, read once. The error is the configuration's
/// (reported by `KafkaBus::connect` before any client is made).
pub fn process_properties() -> Result<&'static SecurityProperties, String> {
    static PROPERTIES: OnceLock<Result<SecurityProperties, String>> = OnceLock::new();
    PROPERTIES
        .get_or_init(SecurityProperties::from_env)
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::consumer::BaseConsumer;

    const SECRET: &str = "s3cr3t-Pa55word";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_file_and_the_environment_pass_sasl_and_tls_through() {
        let file = "# broker security\nsecurity.protocol = SASL_PLAINTEXT\n\
                    sasl.mechanisms=PLAIN\nsasl.username=clearing\nsasl.password=placeholder\n";
        let props = SecurityProperties::parse_file(file, "test")
            .unwrap()
            .with_env(env(&[
                ("CLEARING_KAFKA_CONF_SASL_PASSWORD", SECRET),
                ("CLEARING_KAFKA_CONF_SSL_CA_LOCATION", "/etc/ssl/ca.pem"),
                ("CLEARING_KAFKA_DEBUG", "all"),
                ("HOME", "/root"),
            ]))
            .unwrap();
        let mut config = ClientConfig::new();
        props.apply(&mut config);
        assert_eq!(config.get("security.protocol"), Some("SASL_PLAINTEXT"));
        assert_eq!(config.get("sasl.mechanisms"), Some("PLAIN"));
        assert_eq!(config.get("sasl.username"), Some("clearing"));
        assert_eq!(
            config.get("sasl.password"),
            Some(SECRET),
            "the environment overrides the file"
        );
        assert_eq!(config.get("ssl.ca.location"), Some("/etc/ssl/ca.pem"));
        assert_eq!(
            config.get("debug"),
            None,
            "other variables are not properties"
        );
    }

    fn client(pairs: &[(&str, &str)]) -> Result<BaseConsumer, rdkafka::error::KafkaError> {
        let props = SecurityProperties::default().with_env(env(pairs)).unwrap();
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", "127.0.0.1:1");
        props.apply(&mut config);
        config.create()
    }

    #[test]
    fn librdkafka_sees_the_properties() {
        // A client is made with SASL settings (no broker needed)...
        let sasl = [
            ("CLEARING_KAFKA_CONF_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("CLEARING_KAFKA_CONF_SASL_MECHANISMS", "PLAIN"),
            ("CLEARING_KAFKA_CONF_SASL_USERNAME", "clearing"),
            ("CLEARING_KAFKA_CONF_SASL_PASSWORD", SECRET),
        ];
        assert!(client(&sasl).is_ok(), "{:?}", client(&sasl).err());
        // TLS and SCRAM: librdkafka is built with OpenSSL.
        let tls = [
            ("CLEARING_KAFKA_CONF_SECURITY_PROTOCOL", "SASL_SSL"),
            ("CLEARING_KAFKA_CONF_SASL_MECHANISMS", "SCRAM-SHA-512"),
            ("CLEARING_KAFKA_CONF_SASL_USERNAME", "clearing"),
            ("CLEARING_KAFKA_CONF_SASL_PASSWORD", SECRET),
            (
                "CLEARING_KAFKA_CONF_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM",
                "https",
            ),
        ];
        assert!(client(&tls).is_ok(), "{:?}", client(&tls).err());
        // ...and an invalid mechanism is refused by librdkafka, proving the
        // property reaches it rather than being dropped on the way.
        assert!(
            client(&[
                ("CLEARING_KAFKA_CONF_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
                ("CLEARING_KAFKA_CONF_SASL_MECHANISMS", "NOT-A-MECHANISM"),
            ])
            .is_err()
        );
    }

    #[test]
    fn only_verified_tls_is_not_in_clear() {
        let of = |pairs: &[(&str, &str)]| {
            SecurityProperties::default()
                .with_env(env(pairs))
                .unwrap()
                .in_clear()
        };
        const PROTOCOL: &str = "CLEARING_KAFKA_CONF_SECURITY_PROTOCOL";
        assert_eq!(of(&[]).as_deref(), Some("security.protocol is PLAINTEXT"));
        assert_eq!(
            of(&[(PROTOCOL, "sasl_plaintext")]).as_deref(),
            Some("security.protocol is SASL_PLAINTEXT")
        );
        assert_eq!(of(&[(PROTOCOL, "SSL")]), None);
        assert_eq!(of(&[(PROTOCOL, "SASL_SSL")]), None);
        assert_eq!(
            of(&[
                (PROTOCOL, "SASL_SSL"),
                (
                    "CLEARING_KAFKA_CONF_ENABLE_SSL_CERTIFICATE_VERIFICATION",
                    "false"
                ),
            ])
            .as_deref(),
            Some("enable.ssl.certificate.verification is off")
        );
    }

    #[test]
    fn delivery_settings_cannot_be_changed() {
        for key in [
            "acks",
            "enable.idempotence",
            "enable.auto.commit",
            "group.id",
            "bootstrap.servers",
            "isolation.level",
            "auto.offset.reset",
        ] {
            let err = SecurityProperties::parse_file(&format!("{key}=x\n"), "f").unwrap_err();
            assert!(err.contains("not a security setting"), "{key}: {err}");
        }
        assert!(
            SecurityProperties::default()
                .with_env(env(&[("CLEARING_KAFKA_CONF_ACKS", "0")]))
                .is_err()
        );
    }

    #[test]
    fn errors_and_debug_never_show_a_value() {
        let err =
            SecurityProperties::parse_file(&format!("sasl.password {SECRET}\n"), "f").unwrap_err();
        assert!(err.contains("line 1") && !err.contains(SECRET), "{err}");
        let err =
            SecurityProperties::parse_file(&format!("Sasl Password={SECRET}\n"), "f").unwrap_err();
        assert!(!err.contains(SECRET), "{err}");
        let props =
            SecurityProperties::parse_file(&format!("sasl.password={SECRET}\n"), "f").unwrap();
        let debug = format!("{props:?}");
        assert!(
            debug.contains("sasl.password") && !debug.contains(SECRET),
            "{debug}"
        );
    }
}
