//! What the server can do for OTR, decided once per login from its version (`GET /api/info`) and
//! the public setting `OTR_Enable` (`GET /api/v1/settings.public?_id=OTR_Enable`).
//!
//! PROTOCOL §0: only Rocket.Chat ≤ 7.x with `OTR_Enable` on relays the stock client's OTR; 8.0
//! removed it and dropped the setting.

use serde_json::Value;

/// The server's OTR-relevant capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerCapabilities {
    /// Version string as reported (empty if unknown).
    pub version: String,
    /// Major version, if the string parses.
    pub major: Option<u32>,
    /// The public setting `OTR_Enable`; `None` when the server does not publish it.
    pub otr_enable: Option<bool>,
    /// True iff the stock OTR relay works: version < 8 and `OTR_Enable` true.
    pub otr_relay: bool,
    /// Why the relay is unavailable, in words a user understands; `None` when available.
    pub reason: Option<String>,
    /// The generation the compatibility layer works with (from the major version).
    pub generation: super::compat::Generation,
}

impl ServerCapabilities {
    /// Decides from the version string and the setting's value.
    pub fn decide(version: &str, otr_enable: Option<bool>) -> Self {
        let major = parse_major(version);
        let reason = match (major, otr_enable) {
            (Some(8), _) => Some(format!(
                "this server runs Rocket.Chat {version}, which removed OTR"
            )),
            (Some(m), _) if m > 8 => Some(format!(
                "this server runs Rocket.Chat {version}; Rocket.Chat 8 removed OTR"
            )),
            (None, _) => Some(
                "the server did not report a Rocket.Chat version, so its OTR relay cannot be confirmed"
                    .to_owned(),
            ),
            (Some(_), Some(false)) => Some(
                "the administrator disabled OTR on this server (OTR_Enable is off)".to_owned(),
            ),
            (Some(_), None) => Some(
                "this server does not publish the OTR_Enable setting, so it offers no OTR relay"
                    .to_owned(),
            ),
            (Some(_), Some(true)) => None,
        };
        Self {
            version: version.to_owned(),
            major,
            otr_enable,
            otr_relay: reason.is_none(),
            reason,
            generation: super::compat::Generation::from_major(major),
        }
    }

    /// When the probe itself failed (HTTP error): nothing is known.
    pub fn unknown(why: &str) -> Self {
        Self {
            reason: Some(format!(
                "could not determine the server's OTR support: {why}"
            )),
            ..Self::default()
        }
    }
}

/// `"7.4.1"` → 7; tolerates prefixes like `v` and suffixes like `-rc.1`.
pub fn parse_major(version: &str) -> Option<u32> {
    let v = version.trim().trim_start_matches(['v', 'V']);
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The version from a `GET /api/info` body: top-level `version`, or `info.version` (authenticated
/// answers of newer servers).
pub fn version_from_info(body: &Value) -> Option<String> {
    body.get("version")
        .or_else(|| body.get("info").and_then(|i| i.get("version")))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// `OTR_Enable` from a `settings.public` body (`{"settings":[{"_id":"OTR_Enable","value":true}]}`);
/// `None` when absent. The stock server also accepts the string `"true"`.
pub fn otr_enable_from_settings(body: &Value) -> Option<bool> {
    let settings = body.get("settings")?.as_array()?;
    let entry = settings
        .iter()
        .find(|s| s.get("_id").and_then(Value::as_str) == Some("OTR_Enable"))?;
    match entry.get("value")? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(s == "true"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seven_with_otr_on_relays() {
        let c = ServerCapabilities::decide("7.4.0", Some(true));
        assert!(c.otr_relay);
        assert_eq!(c.major, Some(7));
        assert_eq!(c.reason, None);
    }

    #[test]
    fn eight_removed_otr() {
        let c = ServerCapabilities::decide("8.1.0", None);
        assert!(!c.otr_relay);
        assert_eq!(
            c.reason.as_deref(),
            Some("this server runs Rocket.Chat 8.1.0, which removed OTR")
        );
        assert_eq!(
            ServerCapabilities::decide("9.0.0", None).reason.as_deref(),
            Some("this server runs Rocket.Chat 9.0.0; Rocket.Chat 8 removed OTR")
        );
        // Even a stale setting does not bring it back.
        assert!(!ServerCapabilities::decide("8.0.0", Some(true)).otr_relay);
    }

    #[test]
    fn disabled_and_absent_settings() {
        let c = ServerCapabilities::decide("7.10.2", Some(false));
        assert!(!c.otr_relay);
        assert_eq!(
            c.reason.as_deref(),
            Some("the administrator disabled OTR on this server (OTR_Enable is off)")
        );
        assert!(!ServerCapabilities::decide("6.5.0", None).otr_relay);
        assert!(!ServerCapabilities::decide("", Some(true)).otr_relay);
        assert!(!ServerCapabilities::unknown("HTTP 502").otr_relay);
    }

    #[test]
    fn parses_versions_and_bodies() {
        assert_eq!(parse_major("v12.0.0-rc.1"), Some(12));
        assert_eq!(parse_major("garbage"), None);
        assert_eq!(
            version_from_info(&json!({"version":"7.1.0","success":true})).as_deref(),
            Some("7.1.0")
        );
        assert_eq!(
            version_from_info(&json!({"info":{"version":"6.0.0"}})).as_deref(),
            Some("6.0.0")
        );
        let s = json!({"settings":[{"_id":"OTR_Enable","value":true}],"success":true});
        assert_eq!(otr_enable_from_settings(&s), Some(true));
        let s = json!({"settings":[{"_id":"OTR_Enable","value":"false"}]});
        assert_eq!(otr_enable_from_settings(&s), Some(false));
        assert_eq!(otr_enable_from_settings(&json!({"settings":[]})), None);
    }
}
