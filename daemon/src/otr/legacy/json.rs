//! A minimal JSON writer for the legacy plaintexts: string members and one integer, written into a
//! zeroizing buffer that is allocated once and never grows.
//!
//! Escaping is `serde_json`'s, which is `JSON.stringify`'s for Rust strings: `"` and `\` escaped,
//! U+0000–U+001F as `\b \t \n \f \r` or `\u00xx` (lowercase hex), everything else (`/`, DEL,
//! non-ASCII) raw. The tests compare it with `serde_json` on every byte value.
//!
//! Why not `serde_json::to_writer`: it cannot size its output in advance, so a buffer had to be
//! reserved for the worst case (6 bytes per text byte) — several times the message, all of it
//! wiped afterwards — and its byte-at-a-time escape scan was a tenth of a legacy message's cost.
//! Here text is scanned eight bytes at a time and copied in runs, into a buffer sized for the
//! text plus a few escapes; a message needing more escapes than that is written again into an
//! exactly sized one (the first attempt is wiped), so nothing is ever reallocated.

use crate::secure::SecretBytes;

/// Longest decimal `i64`: `-9223372036854775808`.
pub(super) const I64_MAX_LEN: usize = 20;

/// Escape bytes the first attempt leaves room for (a short escape adds one byte, `\u00xx` five).
const SLACK: usize = 32;

/// Writes into a [`SecretBytes`] that never reallocates; writing past its capacity marks the
/// attempt as failed instead.
pub(super) struct JsonWriter {
    buf: SecretBytes,
    overflowed: bool,
}

/// Writes a document with `write`: first into room for `strings` with [`SLACK`] escape bytes,
/// then, if that was too small, into room for exactly `strings` quoted and escaped. `other` is
/// the length of everything else (punctuation, member names, numbers).
pub(super) fn write_sized(
    strings: &[&str],
    other: usize,
    write: impl Fn(&mut JsonWriter),
) -> SecretBytes {
    let unescaped: usize = strings.iter().map(|s| s.len() + 2).sum();
    let mut w = JsonWriter::with_capacity(unescaped + other + SLACK);
    write(&mut w);
    if !w.overflowed {
        return w.buf;
    }
    drop(w);
    let exact: usize = strings.iter().map(|s| quoted_len(s)).sum();
    let mut w = JsonWriter::with_capacity(exact + other);
    write(&mut w);
    debug_assert!(!w.overflowed, "JSON size miscounted");
    w.buf
}

impl JsonWriter {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: SecretBytes::with_capacity(capacity),
            overflowed: false,
        }
    }

    /// Appends fixed JSON text (punctuation and member names).
    pub(super) fn raw(&mut self, text: &str) {
        self.put(text.as_bytes());
    }

    /// Appends `s` as a quoted, escaped JSON string.
    pub(super) fn string(&mut self, s: &str) {
        self.put(b"\"");
        let bytes = s.as_bytes();
        let mut run = 0;
        let mut i = 0;
        while i < bytes.len() {
            i = skip_plain_words(bytes, i);
            // At most one word byte by byte: it holds an escapable byte, or it is the tail.
            let end = (i + 8).min(bytes.len());
            while i < end {
                if let Some(esc) = escape(bytes[i]) {
                    self.put(&bytes[run..i]);
                    self.put(esc.as_bytes());
                    run = i + 1;
                }
                i += 1;
            }
        }
        self.put(&bytes[run..]);
        self.put(b"\"");
    }

    /// Appends a decimal integer.
    pub(super) fn int(&mut self, n: i64) {
        let mut digits = [0u8; I64_MAX_LEN];
        let mut at = digits.len();
        let mut rest = n.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n < 0 {
            at -= 1;
            digits[at] = b'-';
        }
        self.put(&digits[at..]);
    }

    fn put(&mut self, bytes: &[u8]) {
        let v = self.buf.vec_mut();
        // Growing would leave an unwiped copy of the plaintext in freed memory: never grow.
        if self.overflowed || v.len() + bytes.len() > v.capacity() {
            self.overflowed = true;
            return;
        }
        v.extend_from_slice(bytes);
    }
}

/// A reader for the canonical form of a legacy plaintext: fixed punctuation and member names,
/// strings without escapes, a plain integer. It recognises a strict subset of what `serde_json`
/// accepts, with the same result; on anything else it gives up (`None`) and the caller parses
/// with `serde_json`, which handles escapes, whitespace, other member orders and errors.
pub(super) struct CanonicalReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> CanonicalReader<'a> {
    /// A reader at the start of `bytes`.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Consumes exactly `lit`.
    pub(super) fn lit(&mut self, lit: &str) -> Option<()> {
        let rest = self.bytes.get(self.at..)?;
        rest.starts_with(lit.as_bytes())
            .then(|| self.at += lit.len())
    }

    /// A string literal with no escapes (and so no control characters: JSON forbids them raw),
    /// valid UTF-8; its content is borrowed.
    pub(super) fn string(&mut self) -> Option<&'a str> {
        self.lit("\"")?;
        let start = self.at;
        let mut i = start;
        loop {
            i = skip_plain_words(self.bytes, i);
            let b = *self.bytes.get(i)?;
            if b == b'"' {
                break;
            }
            if escape(b).is_some() {
                // A backslash (an escape) or a raw control character: not canonical.
                return None;
            }
            i += 1;
        }
        self.at = i + 1;
        std::str::from_utf8(&self.bytes[start..i]).ok()
    }

    /// An integer in JSON's grammar (`-?(0|[1-9][0-9]*)`) of at most 18 digits, so it fits in
    /// an `i64` without overflow checks; longer numbers, fractions and exponents are not
    /// canonical here.
    pub(super) fn int(&mut self) -> Option<i64> {
        let negative = self.lit("-").is_some();
        let digits = self.bytes[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.bytes[self.at..self.at + digits];
        if digits == 0 || digits > 18 || (digits > 1 && text[0] == b'0') {
            return None;
        }
        self.at += digits;
        let value = text.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
        Some(if negative { -value } else { value })
    }

    /// Succeeds when everything has been read.
    pub(super) fn end(&self) -> Option<()> {
        (self.at == self.bytes.len()).then_some(())
    }
}

/// The first index at or after `i` that does not start a word of eight plain bytes.
fn skip_plain_words(bytes: &[u8], i: usize) -> usize {
    let rest = bytes.get(i..).unwrap_or_default();
    let mut at = i;
    // Four words per step while all are plain: independent checks, one branch (text is
    // mostly plain, so this is where long messages spend their time).
    let mut blocks = rest.chunks_exact(32);
    for block in &mut blocks {
        let flags = block
            .chunks_exact(8)
            .filter_map(|w| <[u8; 8]>::try_from(w).ok())
            .fold(0, |acc, w| acc | escape_flags(u64::from_le_bytes(w)));
        if flags != 0 {
            break;
        }
        at += 32;
    }
    for chunk in bytes.get(at..).unwrap_or_default().chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        if any_needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        at += 8;
    }
    at
}

/// Whether any byte of `w` is below 0x20, `"` or `\` (exact: no false negatives; a false
/// positive would only send the word through the byte-wise check).
fn any_needs_escape(w: u64) -> bool {
    escape_flags(w) != 0
}

/// Nonzero exactly when some byte of `w` is below 0x20, `"` or `\`.
fn escape_flags(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte b < n (n <= 0x80) sets its high bit in (b - n) while its own high bit is clear.
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    // A byte equal to c is a zero byte of w ^ c.
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    let quote = zero_byte(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(w ^ (ONES * u64::from(b'\\')));
    (below_space | quote | backslash) & HIGH
}

/// The escape sequence for `b`, if it needs one.
fn escape(b: u8) -> Option<&'static str> {
    const CONTROL: [&str; 32] = [
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b", "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011",
        "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019",
        "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
    ];
    match b {
        b'"' => Some("\\\""),
        b'\\' => Some("\\\\"),
        _ => CONTROL.get(usize::from(b)).copied(),
    }
}

/// Length of `s` quoted and escaped.
fn quoted_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut extra = 0;
    let mut i = 0;
    while i < bytes.len() {
        i = skip_plain_words(bytes, i);
        let end = (i + 8).min(bytes.len());
        extra += bytes[i..end]
            .iter()
            .filter_map(|&b| escape(b))
            .map(|esc| esc.len() - 1)
            .sum::<usize>();
        i = end;
    }
    bytes.len() + extra + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(s: &str) -> Vec<u8> {
        let out = write_sized(&[s], 0, |w| w.string(s));
        assert_eq!(out.len(), quoted_len(s), "size computed exactly for {s:?}");
        out.expose().to_vec()
    }

    #[test]
    fn strings_match_serde_json_for_every_byte_value() {
        // Every ASCII byte, alone and inside runs long enough for the word-at-a-time path.
        for b in 0u8..0x80 {
            let c = char::from(b);
            for s in [
                c.to_string(),
                format!("abcdefgh{c}ijklmnop"),
                format!("{c}{c}{c}{c}{c}{c}{c}{c}{c}"),
                format!("0123456{c}"),
            ] {
                let expected = serde_json::to_string(&s).expect("serde");
                assert_eq!(written(&s), expected.as_bytes(), "byte {b:#04x}");
            }
            // Long enough for the four-words-at-a-time scan, the byte at every kind of offset.
            for pos in [0, 7, 8, 31, 32, 33, 63, 64, 95, 99] {
                let mut s = "a".repeat(100);
                s.replace_range(pos..=pos, &c.to_string());
                let expected = serde_json::to_string(&s).expect("serde");
                assert_eq!(written(&s), expected.as_bytes(), "byte {b:#04x}");
            }
        }
        for s in [
            "",
            "héllo wörld — ünïcode 😀 / \u{2028} \u{7f}",
            "line\nbreak\ttab \"quoted\" back\\slash",
            &"the quick brown fox jumps over the lazy dog ".repeat(100),
            // More escape bytes than the first attempt leaves room for: the exact retry.
            &"\n\u{1}\"".repeat(40),
            &format!("{}\u{1f}", "x".repeat(300)),
        ] {
            assert_eq!(
                written(s),
                serde_json::to_string(s).expect("serde").as_bytes()
            );
        }
    }

    #[test]
    fn canonical_reader_takes_plain_members_and_refuses_the_rest() {
        let mut r = CanonicalReader::new(
            b"{\"a\":\"h\xc3\xa9llo world, long enough\",\"n\":-1735732800123}",
        );
        assert_eq!(r.lit(r#"{"a":"#), Some(()));
        assert_eq!(r.string(), Some("h\u{e9}llo world, long enough"));
        assert_eq!(r.lit(r#","n":"#), Some(()));
        assert_eq!(r.int(), Some(-1_735_732_800_123));
        assert_eq!(r.lit("}"), Some(()));
        assert_eq!(r.end(), Some(()));
        for s in [
            &br#""with \"escape\" inside""#[..],
            b"\"raw\ncontrol\"",
            b"\"unterminated",
            b"\"bad utf8 \xff\"",
            b"noquote",
        ] {
            assert_eq!(CanonicalReader::new(s).string(), None, "{s:?}");
        }
        for s in [&b"01"[..], b"-", b"", b"1234567890123456789", b"x"] {
            assert_eq!(CanonicalReader::new(s).int(), None, "{s:?}");
        }
        // The closing quote, or a byte that is not canonical, at every kind of offset.
        for pos in [0, 7, 8, 31, 32, 33, 63, 64, 95, 99] {
            let body = "a".repeat(pos);
            let quoted = format!("\"{body}\"tail");
            let mut r = CanonicalReader::new(quoted.as_bytes());
            assert_eq!(r.string(), Some(body.as_str()));
            assert_eq!(r.lit("tail"), Some(()));
            let escaped = format!("\"{body}\\n{body}\"");
            assert_eq!(CanonicalReader::new(escaped.as_bytes()).string(), None);
        }
        assert_eq!(CanonicalReader::new(b"0").int(), Some(0));
        assert_eq!(CanonicalReader::new(b"-0").int(), Some(0));
    }

    #[test]
    fn the_buffer_never_grows() {
        // Far more escapes than the first attempt's room: it overflows, the retry fits exactly.
        let s = "\u{1}".repeat(100);
        let out = write_sized(&[&s], 0, |w| w.string(&s));
        assert_eq!(out.len(), 602);
        let mut w = JsonWriter::with_capacity(4);
        w.string("abcdef");
        assert!(w.overflowed);
        assert!(w.buf.len() <= 4, "nothing written past the capacity");
    }

    #[test]
    fn word_check_flags_exactly_the_words_with_an_escapable_byte() {
        for b in 0u8..=255 {
            for pos in 0..8 {
                let mut word = *b"abcdefgh";
                word[pos] = b;
                let flagged = any_needs_escape(u64::from_le_bytes(word));
                assert_eq!(flagged, escape(b).is_some(), "byte {b:#04x} at {pos}");
            }
        }
    }

    #[test]
    fn integers_match_serde_json() {
        for n in [0, 7, -7, 10, 1_735_732_800_123, i64::MAX, i64::MIN, -1] {
            let out = write_sized(&[], I64_MAX_LEN, |w| w.int(n));
            assert_eq!(out.expose(), n.to_string().as_bytes());
        }
    }
}
