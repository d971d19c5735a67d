//! Reading and checking the config file, with errors that name the file, the line and the key.

use super::secret_command::{SecretCommand, SplitError};
use super::Config;
use std::path::{Path, PathBuf};

/// Why the config could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file does not exist.
    #[error(
        "no config file at {path}; create it with at least [server] url and [account] username \
         and password_command (see the README)"
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrongly typed value.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, as the TOML parser says it (names the key).
        message: String,
    },
    /// The file parses but a value is missing or does not make sense.
    #[error("{}: `{key}`: {reason}", location(.path, *.line))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted key, e.g. `account.username`.
        key: String,
        /// The key's line, when the key is present in the file.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
}

fn location(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

/// How the daemon logs in: both variants hold commands, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginSecret {
    /// `password_command`: stdout is the password.
    Password(SecretCommand),
    /// `user_id` + `token_command`: stdout is a personal access token.
    Token {
        /// The user id the token belongs to.
        user_id: String,
        /// The command printing the token.
        command: SecretCommand,
    },
}

/// Reads, parses and checks the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ConfigError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    parse(path, &text)
}

/// Parses and checks config text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| line_column(text, span.start))
            .unwrap_or((1, 1));
        let mut message = e.message().trim_end().to_owned();
        let offset = e.span().map_or(0, |s| s.start);
        let table = enclosing_table(text, offset);
        match (key_at(text, offset), &table) {
            (Some(key), Some(table)) => message = format!("{message} (key `{table}.{key}`)"),
            (Some(key), None) => message = format!("{message} (key `{key}`)"),
            // serde's "missing field `url`" does not say in which table: the span points at it.
            (None, Some(table)) => message = format!("{message} in [{table}]"),
            (None, None) => {}
        }
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    })?;
    validate(path, text, &config)?;
    Ok(config)
}

/// The account's login secret command, parsed. Only valid on a checked config.
pub fn login_secret(config: &Config) -> Result<LoginSecret, SplitError> {
    let account = &config.account;
    match (
        &account.password_command,
        &account.token_command,
        &account.user_id,
    ) {
        (_, Some(token), Some(user_id)) => Ok(LoginSecret::Token {
            user_id: user_id.clone(),
            command: SecretCommand::parse(token)?,
        }),
        (Some(password), _, _) => Ok(LoginSecret::Password(SecretCommand::parse(password)?)),
        _ => Err(SplitError::Empty),
    }
}

fn validate(path: &Path, text: &str, config: &Config) -> Result<(), ConfigError> {
    let invalid = |key: &str, reason: &str| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.to_owned(),
        line: key_line(text, key),
        reason: reason.to_owned(),
    };
    let url = config.server.url.trim();
    if url.is_empty() {
        return Err(invalid(
            "server.url",
            "missing (required), e.g. \"https://chat.example.com\"",
        ));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(invalid(
            "server.url",
            "must start with https:// (or http:// for a local test server)",
        ));
    }
    // Plain http would carry the login (password digest, token) and every signal in the clear:
    // only a server on this machine may be reached that way.
    if let Some(rest) = url.strip_prefix("http://") {
        if !is_loopback_authority(rest) {
            return Err(invalid(
                "server.url",
                "http:// is refused except for a server on this machine (localhost, 127.0.0.1, \
                 [::1]): the login and every OTR signal would cross the network in the clear; \
                 use https://",
            ));
        }
    }
    if config.account.username.trim().is_empty() {
        return Err(invalid("account.username", "missing (required)"));
    }
    let account = &config.account;
    match (&account.password_command, &account.token_command) {
        (None, None) => {
            return Err(invalid(
                "account.password_command",
                "missing: set password_command, or user_id and token_command",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "account.token_command",
                "set either password_command or token_command, not both",
            ))
        }
        (Some(_), None) if account.user_id.is_some() => {
            return Err(invalid("account.user_id", "only used with token_command"))
        }
        (None, Some(_))
            if account
                .user_id
                .as_deref()
                .is_none_or(|u| u.trim().is_empty()) =>
        {
            return Err(invalid("account.user_id", "required with token_command"))
        }
        _ => {}
    }
    if account.totp_command.is_some() && account.password_command.is_none() {
        return Err(invalid(
            "account.totp_command",
            "only used with password_command (a personal access token needs no second factor)",
        ));
    }
    for (key, command) in [
        ("account.password_command", &account.password_command),
        ("account.token_command", &account.token_command),
        ("account.totp_command", &account.totp_command),
    ] {
        if let Some(command) = command {
            SecretCommand::parse(command).map_err(|e| invalid(key, &e.to_string()))?;
        }
    }
    if config.transport.calls_per_window == 0 {
        return Err(invalid(
            "transport.calls_per_window",
            "must be at least 1 (calls per window and method on the realtime relays)",
        ));
    }
    if config.transport.user_calls_per_window == 0 {
        return Err(invalid(
            "transport.user_calls_per_window",
            "must be at least 1 (calls per window, method and user on the realtime relays)",
        ));
    }
    let share = config.transport.share_for_other_clients;
    if !(0.0..1.0).contains(&share) {
        return Err(invalid(
            "transport.share_for_other_clients",
            "must be at least 0 and below 1 (the share of the per-user calls left to your other \
             clients)",
        ));
    }
    let own = f64::from(config.transport.user_calls_per_window) * (1.0 - share);
    if own < 1.0 {
        return Err(invalid(
            "transport.share_for_other_clients",
            "leaves otrd no call of user_calls_per_window",
        ));
    }
    if config.transport.window_secs == 0 {
        return Err(invalid(
            "transport.window_secs",
            "must be at least 1 (seconds)",
        ));
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The name of the `[table]` whose header is at or above `offset`.
fn enclosing_table(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    text[..line_end].lines().rev().find_map(|l| {
        l.trim()
            .strip_prefix('[')
            .and_then(|l| l.split(']').next())
            .map(|t| t.trim().to_owned())
    })
}

/// The key assigned on the line holding `offset` (`name = value`), if that line is one.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[start..end].trim();
    if line.starts_with('[') {
        return None;
    }
    let (name, _) = line.split_once('=')?;
    let name = name.trim().trim_matches('"');
    (!name.is_empty()).then(|| name.to_owned())
}

/// The line on which a dotted key (`account.user_id`) is set, if it is; best effort by text.
/// True for `localhost`, `127.x.y.z` or `[::1]`, with an optional port and path.
fn is_loopback_authority(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // No userinfo: `http://localhost@evil.example` names evil.example.
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, port)) if port.is_empty() || port.starts_with(':') => h,
            _ => return false,
        },
        None => authority.split(':').next().unwrap_or(""),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn key_line(text: &str, dotted: &str) -> Option<usize> {
    let (table, key) = dotted.rsplit_once('.')?;
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[') {
            current = rest.split(']').next().unwrap_or("").trim().to_owned();
            continue;
        }
        let name = line.split('=').next().unwrap_or("").trim();
        if current == table && line.contains('=') && name == key {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
url = "https://chat.example.com"

[account]
username = "alice"
password_command = "pass show chat"
"#;

    fn err(text: &str) -> String {
        parse(Path::new("/cfg/config.toml"), text)
            .expect_err("should be rejected")
            .to_string()
    }

    #[test]
    fn good_config_loads_with_defaults() {
        let cfg = parse(Path::new("c.toml"), GOOD).expect("loads");
        assert_eq!(cfg.account.username, "alice");
        assert_eq!(cfg.policy.scrollback, 200);
        let secret = login_secret(&cfg).expect("command");
        assert_eq!(
            secret,
            LoginSecret::Password(SecretCommand::parse("pass show chat").expect("parses"))
        );
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = err(&format!("{GOOD}\n[policy]\nauto_acept = true\n"));
        assert!(e.starts_with("/cfg/config.toml:10:"), "{e}");
        assert!(e.contains("auto_acept"), "{e}");
        assert!(e.contains("`policy.auto_acept`"), "{e}");
    }

    #[test]
    fn transport_pacing_has_defaults_and_bad_values_name_the_key() {
        let cfg = parse(Path::new("c.toml"), GOOD).expect("loads");
        assert_eq!(cfg.transport.calls_per_window, 40);
        assert_eq!(cfg.transport.window_secs, 40);
        let cfg = parse(
            Path::new("c.toml"),
            &format!("{GOOD}\n[transport]\ncalls_per_window = 100\nwindow_secs = 60\n"),
        )
        .expect("loads");
        assert_eq!(cfg.transport.calls_per_window, 100);
        assert_eq!(cfg.transport.window_secs, 60);
        let e = err(&format!("{GOOD}\n[transport]\ncalls_per_window = 0\n"));
        assert!(e.contains("transport.calls_per_window"), "{e}");
        assert!(e.contains(":10"), "{e}");
        let e = err(&format!("{GOOD}\n[transport]\nwindow_secs = 0\n"));
        assert!(e.contains("transport.window_secs"), "{e}");
        let e = err(&format!("{GOOD}\n[transport]\nwindow_secs = -5\n"));
        assert!(e.contains("transport.window_secs"), "{e}");
        let e = err(&format!("{GOOD}\n[transport]\ncalls = 5\n"));
        assert!(e.contains("`transport.calls`"), "{e}");
    }

    #[test]
    fn the_share_left_to_other_clients_has_a_default_and_bounds() {
        let cfg = parse(Path::new("c.toml"), GOOD).expect("loads");
        assert_eq!(cfg.transport.user_calls_per_window, 80);
        assert_eq!(cfg.transport.share_for_other_clients, 0.5);
        let cfg = parse(
            Path::new("c.toml"),
            &format!(
                "{GOOD}\n[transport]\nuser_calls_per_window = 120\nshare_for_other_clients = 0.25\n"
            ),
        )
        .expect("loads");
        assert_eq!(cfg.transport.user_calls_per_window, 120);
        assert_eq!(cfg.transport.share_for_other_clients, 0.25);
        for bad in ["1.0", "-0.1", "1.5", "nan"] {
            let e = err(&format!(
                "{GOOD}\n[transport]\nshare_for_other_clients = {bad}\n"
            ));
            assert!(
                e.contains("transport.share_for_other_clients"),
                "{bad}: {e}"
            );
        }
        let e = err(&format!(
            "{GOOD}\n[transport]\nuser_calls_per_window = 1\nshare_for_other_clients = 0.5\n"
        ));
        assert!(e.contains("leaves otrd no call"), "{e}");
        let e = err(&format!("{GOOD}\n[transport]\nuser_calls_per_window = 0\n"));
        assert!(e.contains("transport.user_calls_per_window"), "{e}");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = err("[server]\nurl = \"https://x\"\n[account\n");
        assert!(e.starts_with("/cfg/config.toml:3:"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = err(&format!("{GOOD}\n[policy]\nscrollback = \"many\"\n"));
        assert!(e.contains(":10:"), "{e}");
        assert!(e.contains("`policy.scrollback`"), "{e}");
    }

    #[test]
    fn missing_required_keys_are_named() {
        let e = err("[account]\nusername = \"a\"\npassword_command = \"x\"\n");
        assert!(e.contains("`server.url`"), "{e}");
        let e = err("[server]\nurl = \"https://x\"\n[account]\npassword_command = \"x\"\n");
        assert!(e.contains("username"), "{e}");
        assert!(e.contains("[account]"), "{e}");
        let e = err("[server]\nurl = \"https://x\"\n[account]\nusername = \"a\"\n");
        assert!(e.contains("password_command"), "{e}");
    }

    #[test]
    fn exactly_one_secret_command() {
        let both = format!("{GOOD}token_command = \"t\"\nuser_id = \"u\"\n");
        let e = err(&both);
        assert!(e.contains("`account.token_command`"), "{e}");
        assert!(e.contains("config.toml:8"), "{e}");
        let no_user =
            "[server]\nurl = \"https://x\"\n[account]\nusername = \"a\"\ntoken_command = \"t\"\n";
        assert!(err(no_user).contains("`account.user_id`"));
        let token = format!("{no_user}user_id = \"U1\"\n");
        let cfg = parse(Path::new("c.toml"), &token).expect("token config loads");
        assert!(
            matches!(login_secret(&cfg), Ok(LoginSecret::Token { user_id, .. }) if user_id == "U1")
        );
    }

    #[test]
    fn totp_command_is_checked_and_named() {
        let ok = format!("{GOOD}totp_command = \"oathtool --totp -b ABC\"\n");
        let cfg = parse(Path::new("c.toml"), &ok).map_err(|e| e.to_string());
        assert_eq!(
            cfg.ok().and_then(|c| c.account.totp_command).as_deref(),
            Some("oathtool --totp -b ABC")
        );
        let bad = format!("{GOOD}totp_command = \"pass 'otp\"\n");
        let e = err(&bad);
        assert!(e.contains("`account.totp_command`"), "{e}");
        assert!(e.contains("config.toml:8"), "the line is named: {e}");
        let token = "[server]\nurl = \"https://x\"\n[account]\nusername = \"a\"\ntoken_command = \"t\"\nuser_id = \"U\"\ntotp_command = \"x\"\n";
        let e = err(token);
        assert!(
            e.contains("`account.totp_command`") && e.contains("only used with password_command"),
            "{e}"
        );
    }

    #[test]
    fn bad_password_command_is_named() {
        let e = err("[server]\nurl = \"https://x\"\n[account]\nusername = \"a\"\npassword_command = \"pass 'show\"\n");
        assert!(e.contains("`account.password_command`"), "{e}");
        assert!(e.contains("config.toml:5"), "{e}");
        assert!(e.contains("unterminated"), "{e}");
    }

    #[test]
    fn plain_http_is_refused_unless_the_server_is_on_this_machine() {
        let cfg = |url: &str| {
            format!("[server]\nurl = \"{url}\"\n[account]\nusername = \"a\"\npassword_command = \"x\"\n")
        };
        for bad in [
            "http://chat.example.com",
            "http://10.0.0.1:3000",
            "http://localhost@evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example/",
            "http://[::1].evil",
        ] {
            let e = err(&cfg(bad));
            assert!(e.contains("http:// is refused"), "{bad}: {e}");
        }
        for good in [
            "http://127.0.0.1:3000",
            "http://localhost:8080/",
            "http://[::1]:3000",
            "http://127.1.2.3",
            "https://chat.example.com",
        ] {
            assert!(
                is_loopback_authority(good.trim_start_matches("http://"))
                    || good.starts_with("https"),
                "{good}"
            );
        }
    }

    #[test]
    fn bad_url_is_rejected() {
        let e = err("[server]\nurl = \"chat.example.com\"\n[account]\nusername = \"a\"\npassword_command = \"x\"\n");
        assert!(e.contains("config.toml:2: `server.url`"), "{e}");
    }

    #[test]
    fn missing_file_says_so() {
        let e = load(Path::new("/nonexistent/otrd/config.toml")).expect_err("missing");
        assert!(matches!(e, ConfigError::Missing { .. }));
        assert!(e.to_string().contains("/nonexistent/otrd/config.toml"));
    }
}
