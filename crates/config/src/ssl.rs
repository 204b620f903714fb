//! The client port's TLS settings, as ZooKeeper reads them: `ssl.*` system properties
//! (or the same keys in zoo.cfg, which ZooKeeper turns into `zookeeper.ssl.*` properties),
//! `client.portUnification`, and the x509 provider's `X509AuthenticationProvider.superUser`.
//! Nothing here opens a file: the server loads the stores and reports their problems
//! against the settings named here.

use std::path::PathBuf;

use crate::error::{ConfigError, Location, Warning};
use crate::value::Setting;

/// `ssl.clientAuth`: whether a client must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for.
    None,
    /// Asked for; a client without one is served.
    Want,
    /// Required: the handshake fails without one (ZooKeeper's default).
    Need,
}

/// A key or trust store as `ssl.keyStore.*` / `ssl.trustStore.*` name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub location: PathBuf,
    pub password: Option<String>,
    /// `ssl.*.type`, upper-cased: JKS, PKCS12, PEM (None: from the file name, as ZooKeeper).
    pub kind: Option<String>,
    /// Where the setting came from and its key, for errors about the file.
    pub key: String,
    pub location_of: Location,
}

/// The client port's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslConfig {
    pub key_store: Option<Store>,
    pub trust_store: Option<Store>,
    pub client_auth: ClientAuth,
    /// `ssl.protocol`.
    pub protocol: Option<String>,
    /// `ssl.enabledProtocols`, as listed.
    pub enabled_protocols: Vec<String>,
    /// `ssl.ciphersuites`, as listed (Java's names).
    pub cipher_suites: Vec<String>,
    /// `ssl.authProvider`: the scheme whose provider names a client by its certificate.
    pub auth_provider: String,
    /// `X509AuthenticationProvider.superUser`: the certificate subject that is super.
    pub x509_super_user: Option<String>,
    /// `ssl.handshakeDetectionTimeoutMillis`.
    pub handshake_timeout_ms: u64,
    /// `client.portUnification`: TLS and plaintext clients on the plaintext client port.
    pub port_unification: bool,
    /// `ssl.quorum.hostnameVerification`: a member checks that the certificate of the member
    /// it dials names that member's address.
    pub hostname_verification: bool,
}

impl Default for SslConfig {
    fn default() -> SslConfig {
        SslConfig {
            key_store: None,
            trust_store: None,
            client_auth: ClientAuth::Need,
            protocol: None,
            enabled_protocols: Vec::new(),
            cipher_suites: Vec::new(),
            auth_provider: String::from("x509"),
            x509_super_user: None,
            handshake_timeout_ms: 5_000,
            port_unification: false,
            hostname_verification: true,
        }
    }
}

fn list(s: &Setting) -> Vec<String> {
    s.value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// A password given directly, or in a file (`*.passwordPath`, its first line).
fn password(direct: Option<Setting>, path: Option<Setting>) -> Result<Option<String>, ConfigError> {
    if let Some(p) = path {
        let file = p.parse_path("/etc/zookeeper/keystore.pass")?;
        return match std::fs::read_to_string(&file) {
            Ok(text) => Ok(Some(text.lines().next().unwrap_or("").to_string())),
            Err(e) => Err(p.invalid(
                format!("cannot be read: {e}"),
                "point it at a readable file that holds the password on its first line",
            )),
        };
    }
    Ok(direct.map(|s| s.value))
}

fn store(
    location: Option<Setting>,
    pass: Option<String>,
    kind: Option<Setting>,
) -> Result<Option<Store>, ConfigError> {
    let Some(loc) = location else { return Ok(None) };
    if loc.value.trim().is_empty() {
        return Ok(None);
    }
    let kind = match kind {
        None => None,
        Some(k) => {
            let up = k.value.trim().to_ascii_uppercase();
            if !["JKS", "PKCS12", "PEM"].contains(&up.as_str()) {
                return Err(k.invalid(
                    "is not a store type zooid reads",
                    format!(
                        "use JKS, PKCS12 or PEM (BCFKS is not supported), e.g. {}",
                        k.example("PKCS12")
                    ),
                ));
            }
            Some(up)
        }
    };
    Ok(Some(Store {
        location: loc.parse_path("/etc/zookeeper/keystore.jks")?,
        password: pass,
        kind,
        key: loc.key.clone(),
        location_of: loc.location.clone(),
    }))
}

impl SslConfig {
    /// Read the settings `take` hands out by canonical key.
    /// Read the settings `take` hands out by canonical key: the client port's (`prefix`
    /// `ssl.`) or the quorum's (`ssl.quorum.`).
    pub(crate) fn take(
        take: &mut dyn FnMut(&str) -> Option<Setting>,
        prefix: &str,
        warnings: &mut Vec<Warning>,
    ) -> Result<SslConfig, ConfigError> {
        let mut take = |key: &str| take(&key.replacen("ssl.", prefix, 1));
        let client_port = prefix == "ssl.";
        let mut c = SslConfig::default();
        let ks_pass = password(
            take("ssl.keyStore.password"),
            take("ssl.keyStore.passwordPath"),
        )?;
        c.key_store = store(
            take("ssl.keyStore.location"),
            ks_pass,
            take("ssl.keyStore.type"),
        )?;
        let ts_pass = password(
            take("ssl.trustStore.password"),
            take("ssl.trustStore.passwordPath"),
        )?;
        c.trust_store = store(
            take("ssl.trustStore.location"),
            ts_pass,
            take("ssl.trustStore.type"),
        )?;
        if let Some(s) = take("ssl.clientAuth") {
            c.client_auth = match s.value.trim().to_ascii_lowercase().as_str() {
                "none" => ClientAuth::None,
                "want" => ClientAuth::Want,
                "need" => ClientAuth::Need,
                _ => {
                    return Err(s.invalid(
                        "is not none, want or need",
                        format!(
                            "write e.g. {} (need is the default: a client without a certificate is refused)",
                            s.example("want")
                        ),
                    ))
                }
            };
        }
        if let Some(s) = take("ssl.protocol") {
            c.protocol = Some(s.value.trim().to_string());
        }
        if let Some(s) = take("ssl.enabledProtocols") {
            c.enabled_protocols = list(&s);
        }
        if let Some(s) = take("ssl.ciphersuites") {
            c.cipher_suites = list(&s);
        }
        if let Some(s) = take("ssl.authProvider").filter(|_| client_port) {
            let scheme = s.value.trim().to_string();
            if scheme != "x509" {
                return Err(s.invalid(
                    "names a provider other than ZooKeeper's X509AuthenticationProvider, which \
                     zooid cannot load (it runs no Java classes)",
                    format!("remove it, or write {}", s.example("x509")),
                ));
            }
            c.auth_provider = scheme;
        }
        if let Some(s) = take("ssl.handshakeDetectionTimeoutMillis") {
            c.handshake_timeout_ms = s.parse_u64("a number of milliseconds", "5000")?.max(1);
        }
        // The quorum checks the names in its peers' certificates (ZooKeeper's default);
        // the client port does not check its clients' names. Revocation is not checked.
        if let Some(s) = take("ssl.hostnameVerification") {
            c.hostname_verification = s.parse_bool(true)?;
        }
        for key in ["ssl.crl", "ssl.ocsp"] {
            if let Some(s) = take(key) {
                if s.parse_bool(false)? {
                    warnings.push(s.warning(format!(
                        "{} = {}: zooid does not check certificate revocation (CRL or OCSP); \
                         every certificate the trust store vouches for is accepted",
                        s.key, s.value
                    )));
                }
            }
        }
        // zooid looks at the stores' files at every handshake and uses them once they
        // change, so the client-port reload switch (3.8.5+, 3.9) has nothing more to turn on.
        if client_port {
            let _ = take("client.certReload");
            if let Some(s) = take("client.portUnification") {
                c.port_unification = s.parse_bool(true)?;
            }
            if let Some(s) = take("X509AuthenticationProvider.superUser") {
                c.x509_super_user = Some(s.value.trim().to_string());
            }
        }
        Ok(c)
    }
}
