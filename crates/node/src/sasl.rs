//! SASL DIGEST-MD5 for clients (opcode 102), as ZooKeeper's server runs it through the JDK
//! (RFC 2831, with the JDK's choices): the first token (empty) gets a challenge for realm
//! `zk-sasl-md5`, the client's digest-response is checked against the password of its user
//! in the JAAS `Server` section, and the answer carries `rspauth`. Then the connection holds
//! `sasl:<user>` (and `super` when the user is a configured super user).
//!
//! ```text
//! client: ""                         server: realm="zk-sasl-md5",nonce="<40>",charset=utf-8,algorithm=md5-sess
//! client: username=..,response=..    server: rspauth=<32 hex>          (or AUTHFAILED, closed)
//! ```
//! The nonce comes from the caller's random bits: nothing here reads a clock or an RNG.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

/// What the DIGEST-MD5 server knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestUsers {
    /// `user_<name>="<password>"` of the JAAS Server section.
    pub users: BTreeMap<String, String>,
    /// `zookeeper.superUser` / `superUser.*`: these users also get `super`.
    pub super_users: Vec<String>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`: the password of user `super`.
    pub super_password: Option<String>,
}

/// Which exchange: the realm (ZooKeeper's SASL server name) and the digest-uri.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub realm: &'static str,
    pub uri: &'static str,
}

/// Clients (opcode 102).
pub const CLIENTS: Service = Service {
    realm: "zk-sasl-md5",
    uri: "zookeeper/zk-sasl-md5",
};

/// Members (`quorum.auth.enableSasl`).
pub const QUORUM: Service = Service {
    realm: "zk-quorum-sasl-md5",
    uri: "zookeeper-quorum/zk-quorum-sasl-md5",
};

/// Where one connection's exchange stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// Nothing asked yet.
    Start,
    /// The challenge went out with this nonce.
    Challenged { nonce: String },
    /// Authenticated (or failed): further tokens are refused.
    Done,
}

/// The outcome of one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this token back; more is to come.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send this last token.
    Success { user: String, token: Vec<u8> },
    /// Refused, for the log.
    Failure(String),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The JDK encodes user, realm and password as ISO-8859-1 unless one of them needs more.
fn latin1_or_utf8(parts: &[&str]) -> Vec<u8> {
    let joined = parts.join(":");
    if joined.chars().all(|c| (c as u32) <= 0xff) {
        joined.chars().map(|c| c as u8).collect()
    } else {
        joined.into_bytes()
    }
}

/// A nonce as the JDK makes one: 30 random bytes in base64 without padding (40 characters).
pub fn nonce(random: [u8; 30]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(random)
}

/// The first challenge.
pub fn challenge(service: Service, nonce: &str) -> Vec<u8> {
    let realm = service.realm;
    format!("realm=\"{realm}\",nonce=\"{nonce}\",charset=utf-8,algorithm=md5-sess").into_bytes()
}

/// `hex(MD5(A1))` of RFC 2831 with md5-sess.
fn ha1(
    service: Service,
    user: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
    authzid: Option<&str>,
) -> String {
    let secret = md5(&[&latin1_or_utf8(&[user, service.realm, password])]);
    let mut a1 = secret.to_vec();
    a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
    if let Some(authzid) = authzid {
        a1.extend_from_slice(format!(":{authzid}").as_bytes());
    }
    hex(&md5(&[&a1]))
}

/// The response digest (`a2` is `AUTHENTICATE:<uri>`) or rspauth (`:<uri>`).
fn kd(ha1: &str, nonce: &str, nc: &str, cnonce: &str, qop: &str, a2: &str) -> String {
    let ha2 = hex(&md5(&[a2.as_bytes()]));
    hex(&md5(&[
        format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}").as_bytes()
    ]))
}

/// The learner's side of a quorum exchange (ZooKeeper's Java learner does the same through
/// the JDK): the digest-response to `challenge`, and the rspauth token the server must
/// answer with. `cnonce` comes from the caller's random bits.
pub fn respond_to_challenge(
    service: Service,
    user: &str,
    password: &str,
    challenge: &[u8],
    cnonce: &str,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let text = std::str::from_utf8(challenge).map_err(|_| "the challenge is not UTF-8")?;
    let d = directives(text).map_err(|e| format!("DIGEST-MD5 challenge: {e}"))?;
    let nonce = d.get("nonce").ok_or("the challenge has no nonce")?;
    let realm = d.get("realm").map_or(service.realm, String::as_str);
    if realm != service.realm {
        return Err(format!(
            "the challenge names realm {realm}, not {}",
            service.realm
        ));
    }
    let nc = "00000001";
    let h = ha1(service, user, password, nonce, cnonce, Some(user));
    let response = kd(
        &h,
        nonce,
        nc,
        cnonce,
        "auth",
        &format!("AUTHENTICATE:{}", service.uri),
    );
    let rspauth = kd(&h, nonce, nc, cnonce, "auth", &format!(":{}", service.uri));
    let token = format!(
        "charset=utf-8,username=\"{user}\",realm=\"{realm}\",nonce=\"{nonce}\",nc={nc},\
         cnonce=\"{cnonce}\",digest-uri=\"{uri}\",maxbuf=65536,response={response},qop=auth,\
         authzid=\"{user}\"",
        uri = service.uri
    );
    Ok((
        token.into_bytes(),
        format!("rspauth={rspauth}").into_bytes(),
    ))
}

/// The directives of a digest-response: keys lower-cased, values unquoted.
fn directives(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        if i >= b.len() {
            return Err(format!("a directive without a value: {:?}", &text[start..]));
        }
        let key = text[start..i].trim().to_ascii_lowercase();
        i += 1;
        let value = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut v = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(format!("the value of {key} is not closed")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        v.push(b[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            String::from_utf8(v).map_err(|_| format!("the value of {key} is not UTF-8"))?
        } else {
            let s = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            text[s..i].trim().to_string()
        };
        if out.insert(key.clone(), value).is_some() {
            return Err(format!("the directive {key} is given twice"));
        }
    }
    Ok(out)
}

impl DigestUsers {
    fn password(&self, user: &str) -> Option<&str> {
        if user == "super" {
            if let Some(p) = &self.super_password {
                return Some(p);
            }
        }
        self.users.get(user).map(String::as_str)
    }

    /// Check a digest-response against the challenge's `nonce`.
    pub fn respond(&self, service: Service, nonce: &str, token: &[u8]) -> Step {
        if token.len() > 4096 {
            return Step::Failure(String::from("DIGEST-MD5: the response is over 4096 bytes"));
        }
        let Ok(text) = std::str::from_utf8(token) else {
            return Step::Failure(String::from("DIGEST-MD5: the response is not UTF-8"));
        };
        let d = match directives(text) {
            Ok(d) => d,
            Err(e) => return Step::Failure(format!("DIGEST-MD5: {e}")),
        };
        let get = |k: &str| d.get(k).map(String::as_str);
        if get("charset").is_some_and(|c| c != "utf-8") {
            return Step::Failure(String::from("DIGEST-MD5: charset must be utf-8"));
        }
        let (Some(user), Some(cnonce), Some(response)) =
            (get("username"), get("cnonce"), get("response"))
        else {
            return Step::Failure(String::from(
                "DIGEST-MD5: username, cnonce and response are required",
            ));
        };
        if get("nonce") != Some(nonce) {
            return Step::Failure(String::from("DIGEST-MD5: the nonce does not match"));
        }
        if get("realm").unwrap_or("") != service.realm {
            return Step::Failure(format!(
                "DIGEST-MD5: Nonexistent realm: {}",
                get("realm").unwrap_or("")
            ));
        }
        let nc = get("nc").unwrap_or("00000001");
        if u32::from_str_radix(nc, 16) != Ok(1) {
            return Step::Failure(format!("DIGEST-MD5: nonce count {nc} is not 1"));
        }
        let qop = get("qop").unwrap_or("auth");
        if qop != "auth" {
            return Step::Failure(format!("DIGEST-MD5: server does not support qop {qop}"));
        }
        let Some(uri) = get("digest-uri") else {
            return Step::Failure(String::from("DIGEST-MD5: digest-uri is required"));
        };
        if !uri.eq_ignore_ascii_case(service.uri) {
            return Step::Failure(format!(
                "DIGEST-MD5: Mismatched URI: {uri}; expecting: {}",
                service.uri
            ));
        }
        let Some(password) = self.password(user) else {
            return Step::Failure(format!(
                "User '{user}' not found in list of DIGEST-MD5 authenticateable users"
            ));
        };
        let h = ha1(service, user, password, nonce, cnonce, get("authzid"));
        let digest = |a2: &str| kd(&h, nonce, nc, cnonce, qop, a2);
        let expected = digest(&format!("AUTHENTICATE:{uri}"));
        // Compared in constant time.
        let same = expected.len() == response.len()
            && expected
                .bytes()
                .zip(response.to_ascii_lowercase().bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Step::Failure(String::from("DIGEST-MD5: Mismatched response"));
        }
        let rspauth = digest(&format!(":{uri}"));
        Step::Success {
            user: user.to_string(),
            token: format!("rspauth={rspauth}").into_bytes(),
        }
    }
}

/// The authorization id of an authenticated user, as ZooKeeper's callback handler derives
/// it from a Kerberos-style name `user[/host][@REALM]`.
pub fn authorization_id(user: &str, remove_host: bool, remove_realm: bool) -> String {
    let (name, realm) = match user.split_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (user, None),
    };
    let (short, host) = match name.split_once('/') {
        Some((s, h)) => (s, Some(h)),
        None => (name, None),
    };
    let mut id = short.to_string();
    if let (Some(h), false) = (host, remove_host) {
        id.push('/');
        id.push_str(h);
    }
    if let (Some(r), false) = (realm, remove_realm) {
        id.push('@');
        id.push_str(r);
    }
    id
}

/// Whether a `sasl` ACL id is valid: ZooKeeper's KerberosName accepts any name without `@`,
/// and `name[/host]@REALM` with no more `/` or `@`.
pub fn is_valid_id(id: &str) -> bool {
    match id.split_once('@') {
        None => true,
        Some((name, realm)) => {
            !realm.contains(['@', '/']) && name.split('/').count() <= 2 && !name.contains('@')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's side, computed independently of `respond`, as RFC 2831 says.
    const REALM: &str = "zk-sasl-md5";
    const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";

    fn client_response(user: &str, pass: &str, nonce: &str, cnonce: &str) -> String {
        let secret = md5(&[format!("{user}:{REALM}:{pass}").as_bytes()]);
        let mut a1 = secret.to_vec();
        a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
        let ha1 = hex(&md5(&[&a1]));
        let ha2 = hex(&md5(&[format!("AUTHENTICATE:{DIGEST_URI}").as_bytes()]));
        let resp = hex(&md5(&[format!(
            "{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"
        )
        .as_bytes()]));
        format!(
            "charset=utf-8,username=\"{user}\",realm=\"{REALM}\",nonce=\"{nonce}\",nc=00000001,\
             cnonce=\"{cnonce}\",digest-uri=\"{DIGEST_URI}\",maxbuf=65536,response={resp},qop=auth"
        )
    }

    fn users() -> DigestUsers {
        DigestUsers {
            users: [("bob".to_string(), "bobsecret".to_string())].into(),
            ..DigestUsers::default()
        }
    }

    #[test]
    fn the_challenge_is_the_jdks() {
        let n = nonce([7; 30]);
        assert_eq!(n.len(), 40);
        assert_eq!(
            String::from_utf8(challenge(CLIENTS, &n)).unwrap(),
            format!("realm=\"zk-sasl-md5\",nonce=\"{n}\",charset=utf-8,algorithm=md5-sess")
        );
    }

    #[test]
    fn a_right_password_authenticates_and_a_wrong_one_does_not() {
        let n = nonce([1; 30]);
        let ok = client_response("bob", "bobsecret", &n, "abc");
        match users().respond(CLIENTS, &n, ok.as_bytes()) {
            Step::Success { user, token } => {
                assert_eq!(user, "bob");
                assert!(token.starts_with(b"rspauth="));
                assert_eq!(token.len(), 8 + 32);
            }
            other => panic!("{other:?}"),
        }
        let bad = client_response("bob", "guess", &n, "abc");
        assert_eq!(
            users().respond(CLIENTS, &n, bad.as_bytes()),
            Step::Failure("DIGEST-MD5: Mismatched response".into())
        );
        let nobody = client_response("eve", "x", &n, "abc");
        assert!(
            matches!(users().respond(CLIENTS, &n, nobody.as_bytes()), Step::Failure(m) if m.contains("'eve' not found"))
        );
        let stale = client_response("bob", "bobsecret", &nonce([2; 30]), "abc");
        assert!(matches!(
            users().respond(CLIENTS, &n, stale.as_bytes()),
            Step::Failure(_)
        ));
    }

    #[test]
    fn malformed_responses_fail_without_panicking() {
        let n = nonce([3; 30]);
        for bad in [
            &b"garbage"[..],
            b"username=\"x",
            b"a=1,a=2",
            &[0xff, 0xfe],
            b"",
        ] {
            assert!(matches!(
                users().respond(CLIENTS, &n, bad),
                Step::Failure(_)
            ));
        }
    }

    #[test]
    fn the_learner_side_meets_the_server_side() {
        let n = nonce([9; 30]);
        let chal = challenge(QUORUM, &n);
        let (token, rspauth) =
            respond_to_challenge(QUORUM, "bob", "bobsecret", &chal, "cn0nce").unwrap();
        assert!(String::from_utf8_lossy(&token)
            .contains("digest-uri=\"zookeeper-quorum/zk-quorum-sasl-md5\""));
        match users().respond(QUORUM, &n, &token) {
            Step::Success { user, token } => {
                assert_eq!(user, "bob");
                assert_eq!(token, rspauth);
            }
            other => panic!("{other:?}"),
        }
        // The client port's realm is another service.
        assert!(matches!(
            users().respond(CLIENTS, &n, &token),
            Step::Failure(_)
        ));
    }

    #[test]
    fn authorization_ids_drop_host_and_realm_on_request() {
        assert_eq!(authorization_id("bob", true, true), "bob");
        assert_eq!(
            authorization_id("zk/host@EXAMPLE.COM", false, false),
            "zk/host@EXAMPLE.COM"
        );
        assert_eq!(
            authorization_id("zk/host@EXAMPLE.COM", true, false),
            "zk@EXAMPLE.COM"
        );
        assert_eq!(authorization_id("zk/host@EXAMPLE.COM", true, true), "zk");
    }
}
