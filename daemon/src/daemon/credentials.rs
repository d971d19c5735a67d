//! Turning the config's secret command into login credentials, at startup.

use crate::config::{self, Config, LoginSecret};
use crate::rocketchat::Credentials;
use anyhow::Context;
use std::path::Path;

/// Runs `password_command` or `token_command` (no shell) and returns the credentials.
pub async fn obtain(config: &Config, config_path: &Path) -> anyhow::Result<Credentials> {
    let secret = config::login_secret(config)
        .with_context(|| format!("{}: the account's secret command", config_path.display()))?;
    let credentials = match secret {
        LoginSecret::Password(command) => Credentials::Password {
            username: config.account.username.clone(),
            password: command
                .run()
                .await
                .context("account.password_command did not yield a password")?,
        },
        LoginSecret::Token { user_id, command } => Credentials::Token {
            user_id,
            token: command
                .run()
                .await
                .context("account.token_command did not yield a token")?,
        },
    };
    Ok(credentials)
}
