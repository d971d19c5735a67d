//! REST login (`POST /api/v1/login`): the request body, and reading the server's answer —
//! success, a second factor asked for (`totp-required`, `totp-invalid`, `totp-max-attempts`
//! with `details.method`), a refusal, a transient failure, or no REST login at all.
//!
//! Why REST first: the server rewrites a REST user/password login to LDAP when LDAP is on
//! (`loginCompatibility` in the server's API), and the microservices' DDP endpoint accepts only
//! `login {resume}` — so the token comes from here and DDP resumes with it.
//!
//! Everything here reads network input: the body is read up to [`MAX_ANSWER_BYTES`], every field
//! is checked for type and size, and nothing in an answer can make us panic or retry in a loop.

use super::login::LoginOk;
use crate::secure::SecretString;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use zeroize::Zeroizing;

/// Largest login answer read (the real one is a few KiB: the user document).
pub(super) const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Meteor ids are 17 characters; anything near this bound is not a user id.
const MAX_USER_ID: usize = 128;
/// Meteor login tokens are 43 characters; personal access tokens likewise.
const MAX_TOKEN: usize = 1024;
/// `details.method` is `totp` or `email`; a long one is junk.
const MAX_METHOD: usize = 32;

/// A second factor the server asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TwoFactorMethod {
    /// An authenticator app's time-based code (RFC 6238).
    Totp,
    /// A code the server sends by e-mail.
    Email,
}

impl TwoFactorMethod {
    /// `totp` / `email`, as the server names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Email => "email",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "totp" => Some(Self::Totp),
            "email" => Some(Self::Email),
            _ => None,
        }
    }
}

/// Which of the server's two-factor errors it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CodeError {
    /// `totp-required`: no code was given.
    Required,
    /// `totp-invalid`: the code was wrong (or expired).
    Invalid,
    /// `totp-max-attempts`: too many wrong codes.
    MaxAttempts,
}

/// A two-factor error, from REST or DDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SecondFactor {
    pub kind: CodeError,
    pub method: TwoFactorMethod,
    /// `details.codeGenerated`: the server sent a new code (e-mail) with this answer.
    pub code_sent: bool,
    /// The server's code and message, for people (`totp-invalid: TOTP Invalid`).
    pub said: String,
}

/// What a REST login answered.
pub(super) enum RestAnswer {
    /// Logged in; who we are comes from `data.me` when present.
    Ok(LoginOk, Option<Me>),
    /// A second factor is needed (or the one given was refused).
    SecondFactor(SecondFactor),
    /// The credentials were refused: no retry with the same ones.
    Refused(String),
    /// Worth retrying later (rate limit, server trouble, junk answer).
    Transient(String),
    /// The server has no REST login (404/405): fall back to DDP.
    Absent,
}

/// What `data.me` of a REST login says about us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Me {
    pub username: String,
    /// `me.ldap`: the account comes from LDAP (the server rewrote our login to LDAP).
    pub ldap: bool,
}

/// `{"user":…,"password":…,"code":…}` — what the server's `loginCompatibility` reads. The
/// password travels as is over TLS (REST login has no digest form that LDAP could use).
#[derive(Serialize)]
struct Body<'a> {
    user: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
}

/// The JSON body, in memory that is wiped when dropped (the copy handed to the HTTP client is
/// not ours to wipe).
pub(super) fn body(
    username: &str,
    password: &SecretString,
    code: Option<&SecretString>,
) -> Zeroizing<Vec<u8>> {
    let b = Body {
        user: username,
        password: password.expose(),
        code: code.map(SecretString::expose),
    };
    // Serialising strings into a Vec cannot fail.
    Zeroizing::new(serde_json::to_vec(&b).unwrap_or_default())
}

/// Posts the login and reads the answer (bounded).
pub(super) async fn post(
    http: &reqwest::Client,
    base: &str,
    mut body: Zeroizing<Vec<u8>>,
    timeout: Duration,
) -> RestAnswer {
    let req = http
        .post(format!("{base}/api/v1/login"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(std::mem::take(&mut *body))
        .timeout(timeout);
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let kind = if e.is_timeout() {
                "timed out"
            } else {
                "failed"
            };
            return RestAnswer::Transient(format!("REST login {kind}"));
        }
    };
    let status = resp.status().as_u16();
    let mut bytes = Zeroizing::new(Vec::new());
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return RestAnswer::Transient(format!(
                        "the REST login answer is larger than {} KiB",
                        MAX_ANSWER_BYTES / 1024
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return RestAnswer::Transient("the REST login answer was cut off".into()),
        }
    }
    read_answer(status, &bytes)
}

/// Reads a login answer: HTTP status and body bytes.
pub(super) fn read_answer(status: u16, bytes: &[u8]) -> RestAnswer {
    if status == 404 || status == 405 {
        return RestAnswer::Absent;
    }
    let body: Option<Value> = serde_json::from_slice(bytes).ok();
    if status == 429 {
        return RestAnswer::Transient("REST login rate-limited by the server".into());
    }
    if status >= 500 {
        return RestAnswer::Transient(format!("REST login: server error (HTTP {status})"));
    }
    let Some(mut body) = body else {
        // A 4xx page that is not the REST API's JSON (a proxy's, a DDP-only server's): no REST
        // login here. Refusals (401/403) are JSON on every Rocket.Chat.
        if (400..500).contains(&status) && status != 401 && status != 403 {
            return RestAnswer::Absent;
        }
        return RestAnswer::Transient(format!("REST login answered HTTP {status} without JSON"));
    };
    if (200..300).contains(&status) {
        return read_success(&mut body);
    }
    read_error(status, &body)
}

fn read_success(body: &mut Value) -> RestAnswer {
    let junk =
        || RestAnswer::Transient("the REST login answer had no valid user id or token".into());
    let Some(data) = body.get_mut("data") else {
        return junk();
    };
    let me = data.get("me").and_then(|m| {
        let username = m
            .get("username")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty() && u.len() <= 256)?;
        Some(Me {
            username: username.to_owned(),
            ldap: m.get("ldap").and_then(Value::as_bool).unwrap_or(false),
        })
    });
    let Some(user_id) = data
        .get("userId")
        .and_then(Value::as_str)
        .filter(|u| valid_id(u, MAX_USER_ID))
        .map(str::to_owned)
    else {
        return junk();
    };
    let token = match data.get_mut("authToken") {
        Some(Value::String(t)) if valid_id(t, MAX_TOKEN) => SecretString::new(std::mem::take(t)),
        Some(Value::String(t)) => {
            zeroize::Zeroize::zeroize(t);
            return junk();
        }
        _ => return junk(),
    };
    RestAnswer::Ok(LoginOk { user_id, token }, me)
}

/// A user id or token: non-empty, bounded, and only visible ASCII (it becomes an HTTP header).
pub(super) fn valid_id(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

fn read_error(status: u16, body: &Value) -> RestAnswer {
    let error = match body.get("error") {
        Some(Value::String(s)) => s.chars().take(64).collect::<String>(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let message: String = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    if let Some(kind) = code_error(&error) {
        return second_factor(kind, &error, &message, body.get("details"));
    }
    if error == "too-many-requests" || error.starts_with("error-too-many") {
        return RestAnswer::Transient(format!("REST login rate-limited: {message}"));
    }
    let said = match (error.is_empty(), message.is_empty()) {
        (true, true) => format!("HTTP {status}"),
        (false, true) => error,
        (true, false) => message,
        (false, false) if error == message => error,
        (false, false) => format!("{message} [{error}]"),
    };
    RestAnswer::Refused(format!("the server refused the login: {said}"))
}

pub(super) fn code_error(code: &str) -> Option<CodeError> {
    match code {
        "totp-required" => Some(CodeError::Required),
        "totp-invalid" => Some(CodeError::Invalid),
        "totp-max-attempts" => Some(CodeError::MaxAttempts),
        _ => None,
    }
}

/// Reads `details` of a two-factor error (REST body or DDP error). An unknown method fails
/// closed: we cannot provide it, and saying so beats guessing.
pub(super) fn second_factor(
    kind: CodeError,
    code: &str,
    message: &str,
    details: Option<&Value>,
) -> RestAnswer {
    let method = details
        .and_then(|d| d.get("method"))
        .and_then(Value::as_str)
        .filter(|m| m.len() <= MAX_METHOD);
    let Some(method) = method.and_then(TwoFactorMethod::parse) else {
        let named = method.unwrap_or("(none)");
        return RestAnswer::Refused(format!(
            "the server asks for a second factor otrd cannot provide (method {named:?}); use a \
             personal access token (README: SSO and personal access tokens)"
        ));
    };
    let code_sent = details
        .and_then(|d| d.get("codeGenerated"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    RestAnswer::SecondFactor(SecondFactor {
        kind,
        method,
        code_sent,
        said: if message.is_empty() {
            code.to_owned()
        } else {
            format!("{code}: {message}")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, v: Value) -> RestAnswer {
        read_answer(status, v.to_string().as_bytes())
    }

    #[test]
    fn body_has_the_code_only_when_given() {
        let pw = SecretString::from("pw");
        let b: Value = serde_json::from_slice(&body("alice", &pw, None)).unwrap_or_default();
        assert_eq!(b, json!({"user":"alice","password":"pw"}));
        let code = SecretString::from("123456");
        let b: Value = serde_json::from_slice(&body("alice", &pw, Some(&code))).unwrap_or_default();
        assert_eq!(b["code"], "123456");
    }

    #[test]
    fn reads_success() {
        let a = answer(
            200,
            json!({"status":"success","data":{"userId":"U1","authToken":"tok","me":{"username":"alice"}}}),
        );
        let RestAnswer::Ok(ok, name) = a else {
            panic!("not ok")
        };
        assert_eq!((ok.user_id.as_str(), ok.token.expose()), ("U1", "tok"));
        assert_eq!(
            name.map(|m| (m.username, m.ldap)),
            Some(("alice".into(), false))
        );
    }

    #[test]
    fn reads_the_servers_two_factor_errors() {
        let a = answer(
            401,
            json!({"status":"error","error":"totp-required","message":"TOTP Required",
                   "details":{"method":"email","codeGenerated":true,"availableMethods":["email"]}}),
        );
        let RestAnswer::SecondFactor(sf) = a else {
            panic!("not 2fa")
        };
        assert_eq!(
            (sf.kind, sf.method, sf.code_sent),
            (CodeError::Required, TwoFactorMethod::Email, true)
        );
        assert_eq!(sf.said, "totp-required: TOTP Required");
        let a = answer(
            401,
            json!({"status":"error","error":"totp-invalid","details":{"method":"totp"}}),
        );
        assert!(matches!(
            a,
            RestAnswer::SecondFactor(SecondFactor {
                kind: CodeError::Invalid,
                ..
            })
        ));
        let a = answer(
            401,
            json!({"error":"totp-max-attempts","details":{"method":"totp","availableMethods":[]}}),
        );
        assert!(matches!(
            a,
            RestAnswer::SecondFactor(SecondFactor {
                kind: CodeError::MaxAttempts,
                ..
            })
        ));
    }

    #[test]
    fn refusals_absence_and_trouble() {
        let a = answer(
            401,
            json!({"status":"error","error":"Unauthorized","message":"Unauthorized"}),
        );
        assert!(matches!(a, RestAnswer::Refused(ref d) if d.contains("Unauthorized")));
        assert!(matches!(answer(404, json!({})), RestAnswer::Absent));
        assert!(matches!(read_answer(405, b"<html>"), RestAnswer::Absent));
        assert!(matches!(answer(503, json!({})), RestAnswer::Transient(_)));
        assert!(matches!(answer(429, json!({})), RestAnswer::Transient(_)));
    }

    // The attacker's tests: whatever the server (or something in front of it) answers, we get a
    // bounded, typed outcome — never a panic, a token we cannot use, or a retry storm.
    #[test]
    fn malformed_answers_fail_closed() {
        assert!(matches!(
            read_answer(200, b"not json"),
            RestAnswer::Transient(_)
        ));
        assert!(matches!(read_answer(200, b""), RestAnswer::Transient(_)));
        assert!(matches!(
            answer(200, json!([1, 2])),
            RestAnswer::Transient(_)
        ));
        assert!(matches!(
            answer(200, json!({"data":null})),
            RestAnswer::Transient(_)
        ));
        assert!(matches!(
            answer(200, json!({"data":{"userId":7,"authToken":"t"}})),
            RestAnswer::Transient(_)
        ));
        assert!(matches!(
            answer(200, json!({"data":{"userId":"U1","authToken":""}})),
            RestAnswer::Transient(_)
        ));
        // A token that cannot be an HTTP header, or absurdly long.
        assert!(matches!(
            answer(
                200,
                json!({"data":{"userId":"U1","authToken":"a\r\nX-Evil: 1"}})
            ),
            RestAnswer::Transient(_)
        ));
        let long = "t".repeat(MAX_TOKEN + 1);
        assert!(matches!(
            answer(200, json!({"data":{"userId":"U1","authToken":long}})),
            RestAnswer::Transient(_)
        ));
        let long_id = "u".repeat(MAX_USER_ID + 1);
        assert!(matches!(
            answer(200, json!({"data":{"userId":long_id,"authToken":"t"}})),
            RestAnswer::Transient(_)
        ));
        // Two-factor errors with a method we cannot provide, none, or a huge one: refused once.
        for details in [
            json!({"method":"sms"}),
            json!({}),
            json!("x"),
            json!({"method":"totp".repeat(100)}),
            json!({"method":["totp"]}),
        ] {
            let a = answer(401, json!({"error":"totp-required","details":details}));
            assert!(matches!(a, RestAnswer::Refused(_)), "{details}");
        }
        // A huge error text is cut for people.
        let a = answer(
            401,
            json!({"error":"x".repeat(100_000),"message":"m".repeat(100_000)}),
        );
        let RestAnswer::Refused(d) = a else {
            panic!("not refused")
        };
        assert!(d.len() < 400, "{}", d.len());
        assert!(matches!(
            answer(401, json!({"error":{"nested":1}})),
            RestAnswer::Refused(_)
        ));
    }
}
