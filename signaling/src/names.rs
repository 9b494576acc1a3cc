//! The one rule for room names and participant identities, applied wherever a name enters the
//! server: minted tokens, `join` (WebSocket, WHIP, WHEP), the room API's paths and bodies.
//!
//! A valid name is 1 to [`MAX_BYTES`] bytes of UTF-8 with no control character (Unicode
//! category Cc: U+0000–U+001F, U+007F–U+009F), does not begin or end with whitespace (Unicode
//! `White_Space`), and is not `.` or `..` (URL dot segments, which HTTP clients rewrite, so such
//! a room could never be addressed in a URL). Anything else is allowed: spaces inside, `/`,
//! `%`, `?`, non-ASCII letters and emoji; URLs carry names percent-encoded.

use crate::ErrorCode;

/// Longest name, in bytes of UTF-8.
pub const MAX_BYTES: usize = 128;

/// The rule as an ECMA-262 / Python / Rust regular expression, without the length limit (JSON
/// Schema's `maxLength` counts characters, the rule bytes). This is the `pattern` of every
/// name in the OpenAPI document; the tests check that it accepts exactly what [`check`] does.
pub const PATTERN: &str = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$";

/// Why a name breaks the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or longer than [`MAX_BYTES`].
    #[error("must be 1 to 128 bytes long")]
    Length,
    /// Contains a control character.
    #[error("must not contain control characters")]
    Control,
    /// Begins or ends with whitespace.
    #[error("must not begin or end with whitespace")]
    Whitespace,
    /// Is `.` or `..`.
    #[error("must not be `.` or `..`")]
    DotSegment,
}

/// Checks `name` against the rule.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_BYTES {
        return Err(NameError::Length);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(NameError::Whitespace);
    }
    if name == "." || name == ".." {
        return Err(NameError::DotSegment);
    }
    Ok(())
}

/// Checks `name`; the error is [`ErrorCode::InvalidName`] with a message naming `what` (e.g.
/// `"room name"`, `"identity"`). The message never repeats the name itself.
pub fn validate(what: &str, name: &str) -> Result<(), (ErrorCode, String)> {
    check(name).map_err(|e| (ErrorCode::InvalidName, format!("{what} {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern() -> regex::Regex {
        regex::Regex::new(PATTERN).unwrap()
    }

    #[test]
    fn accepts_and_refuses() {
        for ok in [
            "a",
            "demo",
            "café ☕",
            "my room",
            "100%",
            "a/b",
            "?#&=+",
            "...",
            ".a",
            "a.",
            "日本語の部屋",
            "x\u{200B}", // zero-width space is a format character, not whitespace
            &"é".repeat(64),
            &"x".repeat(128),
        ] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
        let long = ["x".repeat(129), "é".repeat(65), "x".repeat(10_000)];
        let refused: [(NameError, &[&str]); 4] = [
            (NameError::Length, &["", &long[0], &long[1], &long[2]]),
            (
                NameError::Control,
                &[
                    "evil\u{0}\n\u{1b}[31m",
                    "a\tb",
                    "a\u{7f}",
                    "a\u{85}b",
                    "a\u{9f}",
                ],
            ),
            (
                NameError::Whitespace,
                &[" demo", "demo ", " ", "\u{a0}x", "x\u{3000}"],
            ),
            (NameError::DotSegment, &[".", ".."]),
        ];
        for (why, names) in refused {
            for bad in names {
                assert_eq!(check(bad), Err(why), "{bad:?}");
            }
        }
    }

    #[test]
    fn validate_gives_invalid_name_without_echoing_the_name() {
        let (code, message) = validate("room name", "evil\u{1b}[31m").unwrap_err();
        assert_eq!(code, ErrorCode::InvalidName);
        assert_eq!(message, "room name must not contain control characters");
    }

    /// The pattern's character classes are exactly Rust's `char::is_control` and
    /// `char::is_whitespace`, over every Unicode scalar value.
    #[test]
    fn pattern_classes_match_char_predicates() {
        let re = pattern();
        let mut buf = [0u8; 4];
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let s: &str = c.encode_utf8(&mut buf);
            let want = !c.is_control() && !c.is_whitespace() && c != '.';
            assert_eq!(re.is_match(s), want, "U+{:04X}", c as u32);
            // Inside a longer name only control characters are refused.
            let inner = format!("a{c}b");
            assert_eq!(re.is_match(&inner), !c.is_control(), "U+{:04X}", c as u32);
        }
    }

    /// The pattern accepts exactly what `check` accepts (below the length limit), on names
    /// built from the characters where the rule has edges.
    #[test]
    fn pattern_agrees_with_check() {
        let re = pattern();
        let alphabet = [
            'a', '.', ' ', '\u{a0}', '\n', '\u{85}', 'é', '/', '%', '\u{3000}',
        ];
        let mut names = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = names
                .iter()
                .flat_map(|n| alphabet.iter().map(move |c| format!("{n}{c}")))
                .collect();
            names.extend(longer);
        }
        names.sort();
        names.dedup();
        assert!(names.len() > 10_000);
        for n in &names {
            assert_eq!(re.is_match(n), check(n).is_ok(), "{n:?}");
        }
    }
}
