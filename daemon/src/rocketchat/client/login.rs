//! Login: the `login` method's params (password digest or resume token), reading its result,
//! telling a refusal from a transient failure, and the post-login probes (who am I, what can
//! the server do).

use super::{rest, RestAuth};
use crate::rocketchat::capabilities::{self, ServerCapabilities};
use crate::rocketchat::ddp::DdpError;
use crate::secure::SecretString;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::time::Duration;
use zeroize::Zeroizing;

/// Lowercase hex SHA-256 of the UTF-8 password: what Meteor's `sha-256` login expects. The
/// digest is password-equivalent for this server, so it is zeroized too.
pub(super) fn password_digest(password: &SecretString) -> Zeroizing<String> {
    let hash: Zeroizing<[u8; 32]> =
        Zeroizing::new(Sha256::digest(password.expose().as_bytes()).into());
    let mut hex = Zeroizing::new(String::with_capacity(64));
    for b in hash.iter() {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// `[{"user":{"username":…},"password":{"digest":…,"algorithm":"sha-256"}}]`.
pub(super) fn password_params(username: &str, password: &SecretString) -> Vec<Value> {
    let digest = password_digest(password);
    vec![json!({
        "user": { "username": username },
        "password": { "digest": digest.as_str(), "algorithm": "sha-256" },
    })]
}

/// `[{"resume": token}]`.
pub(super) fn resume_params(token: &SecretString) -> Vec<Value> {
    vec![json!({ "resume": token.expose() })]
}

/// What a successful login returned.
pub(super) struct LoginOk {
    pub user_id: String,
    pub token: SecretString,
}

/// Reads `{"id":…,"token":…}` out of a login result, moving the token into a secret.
pub(super) fn read_login_result(result: Option<Value>) -> Option<LoginOk> {
    let mut result = result?;
    let user_id = result.get("id")?.as_str()?.to_owned();
    let token = match result.get_mut("token")? {
        Value::String(t) if !t.is_empty() => SecretString::new(std::mem::take(t)),
        _ => return None,
    };
    Some(LoginOk { user_id, token })
}

/// How to treat a login error.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum LoginFailure {
    /// The credentials (or token) were refused: do not retry blindly.
    Refused(String),
    /// Worth retrying later (rate limit, server trouble).
    Transient(String),
    /// A second factor is needed, or the code given was refused.
    SecondFactor(super::auth::SecondFactor),
}

pub(super) fn classify(error: &DdpError) -> LoginFailure {
    let code = error.code();
    if error.is_rate_limited() {
        return LoginFailure::Transient(format!("login rate-limited by the server: {error}"));
    }
    if code.starts_with('5') || code == "internal-server-error" {
        return LoginFailure::Transient(format!("server error during login: {error}"));
    }
    if let Some(kind) = super::auth::code_error(&code) {
        let details = (!error.details.is_null()).then_some(&error.details);
        return match super::auth::second_factor(kind, &code, &error.reason, details) {
            super::auth::RestAnswer::SecondFactor(sf) => LoginFailure::SecondFactor(sf),
            super::auth::RestAnswer::Refused(d) => LoginFailure::Refused(d),
            _ => LoginFailure::Refused(format!("the server refused the login: {error}")),
        };
    }
    LoginFailure::Refused(format!("the server refused the login: {error}"))
}

/// Our username from `GET /api/v1/me`, or `None` if that fails.
pub(super) async fn whoami(
    http: &reqwest::Client,
    base: &str,
    auth: &RestAuth,
    timeout: Duration,
) -> Option<String> {
    match rest::get(http, base, Some(auth), "me", &[], timeout).await {
        Ok(me) => me
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_owned),
        Err(e) => {
            tracing::warn!(error = %e, "could not read our username from /api/v1/me");
            None
        }
    }
}

/// Probes `/api/info` and the public `OTR_Enable` setting. Never fails: an unreachable probe
/// yields capabilities that say so.
pub(super) async fn probe_capabilities(
    http: &reqwest::Client,
    base: &str,
    auth: &RestAuth,
    timeout: Duration,
) -> ServerCapabilities {
    let info = match rest::get(http, base, Some(auth), "/api/info", &[], timeout).await {
        Ok(v) => v,
        Err(e) => return ServerCapabilities::unknown(&e.to_string()),
    };
    let version = capabilities::version_from_info(&info).unwrap_or_default();
    let query = [("_id", "OTR_Enable")];
    let otr_enable =
        match rest::get(http, base, Some(auth), "settings.public", &query, timeout).await {
            Ok(body) => capabilities::otr_enable_from_settings(&body),
            Err(e) => {
                // A server that removed the setting may also answer with an error: either way the
                // setting is not there for us.
                tracing::debug!(error = %e, "settings.public OTR_Enable not available");
                None
            }
        };
    ServerCapabilities::decide(&version, otr_enable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_the_worked_example() {
        // PROTOCOL §10: sha256("password").
        let d = password_digest(&SecretString::from("password"));
        assert_eq!(
            d.as_str(),
            "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
        );
        let p = password_params("alice-bot", &SecretString::from("password"));
        assert_eq!(
            p[0],
            json!({"user":{"username":"alice-bot"},"password":{"digest":d.as_str(),"algorithm":"sha-256"}})
        );
        assert_eq!(
            resume_params(&SecretString::from("tok")),
            vec![json!({"resume":"tok"})]
        );
    }

    #[test]
    fn reads_login_results() {
        let ok = read_login_result(Some(json!({"id":"u1","token":"t","type":"password"})));
        let ok = ok.map(|o| (o.user_id, o.token.expose().to_owned()));
        assert_eq!(ok, Some(("u1".into(), "t".into())));
        assert!(read_login_result(None).is_none());
        assert!(read_login_result(Some(json!({"id":"u1"}))).is_none());
        assert!(read_login_result(Some(json!({"id":"u1","token":""}))).is_none());
    }

    #[test]
    fn classifies_login_errors() {
        let e = |v: Value| DdpError::from_value(&v);
        assert!(matches!(
            classify(&e(json!({"error":403,"reason":"Incorrect password"}))),
            LoginFailure::Refused(_)
        ));
        // Without a method we can provide, a two-factor error is a refusal; with one, a prompt.
        assert!(matches!(
            classify(&e(json!({"error":"totp-required"}))),
            LoginFailure::Refused(_)
        ));
        assert!(matches!(
            classify(&e(
                json!({"error":"totp-required","reason":"TOTP Required","details":{"method":"totp"}})
            )),
            LoginFailure::SecondFactor(_)
        ));
        assert!(matches!(
            classify(&e(json!({"error":"too-many-requests"}))),
            LoginFailure::Transient(_)
        ));
        assert!(matches!(
            classify(&e(json!({"error":500}))),
            LoginFailure::Transient(_)
        ));
    }
}
