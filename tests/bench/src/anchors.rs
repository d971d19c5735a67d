//! External references measured in the same run: Node's WebCrypto (the stock client's
//! primitives) and `openssl speed` (what the hardware does with hand-tuned assembly).

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Node WebCrypto costs, µs per operation.
#[derive(Debug, Clone)]
pub struct NodeFigures {
    /// AES-GCM encrypt + decrypt at 64, 256, 4096 B.
    pub aes_gcm_roundtrip_us: [f64; 3],
    /// P-256 generateKey + deriveBits.
    pub p256_handshake_us: f64,
    /// Node's version string.
    pub version: String,
}

/// Runs `node/webcrypto-bench.mjs` (next to this crate) and reads its JSON line.
pub fn node(quick: bool) -> Result<NodeFigures> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/webcrypto-bench.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(&script);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd
        .output()
        .context("running node (is Node 20 installed?)")?;
    if !out.status.success() {
        bail!(
            "node webcrypto-bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("node output is not JSON")?;
    let aes = |size: &str| {
        v["aes_gcm_roundtrip_us"][size]
            .as_f64()
            .ok_or_else(|| anyhow!("node: no AES figure for {size}"))
    };
    Ok(NodeFigures {
        aes_gcm_roundtrip_us: [aes("64")?, aes("256")?, aes("4096")?],
        p256_handshake_us: v["p256_handshake_us"]
            .as_f64()
            .ok_or_else(|| anyhow!("node: no P-256 figure"))?,
        version: v["node"].as_str().unwrap_or("?").to_owned(),
    })
}

/// `openssl speed` figures, µs per operation.
#[derive(Debug, Clone)]
pub struct OpensslFigures {
    /// `-evp aes-128-gcm` encryption of one 256-byte block.
    pub aes128gcm_256_us: f64,
    /// `ecdhp256`: one P-256 ECDH derivation.
    pub ecdh_p256_us: f64,
    /// `ecdhx25519`: one X25519 derivation.
    pub ecdh_x25519_us: f64,
    /// `openssl version`.
    pub version: String,
}

fn speed(args: &[&str]) -> Result<String> {
    let out = Command::new("openssl")
        .arg("speed")
        .args(["-mr", "-seconds"])
        .args(args)
        .output()
        .context("running openssl speed (install the openssl package)")?;
    if !out.status.success() {
        bail!(
            "openssl speed {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the three `openssl speed` measurements (1 s each; quick mode the minimum of 1 s too,
/// since openssl cannot measure for less).
pub fn openssl() -> Result<OpensslFigures> {
    // `+F:<n>:AES-128-GCM:<bytes per second>` for the one block size asked.
    let aes = speed(&["1", "-bytes", "256", "-evp", "aes-128-gcm"])?;
    let bps: f64 = aes
        .lines()
        .find_map(|l| {
            l.strip_prefix("+F:")
                .and_then(|r| r.rsplit(':').next()?.parse().ok())
        })
        .ok_or_else(|| anyhow!("cannot parse openssl aes output"))?;
    // `+F5:<n>:<bits>:<ops per second>:<seconds per op>` per curve, in the order asked.
    let ecdh = speed(&["1", "ecdhp256", "ecdhx25519"])?;
    let per_op: Vec<f64> = ecdh
        .lines()
        .filter_map(|l| {
            l.strip_prefix("+F5:")
                .and_then(|r| r.split(':').nth(2)?.parse::<f64>().ok())
        })
        .map(|ops| 1e6 / ops)
        .collect();
    let [p256, x25519] = per_op[..] else {
        bail!("cannot parse openssl ecdh output: {ecdh}")
    };
    let version = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    Ok(OpensslFigures {
        aes128gcm_256_us: 256.0 / bps * 1e6,
        ecdh_p256_us: p256,
        ecdh_x25519_us: x25519,
        version,
    })
}
