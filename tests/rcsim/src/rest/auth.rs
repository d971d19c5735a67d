//! Logging in, as Rocket.Chat does it, shared by DDP `login` and REST `POST /api/v1/login`:
//!
//! * the login forms: `{resume}`, `{user, password}` (digest or plain), `{ldap: true, username,
//!   ldapPass}`, and the two-factor wrapper `{totp: {login, code}}`;
//! * the server's REST rewrite (`loginCompatibility`): `{user|username|email, password, code}`
//!   becomes the LDAP form when `LDAP_Enable` is on, and is wrapped in `{totp}` with a code;
//! * two-factor checks with the server's error shapes (`checkCodeForUser`): `totp-required`,
//!   `totp-invalid`, `totp-max-attempts`, each with `details.method`, `availableMethods` and,
//!   for e-mail, `codeGenerated` — resume logins (personal access tokens too) skip them;
//! * the EE `ddp-streamer` endpoint, which takes only `{resume}`, and the 9.0 mode's DDP surface
//!   ([`ddp_refuses`]).

use serde_json::{json, Map, Value};

use crate::config::{totp, Credential, Mode};
use crate::ddp::{now_ms, MeteorError};
use crate::sim::Sim;
use crate::state::sha256_hex;

/// Meteor's reply to an unknown or expired resume token.
pub const RESUME_FAILED: &str = "You've been logged out by the server. Please log in again.";
/// E-mail codes live an hour (`Accounts_TwoFactorAuthentication_By_Email_Code_Expiration`).
const EMAIL_CODE_MS: i64 = 3_600_000;

/// A successful login.
pub struct Granted {
    /// The user.
    pub uid: String,
    /// `resume`, `password` or `ldap`.
    pub kind: &'static str,
    /// The token presented, for resume logins (a new one is issued otherwise).
    pub resumed: Option<Credential>,
    /// Expiry of a resumed session token (`None` for personal access tokens).
    pub expires: Option<i64>,
}

/// Checks a login's options (`params[0]` of DDP `login`). `ddp` selects the endpoint's
/// restrictions (EE, 9.0 mode).
pub fn check(sim: &Sim, opts: &Map<String, Value>, ddp: bool) -> Result<Granted, MeteorError> {
    if let Some(resume) = opts.get("resume") {
        return resume_login(sim, resume);
    }
    if ddp && (sim.cfg.ddp_resume_only || sim.cfg.rest_only_ddp) {
        // The ddp-streamer's `Account.login` knows no other form: it answers as for a bad token.
        return Err(MeteorError::new(403, RESUME_FAILED));
    }
    let (login, code) = match opts.get("totp") {
        Some(Value::Object(t)) => {
            let code = t.get("code").and_then(Value::as_str).unwrap_or("");
            match t.get("login") {
                Some(Value::Object(l)) if !code.is_empty() => (l, Some(code)),
                _ => return Err(MeteorError::match_failed()),
            }
        }
        Some(_) => return Err(MeteorError::match_failed()),
        None => (opts, None),
    };
    let (uid, kind) = if login.get("ldap") == Some(&Value::Bool(true)) {
        (ldap_login(sim, login)?, "ldap")
    } else if let (Some(user), Some(password)) = (login.get("user"), login.get("password")) {
        (password_login(sim, user, password)?, "password")
    } else {
        return Err(MeteorError::new(
            400,
            "Unrecognized options for login request",
        ));
    };
    check_second_factor(sim, &uid, code)?;
    Ok(Granted {
        uid,
        kind,
        resumed: None,
        expires: None,
    })
}

fn resume_login(sim: &Sim, resume: &Value) -> Result<Granted, MeteorError> {
    let Some(resume) = resume.as_str() else {
        return Err(MeteorError::match_failed());
    };
    let st = sim.lock();
    let entry = st
        .token(resume)
        .cloned()
        .ok_or_else(|| MeteorError::new(403, RESUME_FAILED))?;
    if !entry.personal && entry.expires_ms < now_ms() {
        return Err(MeteorError::new(403, RESUME_FAILED));
    }
    Ok(Granted {
        uid: entry.uid,
        kind: "resume",
        resumed: Some(Credential::new(resume)),
        expires: (!entry.personal).then_some(entry.expires_ms),
    })
}

/// Resolves `{username}` / `{email}` / `{id}` (or a plain username) and compares the password
/// (digest or plain). LDAP-only accounts have no local password.
fn password_login(sim: &Sim, user: &Value, password: &Value) -> Result<String, MeteorError> {
    let st = sim.lock();
    let found = match user {
        Value::String(name) => st.user_by_name(name),
        Value::Object(o) => {
            if let Some(name) = o.get("username").and_then(Value::as_str) {
                st.user_by_name(name)
            } else if let Some(id) = o.get("id").and_then(Value::as_str) {
                st.user(id)
            } else {
                // Users have no e-mail addresses in the simulator.
                None
            }
        }
        _ => return Err(MeteorError::match_failed()),
    };
    let Some(found) = found else {
        return Err(MeteorError::new(403, "User not found"));
    };
    let digest = match password {
        Value::String(plain) => sha256_hex(plain),
        Value::Object(o) => {
            let algorithm = o.get("algorithm").and_then(Value::as_str);
            match (o.get("digest").and_then(Value::as_str), algorithm) {
                (Some(d), Some("sha-256")) => d.to_ascii_lowercase(),
                _ => return Err(MeteorError::match_failed()),
            }
        }
        _ => return Err(MeteorError::match_failed()),
    };
    if found.ldap {
        return Err(MeteorError::new(403, "User has no password set"));
    }
    if digest != sha256_hex(found.password.expose()) {
        return Err(MeteorError::new(403, "Incorrect password"));
    }
    Ok(found.id.clone())
}

/// `{ldap: true, username, ldapPass}`: the directory has LDAP users; with `LDAP_Login_Fallback`
/// (on by default) local accounts log in with their local password.
fn ldap_login(sim: &Sim, login: &Map<String, Value>) -> Result<String, MeteorError> {
    if !sim.cfg.ldap_enable {
        return Err(MeteorError::new(
            400,
            "Unrecognized options for login request",
        ));
    }
    let username = login.get("username").and_then(Value::as_str).unwrap_or("");
    let pass = login.get("ldapPass");
    let st = sim.lock();
    let Some(user) = st.user_by_name(username) else {
        return Err(MeteorError::new(403, "User not found"));
    };
    let plain = match pass {
        Some(Value::String(p)) => sha256_hex(p),
        Some(Value::Object(o)) => o
            .get("digest")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase(),
        _ => return Err(MeteorError::match_failed()),
    };
    if plain != sha256_hex(user.password.expose()) {
        return Err(MeteorError::new(403, "LDAP Authentication failed"));
    }
    Ok(user.id.clone())
}

/// `checkCodeForUser` with `disablePasswordFallback`: TOTP first if the user has it, else e-mail.
fn check_second_factor(sim: &Sim, uid: &str, code: Option<&str>) -> Result<(), MeteorError> {
    let mut st = sim.lock();
    let Some(user) = st.user_mut(uid) else {
        return Ok(());
    };
    let mut available = Vec::new();
    if user.totp_secret.is_some() {
        available.push("totp");
    }
    if user.email_2fa {
        available.push("email");
    }
    let Some(method) = available.first().copied() else {
        return Ok(());
    };
    let max = sim.cfg.email_code_max_attempts;
    let mut data = Map::new();
    if method == "email" {
        // processInvalidCode: a new code unless one with > 5 min left and attempts to spare.
        let valid = user
            .email_code
            .as_ref()
            .is_some_and(|(_, exp, wrong)| *exp > now_ms() + 300_000 && *wrong < max);
        if valid {
            data.insert("codeGenerated".into(), json!(false));
        } else {
            let digits = crate::ddp::random_token()
                .bytes()
                .filter(u8::is_ascii_digit)
                .chain(std::iter::repeat(b'7'))
                .take(6)
                .collect::<Vec<u8>>();
            let new = Credential::new(String::from_utf8_lossy(&digits).into_owned());
            send_email(sim, &user.username, &new);
            user.email_code = Some((new, now_ms() + EMAIL_CODE_MS, 0));
            data.insert("codeGenerated".into(), json!(true));
        }
        data.insert("emailOrUsername".into(), json!(user.username));
    } else {
        data.insert("codeGenerated".into(), json!(false));
    }
    let details = |data: &Map<String, Value>| {
        let mut d = data.clone();
        d.insert("method".into(), json!(method));
        d.insert("availableMethods".into(), json!(available));
        Value::Object(d)
    };
    let Some(code) = code else {
        return Err(MeteorError::new("totp-required", "TOTP Required").with_details(details(&data)));
    };
    let (valid, too_many) = if method == "totp" {
        let secret = user
            .totp_secret
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec());
        let ok = secret.is_some_and(|s| totp::verify(&s, code, totp::now_secs()));
        (ok, false)
    } else {
        let digits: String = code.chars().filter(char::is_ascii_digit).collect();
        match user.email_code.as_mut() {
            Some((c, exp, _)) if *exp >= now_ms() && c.expose() == digits => (true, false),
            Some((_, _, wrong)) => {
                *wrong += 1;
                (false, *wrong >= max)
            }
            None => (false, false),
        }
    };
    if valid {
        if method == "email" {
            user.email_code = None;
        }
        return Ok(());
    }
    tracing::info!(uid, method, "two-factor code refused");
    if too_many {
        return Err(
            MeteorError::new("totp-max-attempts", "TOTP Maximun Failed Attempts Reached")
                .with_details(details(&data)),
        );
    }
    Err(MeteorError::new("totp-invalid", "TOTP Invalid").with_details(details(&data)))
}

/// "Sends" an e-mail code: the latest code lands in `<email_outbox>/<username>.code`.
fn send_email(sim: &Sim, username: &str, code: &Credential) {
    let Some(dir) = &sim.cfg.email_outbox else {
        tracing::info!(username, "e-mail 2FA code generated (no outbox configured)");
        return;
    };
    let path = dir.join(format!("{username}.code"));
    if let Err(e) = std::fs::write(&path, code.expose()) {
        tracing::warn!(error = %e, "cannot write the e-mail outbox");
    }
}

/// The REST rewrite of `loginCompatibility`: what `POST /api/v1/login`'s body becomes as options
/// of the `login` method.
pub fn rest_options(sim: &Sim, body: &Map<String, Value>) -> Map<String, Value> {
    let Some(password) = body.get("password") else {
        return body.clone();
    };
    let known = ["user", "username", "email", "password", "code"];
    if body.keys().any(|k| !known.contains(&k.as_str())) {
        return body.clone();
    }
    let s = |k: &str| body.get(k).and_then(Value::as_str);
    let (user, name) = if let Some(u) = s("user") {
        let user = if u.contains('@') {
            json!({ "email": u })
        } else {
            json!({ "username": u })
        };
        (user, u)
    } else if let Some(u) = s("username") {
        (json!({ "username": u }), u)
    } else if let Some(e) = s("email") {
        (json!({ "email": e }), e)
    } else {
        return body.clone();
    };
    let auth = json!({ "user": user, "password": password });
    let ldap = json!({ "ldap": true, "username": name, "ldapPass": password, "ldapOptions": {} });
    let code = s("code").filter(|c| !c.is_empty());
    let login = if sim.cfg.ldap_enable { ldap } else { auth };
    let opts = match code {
        Some(code) => json!({ "totp": { "code": code, "login": login } }),
        None => login,
    };
    match opts {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

/// The REST login's error body: `{status: "error", error, details, message}`; "User not found"
/// becomes "Unauthorized" as on the server.
pub fn rest_error(e: &MeteorError) -> Value {
    let reason = e.reason.clone().unwrap_or_default();
    if reason == "User not found" {
        return json!({ "status": "error", "error": "Unauthorized", "message": "Unauthorized" });
    }
    let mut body = json!({ "status": "error", "error": e.error.as_ref(), "message": reason });
    if let (Some(d), Some(o)) = (&e.details, body.as_object_mut()) {
        o.insert("details".into(), d.as_ref().clone());
    }
    body
}

/// The 9.0 mode's DDP surface: `Some(error)` for a method that is gone from DDP.
pub fn ddp_refuses(sim: &Sim, method: &str) -> Option<MeteorError> {
    if !sim.cfg.rest_only_ddp {
        return None;
    }
    let kept = method == "login"
        || method == "logout"
        || method.starts_with("stream-")
        || method.starts_with("UserPresence:")
        // The 7.x relay's methods have no REST twin (7.x mode only: 8.x has none at all).
        || (sim.cfg.mode == Mode::V7
            && ["sendMessage", "updateOTRAck", "deleteOldOTRMessages"].contains(&method));
    (!kept).then(|| MeteorError::method_not_found(method))
}
