//! SASL for clients, as ZooKeeper reads it: the JAAS file `java.security.auth.login.config`
//! names (its `Server` section, or the one `zookeeper.sasl.serverconfig` names), the SASL
//! provider registered by `authProvider.N`, super users, the Kerberos name rules, and the
//! settings that require every client to authenticate.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{ConfigError, Warning};
use crate::value::Setting;

/// ZooKeeper's SASL authentication provider class.
pub const SASL_PROVIDER: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
const DIGEST_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";
const KRB5_MODULE: &str = "com.sun.security.auth.module.Krb5LoginModule";

/// The SASL settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslConfig {
    /// `java.security.auth.login.config`.
    pub jaas_file: Option<PathBuf>,
    /// DIGEST-MD5 users of the JAAS server section (`user_<name>="<password>"`), when it
    /// has a DigestLoginModule.
    pub digest_users: Option<BTreeMap<String, String>>,
    /// An `authProvider.N` names the SASL provider: `sasl` ids count in ACLs.
    pub provider_registered: bool,
    /// `zookeeper.superUser` and `zookeeper.superUser.*`.
    pub super_users: Vec<String>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`.
    pub super_password: Option<String>,
    /// `zookeeper.allowSaslFailedClients`.
    pub allow_failed: bool,
    /// `zookeeper.kerberos.removeHostFromPrincipal` / `removeRealmFromPrincipal`.
    pub remove_host: bool,
    pub remove_realm: bool,
    /// `zookeeper.letAnySaslUserDoX`.
    pub let_any: Option<String>,
    /// Schemes every client must authenticate with before any other request
    /// (`enforce.auth.enabled` + `enforce.auth.schemes`, or `sessionRequireClientSASLAuth`).
    pub required_schemes: Vec<String>,
    /// SASL between members (`quorum.auth.enableSasl`).
    pub quorum: Option<QuorumSasl>,
}

/// SASL between members: DIGEST-MD5 with the JAAS `QuorumServer` and `QuorumLearner`
/// sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumSasl {
    /// `quorum.auth.learnerRequireSasl`: this member authenticates when it dials.
    pub learner_require: bool,
    /// `quorum.auth.serverRequireSasl`: a member that dials without authenticating is refused.
    pub server_require: bool,
    /// The `QuorumLearner` section's `username` and `password`.
    pub learner: Option<(String, String)>,
    /// The `QuorumServer` section's `user_<name>` passwords.
    pub server_users: BTreeMap<String, String>,
}

fn is_true(s: &Setting) -> bool {
    s.value.trim() == "true"
}

impl SaslConfig {
    /// Read the settings `take` hands out; `providers` are the `authProvider.N` classes and
    /// `tls` whether the client port serves TLS (which registers `x509`).
    pub(crate) fn take(
        take: &mut dyn FnMut(&str) -> Option<Setting>,
        super_users: Vec<Setting>,
        providers: &[(String, String)],
        tls: bool,
        warnings: &mut Vec<Warning>,
    ) -> Result<SaslConfig, ConfigError> {
        let mut c = SaslConfig {
            provider_registered: providers.iter().any(|(_, class)| class == SASL_PROVIDER),
            ..SaslConfig::default()
        };
        let mut users: Vec<String> = take("superUser").into_iter().map(|s| s.value).collect();
        users.extend(super_users.into_iter().map(|s| s.value));
        c.super_users = users;
        c.super_password = take("SASLAuthenticationProvider.superPassword").map(|s| s.value);
        c.allow_failed = take("allowSaslFailedClients").is_some_and(|s| is_true(&s));
        c.remove_host = take("kerberos.removeHostFromPrincipal").is_some_and(|s| is_true(&s));
        c.remove_realm = take("kerberos.removeRealmFromPrincipal").is_some_and(|s| is_true(&s));
        c.let_any = take("letAnySaslUserDoX").map(|s| s.value);
        let section_setting = take("sasl.serverconfig");
        let section = section_setting
            .as_ref()
            .map_or(String::from("Server"), |s| s.value.trim().to_string());

        // Required authentication.
        let session_sasl = take("sessionRequireClientSASLAuth");
        let enforce = take("enforce.auth.enabled");
        let schemes = take("enforce.auth.schemes");
        let mut required_by = None;
        if let Some(s) = session_sasl.filter(is_true) {
            c.required_schemes = vec![String::from("sasl")];
            required_by = Some(s);
        } else if let Some(e) = enforce.filter(is_true) {
            let Some(list) = schemes else {
                return Err(e.invalid(
                    "is true but enforce.auth.schemes names no scheme",
                    "add e.g. enforce.auth.schemes=sasl (ZooKeeper refuses to start without it too)",
                ));
            };
            c.required_schemes = list
                .value
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect();
            for scheme in &c.required_schemes {
                let registered = match scheme.as_str() {
                    "digest" | "ip" => true,
                    "x509" => tls,
                    "sasl" => c.provider_registered,
                    _ => false,
                };
                if !registered {
                    return Err(list.invalid(
                        format!("names {scheme}, which has no authentication provider here"),
                        match scheme.as_str() {
                            "sasl" => format!("register it: authProvider.1={SASL_PROVIDER}"),
                            "x509" => String::from("serve TLS to clients: set secureClientPort and the ssl.keyStore settings"),
                            _ => String::from("use digest, sasl, x509 or ip"),
                        },
                    ));
                }
            }
            required_by = Some(list);
        }

        // SASL between members.
        let enable = take("quorum.auth.enableSasl");
        let learner_require = take("quorum.auth.learnerRequireSasl");
        let server_require = take("quorum.auth.serverRequireSasl");
        let learner_section = take("quorum.auth.learner.saslLoginContext")
            .map_or(String::from("QuorumLearner"), |s| {
                s.value.trim().to_string()
            });
        let server_section = take("quorum.auth.server.saslLoginContext")
            .map_or(String::from("QuorumServer"), |s| s.value.trim().to_string());
        let _ = take("quorum.auth.kerberos.servicePrincipal");
        let _ = take("quorum.cnxn.threads.size");
        let quorum_on = enable.as_ref().is_some_and(is_true);
        for s in [&learner_require, &server_require].into_iter().flatten() {
            if is_true(s) && !quorum_on {
                return Err(s.invalid(
                    "is true but quorum.auth.enableSasl is not",
                    "add quorum.auth.enableSasl=true (ZooKeeper refuses this too)",
                ));
            }
        }
        if server_require.as_ref().is_some_and(is_true)
            && !learner_require.as_ref().is_some_and(is_true)
        {
            let s = server_require.as_ref().expect("checked");
            return Err(s.invalid(
                "is true but quorum.auth.learnerRequireSasl is not",
                "add quorum.auth.learnerRequireSasl=true (ZooKeeper refuses this too)",
            ));
        }

        // The JAAS file.
        let jaas_setting = take("java.security.auth.login.config");
        let needs_server_section =
            c.provider_registered || c.required_schemes.iter().any(|s| s == "sasl");
        if let Some(js) = jaas_setting {
            let path = js.parse_path("/etc/zookeeper/jaas.conf")?;
            let jaas = match std::fs::read_to_string(&path) {
                Ok(text) => crate::jaas::parse_jaas(&path, &text)?,
                Err(e) => {
                    return Err(js.invalid(
                        format!("cannot be read: {e}"),
                        "point it at the JAAS file (readable by the user zooid runs as)",
                    ))
                }
            };
            c.jaas_file = Some(path.clone());
            if quorum_on {
                c.quorum = Some(quorum_sections(
                    &jaas,
                    &learner_section,
                    &server_section,
                    learner_require.as_ref().is_some_and(is_true),
                    server_require.as_ref().is_some_and(is_true),
                )?);
            }
            match jaas.sections.get(&section) {
                // ZooKeeper starts without SASL for clients then (it refuses only a JAAS file
                // it cannot read); say what SASL clients will meet.
                None if needs_server_section || section_setting.is_some() => {
                    warnings.push(Warning::at(
                        &crate::error::Location::whole_file(&path),
                        format!(
                            "No JAAS configuration section named '{section}' was found, so \
                             clients cannot authenticate with SASL; add {section} {{ \
                             {DIGEST_MODULE} required user_bob=\"bobsecret\"; }}; or name the \
                             section with zookeeper.sasl.serverconfig"
                        ),
                    ))
                }
                None => {}
                Some(modules) => {
                    for m in modules {
                        match m.class.as_str() {
                            DIGEST_MODULE => {
                                let users: BTreeMap<String, String> = m
                                    .options
                                    .iter()
                                    .filter_map(|(k, v)| {
                                        k.strip_prefix("user_").map(|u| (u.to_string(), v.clone()))
                                    })
                                    .collect();
                                if users.is_empty() {
                                    warnings.push(Warning::at(
                                        &crate::error::Location::at_line(&path, m.line),
                                        format!("the {section} section's DigestLoginModule lists no user_<name>=\"<password>\" option: no client can authenticate"),
                                    ));
                                }
                                c.digest_users = Some(users);
                            }
                            KRB5_MODULE => {
                                return Err(ConfigError::Jaas {
                                    location: crate::error::Location::at_line(&path, m.line),
                                    problem: String::from(
                                        "Krb5LoginModule: SASL with Kerberos (GSSAPI) for clients, which zooid cannot serve yet",
                                    ),
                                    hint: String::from(
                                        "keep Apache ZooKeeper on this server for Kerberos clients, or use DigestLoginModule",
                                    ),
                                })
                            }
                            other => {
                                return Err(ConfigError::Jaas {
                                    location: crate::error::Location::at_line(&path, m.line),
                                    problem: format!("the login module {other} is not one zooid knows"),
                                    hint: format!("use {DIGEST_MODULE}"),
                                })
                            }
                        }
                    }
                }
            }
        }
        if quorum_on && c.quorum.is_none() {
            let s = enable.expect("quorum_on");
            return Err(s.invalid(
                "needs a JAAS file with the QuorumServer and QuorumLearner sections",
                "set -Djava.security.auth.login.config=/etc/zookeeper/jaas.conf in SERVER_JVMFLAGS",
            ));
        }
        if c.required_schemes.iter().any(|s| s == "sasl") && c.digest_users.is_none() {
            let s = required_by.expect("set with the schemes");
            return Err(s.invalid(
                "requires SASL, but no JAAS Server section with a DigestLoginModule is configured",
                "set -Djava.security.auth.login.config=/etc/zookeeper/jaas.conf in SERVER_JVMFLAGS, with a Server section",
            ));
        }
        Ok(c)
    }
}

/// The quorum's sections of a JAAS file: the learner's credentials and the server's users.
fn quorum_sections(
    jaas: &crate::jaas::Jaas,
    learner_section: &str,
    server_section: &str,
    learner_require: bool,
    server_require: bool,
) -> Result<QuorumSasl, ConfigError> {
    let missing = |name: &str| {
        ConfigError::Jaas {
        location: crate::error::Location::whole_file(&jaas.path),
        problem: format!("No JAAS configuration section named '{name}' was found"),
        hint: format!(
            "quorum.auth.enableSasl=true needs {name} {{ {DIGEST_MODULE} required ... }}; \
             (QuorumServer: user_<name>=\"<password>\"; QuorumLearner: username=\"..\" password=\"..\")"
        ),
    }
    };
    let digest = |name: &str| -> Result<&crate::jaas::LoginModule, ConfigError> {
        let modules = jaas.sections.get(name).ok_or_else(|| missing(name))?;
        let m = modules.first().ok_or_else(|| missing(name))?;
        if m.class != DIGEST_MODULE {
            return Err(ConfigError::Jaas {
                location: crate::error::Location::at_line(&jaas.path, m.line),
                problem: format!(
                    "{}: only DIGEST-MD5 ({DIGEST_MODULE}) is supported between members yet",
                    m.class
                ),
                hint: String::from(
                    "use DigestLoginModule, or keep Apache ZooKeeper for Kerberos between members",
                ),
            });
        }
        Ok(m)
    };
    let server = digest(server_section)?;
    let server_users = server
        .options
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("user_").map(|u| (u.to_string(), v.clone())))
        .collect();
    let learner = match jaas.sections.get(learner_section) {
        Some(_) => {
            let m = digest(learner_section)?;
            match (m.options.get("username"), m.options.get("password")) {
                (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                _ => {
                    return Err(ConfigError::Jaas {
                        location: crate::error::Location::at_line(&jaas.path, m.line),
                        problem: format!(
                            "the {learner_section} section has no username and password"
                        ),
                        hint: String::from("add username=\"...\" password=\"...\""),
                    })
                }
            }
        }
        None if learner_require => return Err(missing(learner_section)),
        None => None,
    };
    Ok(QuorumSasl {
        learner_require,
        server_require,
        learner,
        server_users,
    })
}
