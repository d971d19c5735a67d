//! The commands that yield the account's secret (`password_command`, `token_command`).
//!
//! A secret never sits in the config file: the file names a command and its stdout is the secret.
//! The command is **not** run through a shell. Its text is split into an argv with simple
//! POSIX-like quoting rules and the program is executed directly:
//!
//! - whitespace separates words;
//! - `'single quotes'` keep everything literally up to the next `'`;
//! - `"double quotes"` keep everything literally, except that a backslash escapes `"`, `\`, `$`
//!   and `` ` `` (as in a shell; other backslashes stay);
//! - outside quotes a backslash makes the next character literal;
//! - nothing else has a meaning: no globbing, no `$VARIABLES`, no `~`, no `;`, `|`, `&&` or
//!   redirections (they are ordinary characters of a word).
//!
//! The program runs with stdin from `/dev/null` and stderr discarded (a misbehaving program could
//! print the secret there, and stderr ends up in the journal). Its stdout becomes a
//! [`SecretString`] with one trailing newline removed. A failure names the program and its exit
//! status, never anything it printed.

use crate::secure::SecretString;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use zeroize::Zeroizing;

/// The most a secret command may print; a password or token is far smaller.
const MAX_OUTPUT: usize = 64 * 1024;

/// How long the command may take; generous because it may ask for a GPG passphrase.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Why a command line could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// Nothing but whitespace.
    #[error("the command is empty")]
    Empty,
    /// A `'` or `"` was opened and never closed.
    #[error("unterminated {0} quote")]
    UnterminatedQuote(&'static str),
    /// The text ends in a lone backslash.
    #[error("the command ends with a lone backslash")]
    TrailingBackslash,
}

/// Splits a command line into words by the rules in the module docs.
pub fn split_command(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // True once the current word has started, so `''` yields an empty word.
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(SplitError::UnterminatedQuote("single")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(SplitError::UnterminatedQuote("double")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(SplitError::UnterminatedQuote("double")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(SplitError::TrailingBackslash),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(words)
}

/// Why running a secret command failed. Messages name the program, never its output.
#[derive(Debug, thiserror::Error)]
pub enum SecretCommandError {
    /// The program could not be started.
    #[error("could not run `{program}`: {source}")]
    Spawn {
        /// argv\[0\].
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading its output or waiting for it failed.
    #[error("reading the output of `{program}` failed: {source}")]
    Io {
        /// argv\[0\].
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It exited unsuccessfully.
    #[error("`{program}` failed ({status}); run it by hand to see why")]
    Failed {
        /// argv\[0\].
        program: String,
        /// Exit status as the OS reports it.
        status: std::process::ExitStatus,
    },
    /// It printed nothing.
    #[error("`{program}` printed nothing on stdout; expected the secret")]
    Empty {
        /// argv\[0\].
        program: String,
    },
    /// It printed more than a secret could be.
    #[error("`{program}` printed more than {MAX_OUTPUT} bytes; expected only the secret")]
    TooLong {
        /// argv\[0\].
        program: String,
    },
    /// Its output is not UTF-8.
    #[error("the output of `{program}` is not UTF-8 text")]
    NotUtf8 {
        /// argv\[0\].
        program: String,
    },
    /// It did not finish in time.
    #[error("`{program}` did not finish within {} s", TIMEOUT.as_secs())]
    Timeout {
        /// argv\[0\].
        program: String,
    },
}

/// A parsed secret command, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretCommand {
    program: String,
    args: Vec<String>,
}

impl SecretCommand {
    /// Splits `line` into the program and its arguments.
    pub fn parse(line: &str) -> Result<Self, SplitError> {
        let mut words = split_command(line)?.into_iter();
        let program = words.next().ok_or(SplitError::Empty)?;
        Ok(Self {
            program,
            args: words.collect(),
        })
    }

    /// argv\[0\], for messages.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments after the program.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Runs the program (no shell) and returns its stdout, one trailing newline removed.
    pub async fn run(&self) -> Result<SecretString, SecretCommandError> {
        let program = || self.program.clone();
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SecretCommandError::Spawn {
                program: program(),
                source,
            })?;
        let mut stdout = child.stdout.take().ok_or_else(|| SecretCommandError::Io {
            program: program(),
            source: std::io::Error::other("no stdout pipe"),
        })?;
        // Reserved up front so reading never reallocates and leaves copies of the secret behind.
        let mut out = Zeroizing::new(Vec::with_capacity(MAX_OUTPUT + 1));
        let work = async {
            (&mut stdout)
                .take(MAX_OUTPUT as u64 + 1)
                .read_to_end(&mut out)
                .await?;
            child.wait().await
        };
        let status = match tokio::time::timeout(TIMEOUT, work).await {
            Err(_) => return Err(SecretCommandError::Timeout { program: program() }),
            Ok(Err(source)) => {
                return Err(SecretCommandError::Io {
                    program: program(),
                    source,
                })
            }
            Ok(Ok(status)) => status,
        };
        if !status.success() {
            return Err(SecretCommandError::Failed {
                program: program(),
                status,
            });
        }
        if out.len() > MAX_OUTPUT {
            return Err(SecretCommandError::TooLong { program: program() });
        }
        let text = std::str::from_utf8(&out)
            .map_err(|_| SecretCommandError::NotUtf8 { program: program() })?;
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        if text.is_empty() {
            return Err(SecretCommandError::Empty { program: program() });
        }
        Ok(SecretString::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_command(s).expect("splits")
    }

    #[test]
    fn splits_on_whitespace() {
        assert_eq!(split("pass show chat"), ["pass", "show", "chat"]);
        assert_eq!(split("  a\t b \n c "), ["a", "b", "c"]);
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(
            split(r#"cat 'my file' '$HOME' 'a\b'"#),
            ["cat", "my file", "$HOME", r"a\b"]
        );
        assert_eq!(split("x ''"), ["x", ""]);
    }

    #[test]
    fn double_quotes_escape_only_shell_specials() {
        assert_eq!(
            split(r#"echo "a \"b\" \\ \$x \n""#),
            ["echo", r#"a "b" \ $x \n"#]
        );
    }

    #[test]
    fn backslash_outside_quotes_escapes_next() {
        assert_eq!(split(r"a\ b c\'d"), ["a b", "c'd"]);
    }

    #[test]
    fn shell_operators_have_no_meaning() {
        assert_eq!(
            split("pass show chat; rm -rf ~ | tee $X && *"),
            ["pass", "show", "chat;", "rm", "-rf", "~", "|", "tee", "$X", "&&", "*"]
        );
    }

    #[test]
    fn adjacent_quoted_parts_join() {
        assert_eq!(split(r#"a'b c'"d e"f"#), ["ab cd ef"]);
    }

    #[test]
    fn errors() {
        assert_eq!(split_command("   "), Err(SplitError::Empty));
        assert_eq!(
            split_command("a 'b"),
            Err(SplitError::UnterminatedQuote("single"))
        );
        assert_eq!(
            split_command("a \"b"),
            Err(SplitError::UnterminatedQuote("double"))
        );
        assert_eq!(split_command("a b\\"), Err(SplitError::TrailingBackslash));
    }

    #[tokio::test]
    async fn runs_without_a_shell_and_trims_one_newline() {
        let cmd = SecretCommand::parse("printf 'hunter2\\n\\n'").expect("parses");
        let secret = cmd.run().await.expect("runs");
        assert_eq!(secret.expose(), "hunter2\n");
        // `;` is an argument, not a separator: echo prints it.
        let cmd = SecretCommand::parse("echo s3cret; false").expect("parses");
        assert_eq!(cmd.run().await.expect("runs").expose(), "s3cret; false");
    }

    #[tokio::test]
    async fn failure_names_the_program_not_its_output() {
        let cmd = SecretCommand::parse("sh -c 'echo leaked-secret; exit 3'").expect("parses");
        let err = cmd.run().await.expect_err("fails").to_string();
        assert!(err.contains("`sh`"), "{err}");
        assert!(!err.contains("leaked-secret"), "{err}");
        let err = SecretCommand::parse("/nonexistent/otrd-no-such-program")
            .expect("parses")
            .run()
            .await
            .expect_err("fails");
        assert!(matches!(err, SecretCommandError::Spawn { .. }), "{err}");
        let err = SecretCommand::parse("true")
            .expect("parses")
            .run()
            .await
            .expect_err("empty");
        assert!(matches!(err, SecretCommandError::Empty { .. }), "{err}");
    }
}
