//! TLS for the client port, with the stores ZooKeeper's operators already have: a key store
//! (`ssl.keyStore.*`: JKS, PKCS12 or PEM) holding the server's key and certificate chain,
//! a trust store (`ssl.trustStore.*`) that vouches for clients' certificates, `ssl.clientAuth`,
//! the protocols and cipher suites ZooKeeper's names select. rustls does the cryptography.
//!
//! ```text
//! start-up   Tls::load: both stores read and checked; a problem names the file, the setting
//!            and the fix, and the server does not start
//! accept     Tls::acceptor: the stores' files are looked at (size and modification time);
//!            when one changed, they are read again and the next handshake uses them; a store
//!            that no longer reads keeps the last good one, with an error in the log
//! handshake  a client certificate's subject, as Java writes it (RFC 2253), becomes the
//!            connection's `x509` id (and `super` when it is X509AuthenticationProvider.superUser)
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use tokio_rustls::TlsAcceptor;
use zooid_config::{ClientAuth, SslConfig, Store};
use zooid_proto::Id;

/// A store or setting that cannot be used, told as the operator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// The setting that names the file (or the setting at fault).
    pub setting: String,
    pub file: Option<PathBuf>,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(
                f,
                "{}: {} ({}); {}",
                file.display(),
                self.problem,
                self.setting,
                self.fix
            ),
            None => write!(f, "{}: {}; {}", self.setting, self.problem, self.fix),
        }
    }
}

impl std::error::Error for TlsError {}

fn store_error(store: &Store, problem: impl Into<String>, fix: impl Into<String>) -> TlsError {
    TlsError {
        setting: store.key.clone(),
        file: Some(store.location.clone()),
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// What a store file holds, by its first bytes (the type setting and the extension are
/// hints only: keytool writes PKCS12 into files named .jks, and Java reads them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jks,
    Pkcs12,
    Pem,
}

fn format_of(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xfe, 0xed, 0xfe, 0xed]) {
        Some(Format::Jks)
    } else if bytes.first() == Some(&0x30) {
        Some(Format::Pkcs12)
    } else if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        Some(Format::Pem)
    } else {
        None
    }
}

fn read_store(store: &Store) -> Result<(Vec<u8>, Format), TlsError> {
    let bytes = std::fs::read(&store.location).map_err(|e| {
        let fix = match e.kind() {
            std::io::ErrorKind::NotFound => "point the setting at the store's path",
            std::io::ErrorKind::PermissionDenied => {
                "let the user zooid runs as read it (chmod/chown), as ZooKeeper's user could"
            }
            _ => "check the file",
        };
        store_error(store, format!("cannot be read: {e}"), fix)
    })?;
    let format = format_of(&bytes).ok_or_else(|| {
        store_error(
            store,
            format!(
                "is not a JKS, PKCS12 or PEM store{}",
                store
                    .kind
                    .as_deref()
                    .map(|k| format!(" (the type setting says {k})"))
                    .unwrap_or_default()
            ),
            "give the store keytool or openssl wrote",
        )
    })?;
    Ok((bytes, format))
}

fn wrong_password(store: &Store) -> TlsError {
    let setting = store.key.replace(".location", ".password");
    store_error(
        store,
        "the password does not open it",
        format!("set {setting} to the store's password (keytool -list -keystore FILE checks one)"),
    )
}

/// A store's file, read and opened with its password.
enum Opened {
    Jks(jks::KeyStore),
    Pkcs12(p12_keystore::KeyStore),
    Pem(Vec<u8>),
}

fn open_store(store: &Store) -> Result<Opened, TlsError> {
    let (bytes, format) = read_store(store)?;
    let password = store.password.clone().unwrap_or_default();
    match format {
        Format::Jks => {
            let mut ks = jks::KeyStore::new();
            ks.load(&bytes[..], password.as_bytes())
                .map_err(|e| match e {
                    jks::KeyStoreError::InvalidDigest => wrong_password(store),
                    e => store_error(
                        store,
                        format!("is not a readable JKS store: {e}"),
                        "check the file",
                    ),
                })?;
            Ok(Opened::Jks(ks))
        }
        Format::Pkcs12 => p12_keystore::KeyStore::from_pkcs12(
            &bytes,
            &password,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .map(Opened::Pkcs12)
        .map_err(|e| pkcs12_error(store, e)),
        Format::Pem => Ok(Opened::Pem(bytes)),
    }
}

/// The server's certificate chain and private key.
fn load_key_store(
    store: &Store,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let none = || {
        store_error(
            store,
            "holds no private key with its certificate",
            "give the key store with the server's key entry (keytool -genkeypair, or openssl pkcs12 -export)",
        )
    };
    match open_store(store)? {
        Opened::Jks(ks) => {
            let alias = ks
                .aliases()
                .into_iter()
                .find(|a| ks.is_private_key_entry(a))
                .ok_or_else(none)?;
            let password = store.password.clone().unwrap_or_default();
            let entry = ks
                .get_private_key_entry(&alias, password.as_bytes())
                .map_err(|_| wrong_password(store))?;
            let chain = entry
                .certificate_chain
                .iter()
                .map(|c| CertificateDer::from(c.content.clone()))
                .collect();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(entry.private_key));
            Ok((chain, key))
        }
        Opened::Pkcs12(ks) => {
            let (_, chain) = ks.private_key_chain().ok_or_else(none)?;
            let certs = chain
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
            Ok((certs, key))
        }
        Opened::Pem(bytes) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
                .filter_map(Result::ok)
                .collect();
            if bytes.windows(19).any(|w| w == b"ENCRYPTED PRIVATE K") {
                return Err(store_error(
                    store,
                    "holds an encrypted private key, which zooid cannot read",
                    "write it unencrypted (openssl pkcs8 -topk8 -nocrypt) in a file only zooid's user can read",
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| none())?;
            if certs.is_empty() {
                return Err(none());
            }
            Ok((certs, key))
        }
    }
}

fn pkcs12_error(store: &Store, e: p12_keystore::error::Error) -> TlsError {
    let text = e.to_string();
    if text.to_ascii_lowercase().contains("mac") || text.contains("Unpad") {
        wrong_password(store)
    } else {
        store_error(
            store,
            format!("is not a readable PKCS12 store: {text}"),
            "check the file",
        )
    }
}

/// The certificates a trust store vouches with.
fn load_trust_store(store: &Store) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = match open_store(store)? {
        Opened::Jks(ks) => ks
            .aliases()
            .into_iter()
            .filter_map(|a| ks.get_trusted_certificate_entry(&a).ok())
            .map(|e| CertificateDer::from(e.certificate.content))
            .collect(),
        Opened::Pkcs12(ks) => ks
            .entries()
            .filter_map(|(_, e)| match e {
                p12_keystore::KeyStoreEntry::Certificate(c) => {
                    Some(CertificateDer::from(c.as_der().to_vec()))
                }
                _ => None,
            })
            .collect(),
        Opened::Pem(bytes) => CertificateDer::pem_slice_iter(&bytes)
            .filter_map(Result::ok)
            .collect(),
    };
    if certs.is_empty() {
        return Err(store_error(
            store,
            "holds no trusted certificate",
            "import the CA that signs the clients' certificates (keytool -importcert)",
        ));
    }
    Ok(certs)
}

/// Debian's bundle of public CAs: the trust store when none is set, as Java's cacerts is.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn protocol_versions(
    cfg: &SslConfig,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    let names: Vec<String> = if cfg.enabled_protocols.is_empty() {
        match cfg.protocol.as_deref() {
            // ZooKeeper's default: TLSv1.3 where the JVM has it, with TLSv1.2 enabled.
            None | Some("TLSv1.3") | Some("TLS") => vec!["TLSv1.3".into(), "TLSv1.2".into()],
            Some(p) => vec![p.to_string()],
        }
    } else {
        cfg.enabled_protocols.clone()
    };
    let mut versions = Vec::new();
    for n in &names {
        match n.as_str() {
            "TLSv1.3" | "TLS" => versions.push(&rustls::version::TLS13),
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            other => tracing::warn!(
                protocol = other,
                "TLS protocol not offered (only TLSv1.2 and TLSv1.3 are)"
            ),
        }
    }
    versions.dedup();
    if versions.is_empty() {
        return Err(TlsError {
            setting: String::from("ssl.enabledProtocols / ssl.protocol"),
            file: None,
            problem: format!("name no protocol zooid offers ({})", names.join(", ")),
            fix: String::from("use TLSv1.2 and/or TLSv1.3"),
        });
    }
    Ok(versions)
}

/// ring, the provider that builds without cmake. rustls deprecates it for lacking
/// post-quantum key exchange, which Java's TLS (ZooKeeper's clients) does not offer either.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The provider with only the cipher suites `ssl.ciphersuites` names (Java's names; a
/// TLS 1.3 suite is TLS_AES_128_GCM_SHA256 there, TLS13_AES_128_GCM_SHA256 in rustls).
fn provider(cfg: &SslConfig) -> Result<rustls::crypto::CryptoProvider, TlsError> {
    let mut p = ring_provider();
    if cfg.cipher_suites.is_empty() {
        return Ok(p);
    }
    let java_name = |s: &rustls::SupportedCipherSuite| {
        let name = format!("{:?}", s.suite());
        name.replacen("TLS13_", "TLS_", 1)
    };
    let wanted: Vec<&String> = cfg.cipher_suites.iter().collect();
    p.cipher_suites
        .retain(|s| wanted.iter().any(|w| **w == java_name(s)));
    if p.cipher_suites.is_empty() {
        let known: Vec<String> = ring_provider()
            .cipher_suites
            .iter()
            .map(java_name)
            .collect();
        return Err(TlsError {
            setting: String::from("ssl.ciphersuites"),
            file: None,
            problem: String::from("names no cipher suite zooid offers"),
            fix: format!("use some of {}", known.join(", ")),
        });
    }
    Ok(p)
}

/// The trust roots of `cfg`'s trust store (or Debian's public CAs when none is set).
fn roots(cfg: &SslConfig) -> Result<RootCertStore, TlsError> {
    roots_of(cfg, trust_certs(cfg)?)
}

/// The trust store's certificates (the system's CAs without one).
fn trust_certs(cfg: &SslConfig) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    Ok(match &cfg.trust_store {
        Some(ts) => load_trust_store(ts)?,
        None => CertificateDer::pem_file_iter(SYSTEM_CAS)
            .map(|it| it.filter_map(Result::ok).collect())
            .unwrap_or_default(),
    })
}

fn roots_of(
    cfg: &SslConfig,
    certs: Vec<CertificateDer<'static>>,
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError {
            setting: String::from("ssl.trustStore.location"),
            file: cfg.trust_store.as_ref().map(|t| t.location.clone()),
            problem: String::from("gives no usable certificate to check peers' certificates with"),
            fix: String::from(
                "set it to a store with the CA of the peers' certificates, or ssl.clientAuth=none",
            ),
        });
    }
    Ok(roots)
}

/// The key store's chain and key, and the provider and protocols the settings allow.
type Material = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    Arc<rustls::crypto::CryptoProvider>,
    Vec<&'static rustls::SupportedProtocolVersion>,
);

fn material(cfg: &SslConfig) -> Result<Material, TlsError> {
    let key_store = cfg.key_store.as_ref().ok_or_else(|| TlsError {
        setting: String::from("ssl.keyStore.location"),
        file: None,
        problem: String::from("is not set"),
        fix: String::from("name the key store with the server's certificate and key"),
    })?;
    let (chain, key) = load_key_store(key_store)?;
    Ok((
        chain,
        key,
        Arc::new(provider(cfg)?),
        protocol_versions(cfg)?,
    ))
}

/// Cipher suites and protocols (of the settings under `prefix`) that leave nothing to
/// negotiate with.
fn misfit(prefix: &str, e: rustls::Error) -> TlsError {
    TlsError {
        setting: format!("{prefix}ciphersuites / {prefix}enabledProtocols"),
        file: None,
        problem: format!("do not fit together: {e}"),
        fix: String::from("enable a cipher suite of each protocol enabled"),
    }
}

fn build(cfg: &SslConfig) -> Result<rustls::ServerConfig, TlsError> {
    let (chain, key, provider, versions) = material(cfg)?;
    let key_store = cfg.key_store.as_ref().expect("material checked it");
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| misfit("ssl.", e))?;
    let builder = match cfg.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let anchors = trust_certs(cfg)?;
            let roots = roots_of(cfg, anchors.clone())?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if auth == ClientAuth::Want {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| TlsError {
                setting: String::from("ssl.trustStore.location"),
                file: cfg.trust_store.as_ref().map(|t| t.location.clone()),
                problem: format!("cannot check clients with it: {e}"),
                fix: String::from("check the trust store"),
            })?;
            builder.with_client_cert_verifier(Arc::new(V1Tolerant {
                inner: verifier,
                anchors,
                algorithms: provider.signature_verification_algorithms,
            }))
        }
    };
    let unusable = |e: rustls::Error| {
        store_error(
            key_store,
            format!("its key and certificate cannot be used: {e}"),
            "give the key entry's full chain, server certificate first, with its matching key",
        )
    };
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(unusable)?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    // rustls checks that the key matches the certificate by parsing it with webpki, which
    // reads only X.509 v3; Java serves v1 certificates too (kazoo's test harness makes them),
    // so a v1 certificate is served unchecked.
    if !is_x509_v1(&certified.cert[0]) {
        certified.keys_match().map_err(unusable)?;
    }
    Ok(builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified))))
}

/// Client certificates as Java checks them: webpki reads only X.509 v3, so a version 1
/// certificate (kazoo's test harness makes them) is checked here instead: within its
/// validity, issued and signed by a certificate of the trust store, and its handshake
/// signature made with its key. Everything else is webpki's.
#[derive(Debug)]
struct V1Tolerant {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    anchors: Vec<CertificateDer<'static>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl V1Tolerant {
    fn verify_v1(&self, end_entity: &CertificateDer<'_>, now: UnixTime) -> Result<(), String> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(end_entity.as_ref()).map_err(|e| e.to_string())?;
        let now = x509_parser::time::ASN1Time::from_timestamp(now.as_secs() as i64)
            .map_err(|e| e.to_string())?;
        if !cert.validity().is_valid_at(now) {
            return Err(String::from("the certificate is expired or not yet valid"));
        }
        let issued = self.anchors.iter().any(|a| {
            x509_parser::parse_x509_certificate(a.as_ref()).is_ok_and(|(_, ca)| {
                ca.subject().as_raw() == cert.issuer().as_raw()
                    && cert.verify_signature(Some(ca.public_key())).is_ok()
            })
        });
        if issued {
            Ok(())
        } else {
            Err(String::from("no certificate of the trust store signed it"))
        }
    }

    /// A handshake signature, checked against a v1 certificate's key.
    fn verify_signed(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| bad())?;
        let key = &parsed.public_key().subject_public_key.data;
        let algs = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))?;
        if algs
            .iter()
            .any(|alg| alg.verify_signature(key, message, dss.signature()).is_ok())
        {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        } else {
            Err(bad())
        }
    }
}

impl rustls::server::danger::ClientCertVerifier for V1Tolerant {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        if !is_x509_v1(end_entity) {
            return self
                .inner
                .verify_client_cert(end_entity, intermediates, now);
        }
        self.verify_v1(end_entity, now)
            .map(|()| rustls::server::danger::ClientCertVerified::assertion())
            .map_err(|e| {
                tracing::info!(error = %e, "a version 1 client certificate is refused");
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        if is_x509_v1(cert) {
            return self.verify_signed(message, cert, dss);
        }
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        if is_x509_v1(cert) {
            return self.verify_signed(message, cert, dss);
        }
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether a certificate is X.509 version 1 (no extensions).
fn is_x509_v1(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .is_ok_and(|(_, c)| c.version() == x509_parser::x509::X509Version::V1)
}

/// The dialing side of a quorum connection: the member's certificate as client
/// certificate, peers checked against the trust store and, with
/// `ssl.quorum.hostnameVerification` (the default), against the address dialed.
fn build_client(cfg: &SslConfig) -> Result<rustls::ClientConfig, TlsError> {
    let (chain, key, provider, versions) = material(cfg)?;
    let key_store = cfg.key_store.as_ref().expect("material checked it");
    let roots = Arc::new(roots(cfg)?);
    let webpki =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| TlsError {
                setting: String::from("ssl.quorum.trustStore.location"),
                file: cfg.trust_store.as_ref().map(|t| t.location.clone()),
                problem: format!("cannot check peers with it: {e}"),
                fix: String::from("check the trust store"),
            })?;
    let verifier = Arc::new(PeerVerifier {
        inner: webpki,
        check_name: cfg.hostname_verification,
    });
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| misfit("ssl.quorum.", e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            store_error(
                key_store,
                format!("its key and certificate cannot be used: {e}"),
                "give the key entry's full chain, its certificate first, with its matching key",
            )
        })
}

/// The trust store's verdict on a peer's chain; the name in it is checked only with
/// hostname verification on (ZooKeeper's `ssl.quorum.hostnameVerification=false` lets a
/// member whose certificate names another address in).
#[derive(Debug)]
struct PeerVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    check_name: bool,
}

impl rustls::client::danger::ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a configuration builds from its stores, built again when they change on disk: the
/// next handshake uses the new stores; stores that no longer read keep the last good build.
struct Reloading<T> {
    cfg: SslConfig,
    build: fn(&SslConfig) -> Result<T, TlsError>,
    loaded: Mutex<(T, Stamps)>,
}

impl<T: Clone> Reloading<T> {
    /// Build now; a problem stops the start-up.
    fn load(
        cfg: &SslConfig,
        build: fn(&SslConfig) -> Result<T, TlsError>,
    ) -> Result<Self, TlsError> {
        let stamps = stamps(cfg);
        let built = build(cfg)?;
        Ok(Reloading {
            cfg: cfg.clone(),
            build,
            loaded: Mutex::new((built, stamps)),
        })
    }

    fn current(&self) -> T {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let now = stamps(&self.cfg);
        if now != loaded.1 {
            loaded.1 = now;
            match (self.build)(&self.cfg) {
                Ok(built) => {
                    tracing::info!("the TLS stores changed on disk; new handshakes use them");
                    loaded.0 = built;
                }
                Err(e) => {
                    tracing::error!(error = %e, "the TLS stores changed on disk but cannot be used; new handshakes keep the previous ones")
                }
            }
        }
        loaded.0.clone()
    }
}

/// The store files, with their size and time when read.
type Stamps = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

/// The files a configuration reads, with what they were when read.
fn stamps(cfg: &SslConfig) -> Stamps {
    [cfg.key_store.as_ref(), cfg.trust_store.as_ref()]
        .into_iter()
        .flatten()
        .map(|s| (s.location.clone(), stamp(&s.location)))
        .collect()
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn acceptor(cfg: &SslConfig) -> Result<TlsAcceptor, TlsError> {
    Ok(TlsAcceptor::from(Arc::new(build(cfg)?)))
}

fn acceptor_and_connector(
    cfg: &SslConfig,
) -> Result<(TlsAcceptor, tokio_rustls::TlsConnector), TlsError> {
    let client = tokio_rustls::TlsConnector::from(Arc::new(build_client(cfg)?));
    Ok((acceptor(cfg)?, client))
}

/// TLS between members (`sslQuorum`, `ssl.quorum.*`): an acceptor for the election and
/// quorum ports and a connector for dialing peers, reloaded when the stores change.
pub struct QuorumTls {
    tls: Reloading<(TlsAcceptor, tokio_rustls::TlsConnector)>,
    /// Whether plaintext is accepted too (`portUnification`), and TLS is dialed (`sslQuorum`).
    pub unified: bool,
    pub dial_tls: bool,
}

impl QuorumTls {
    pub fn load(cfg: &SslConfig, dial_tls: bool, unified: bool) -> Result<QuorumTls, TlsError> {
        Ok(QuorumTls {
            tls: Reloading::load(cfg, acceptor_and_connector)?,
            unified,
            dial_tls,
        })
    }

    pub fn handshake_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.tls.cfg.handshake_timeout_ms)
    }

    /// The acceptor and connector for the next handshake, with the stores as they are now.
    pub fn current(&self) -> (TlsAcceptor, tokio_rustls::TlsConnector) {
        self.tls.current()
    }
}

/// The client port's TLS (and the AdminServer's HTTPS): the acceptor, reloaded when the
/// stores change on disk.
pub struct Tls {
    tls: Reloading<TlsAcceptor>,
}

impl Tls {
    /// Read the stores; a problem stops the start-up.
    pub fn load(cfg: &SslConfig) -> Result<Tls, TlsError> {
        Ok(Tls {
            tls: Reloading::load(cfg, acceptor)?,
        })
    }

    pub fn config(&self) -> &SslConfig {
        &self.tls.cfg
    }

    /// The acceptor for the next handshake, with the stores as they are on disk now.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.tls.current()
    }

    /// The ids a client certificate gives its connection: `x509:<subject>`, and `super` when
    /// the subject is the configured super user.
    pub fn ids(&self, peer: Option<&[CertificateDer<'_>]>) -> Vec<Id> {
        let Some(cert) = peer.and_then(|c| c.first()) else {
            return Vec::new();
        };
        let Some(subject) = rfc2253_subject(cert) else {
            return Vec::new();
        };
        let cfg = self.config();
        let mut ids = vec![Id::new(&cfg.auth_provider, &subject)];
        if cfg.x509_super_user.as_deref() == Some(subject.as_str()) {
            ids.push(Id::new("super", &subject));
        }
        ids
    }
}

/// Whether a connection on a unified port opens a TLS handshake: its first byte is 0x16,
/// as ZooKeeper's unified ports tell TLS from plaintext. Nothing within `limit` is
/// plaintext.
pub async fn opens_tls(stream: &tokio::net::TcpStream, limit: std::time::Duration) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(limit, stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == 0x16
    )
}

/// The server side of a handshake within `limit`. A failure is logged with the peer's
/// address and the port (`port`) and closes this connection only.
pub async fn accept(
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    limit: std::time::Duration,
    port: &'static str,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let peer = stream.peer_addr().ok();
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::warn!(?peer, port, error = %e, "TLS handshake failed; closing the connection");
            None
        }
        Err(_) => {
            tracing::warn!(
                ?peer,
                port,
                ms = limit.as_millis() as u64,
                "no TLS handshake in time; closing the connection"
            );
            None
        }
    }
}

/// A certificate's subject as Java's `X500Principal.getName()` writes it (RFC 2253): the
/// last RDN first, commas between, known attribute names, other values as `#` and their DER
/// in hex.
pub fn rfc2253_subject(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::asn1_rs::ToDer;
    use x509_parser::prelude::*;
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
    let mut rdns = Vec::new();
    for rdn in parsed.subject().iter_rdn() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let name = match oid.as_str() {
                "2.5.4.3" => Some("CN"),
                "2.5.4.6" => Some("C"),
                "2.5.4.7" => Some("L"),
                "2.5.4.8" => Some("ST"),
                "2.5.4.10" => Some("O"),
                "2.5.4.11" => Some("OU"),
                "2.5.4.9" => Some("STREET"),
                "0.9.2342.19200300.100.1.25" => Some("DC"),
                "0.9.2342.19200300.100.1.1" => Some("UID"),
                _ => None,
            };
            let value = attr.attr_value();
            match (name, attr.as_str()) {
                (Some(n), Ok(text)) => parts.push(format!("{n}={}", escape_rfc2253(text))),
                _ => {
                    let der: String = value
                        .to_der_vec()
                        .ok()?
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    parts.push(format!("{oid}=#{der}"));
                }
            }
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_are_escaped_as_java_does() {
        assert_eq!(escape_rfc2253("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc2253("#x "), "\\#x\\ ");
        assert_eq!(escape_rfc2253("plain"), "plain");
    }

    #[test]
    fn a_missing_store_names_the_file_the_setting_and_the_fix() {
        let store = Store {
            location: PathBuf::from("/nonexistent/keystore.jks"),
            password: Some("x".into()),
            kind: None,
            key: String::from("ssl.keyStore.location"),
            location_of: zooid_config::Location::JvmFlags,
        };
        let e = load_key_store(&store).unwrap_err().to_string();
        assert!(
            e.starts_with("/nonexistent/keystore.jks: cannot be read"),
            "{e}"
        );
        assert!(e.contains("(ssl.keyStore.location)"), "{e}");
        assert!(e.contains("point the setting"), "{e}");
    }

    #[test]
    fn store_formats_are_told_by_their_bytes() {
        assert_eq!(
            format_of(&[0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]),
            Some(Format::Jks)
        );
        assert_eq!(format_of(&[0x30, 0x82, 1, 2]), Some(Format::Pkcs12));
        assert_eq!(
            format_of(b"-----BEGIN CERTIFICATE-----\n"),
            Some(Format::Pem)
        );
        assert_eq!(format_of(b"hello"), None);
    }
}
