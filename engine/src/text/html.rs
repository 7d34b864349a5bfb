//! Python's `html.unescape` (CPython 3.11), reproduced exactly.
//!
//! Python finds references with the regex
//! `&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)` and replaces each:
//!
//! - numeric references (decimal or hex, the `;` optional): the HTML5 remapping table
//!   (`&#128;` → `€`, `&#0;` → U+FFFD, …) first, then surrogates and anything above
//!   U+10FFFF → U+FFFD, then the "invalid code points" (C0/C1 controls, noncharacters) →
//!   nothing, otherwise the character itself;
//! - named references: the name as matched (up to 32 characters, with its `;` if there is
//!   one) if `html.entities.html5` has it, else the longest prefix of at least two characters
//!   that it has (these are the legacy names without `;`, like `&amp` or `&not`), followed by
//!   the rest of the match; else the text is left as it was.
//!
//! One deliberate difference: Python 3.11 refuses to convert a decimal string of more than
//! 4300 digits to an int, so `html.unescape` raises `ValueError` on such a reference; here
//! it is simply too large and becomes U+FFFD.

use super::html_entities::{HTML5, INVALID_CHARREFS, INVALID_CODEPOINTS};

/// Longest run of characters a named reference may take (the `{1,32}` of Python's regex).
const MAX_NAME_CHARS: usize = 32;

/// Decodes every HTML character reference in `s` the way Python's `html.unescape` does.
///
/// Named references use the HTML5 table (including the legacy names that need no `;`),
/// numeric references follow the HTML5 rules for invalid code points. Text that is not a
/// reference is copied unchanged.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        match reference(after) {
            Some((len, replacement)) => {
                out.push_str(&replacement);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Matches one reference at the start of `t` (the text just after a `&`). Returns how many
/// bytes of `t` it spans and what replaces `&` plus those bytes.
fn reference(t: &str) -> Option<(usize, String)> {
    let bytes = t.as_bytes();
    if bytes.first() == Some(&b'#') {
        // `#[0-9]+;?`
        let digits = count_while(&bytes[1..], |b| b.is_ascii_digit());
        if digits > 0 {
            let value = parse_saturating(&bytes[1..1 + digits], 10);
            let len = with_semicolon(bytes, 1 + digits);
            return Some((len, numeric(value)));
        }
        // `#[xX][0-9a-fA-F]+;?`
        if matches!(bytes.get(1), Some(b'x' | b'X')) {
            let digits = count_while(&bytes[2..], |b| b.is_ascii_hexdigit());
            if digits > 0 {
                let value = parse_saturating(&bytes[2..2 + digits], 16);
                let len = with_semicolon(bytes, 2 + digits);
                return Some((len, numeric(value)));
            }
        }
        // The named form cannot start with '#'.
        return None;
    }
    // `[^\t\n\f <&#;]{1,32};?`
    let mut end = 0;
    for (count, (i, c)) in t.char_indices().enumerate() {
        if count == MAX_NAME_CHARS
            || matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';')
        {
            break;
        }
        end = i + c.len_utf8();
    }
    if end == 0 {
        return None;
    }
    let len = with_semicolon(bytes, end);
    Some((len, named(&t[..len])))
}

/// `n` plus one if `bytes[n]` is a `;` (the optional `;?` of the regex).
fn with_semicolon(bytes: &[u8], n: usize) -> usize {
    if bytes.get(n) == Some(&b';') {
        n + 1
    } else {
        n
    }
}

fn count_while(bytes: &[u8], pred: impl Fn(u8) -> bool) -> usize {
    bytes.iter().take_while(|&&b| pred(b)).count()
}

/// Parses ASCII digits of `radix`, saturating far above U+10FFFF (any such value only needs
/// to be recognised as too large).
fn parse_saturating(digits: &[u8], radix: u32) -> u32 {
    const CAP: u32 = 0x0100_0000;
    let mut value: u32 = 0;
    for &d in digits {
        let digit = char::from(d).to_digit(radix).unwrap_or(0);
        value = value.saturating_mul(radix).saturating_add(digit).min(CAP);
    }
    value
}

/// The replacement of a numeric reference, in Python's order of checks.
fn numeric(num: u32) -> String {
    if let Ok(i) = INVALID_CHARREFS.binary_search_by_key(&num, |&(code, _)| code) {
        return INVALID_CHARREFS[i].1.to_owned();
    }
    if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
        return '\u{FFFD}'.to_string();
    }
    if INVALID_CODEPOINTS.binary_search(&num).is_ok() {
        return String::new();
    }
    char::from_u32(num).map_or_else(|| '\u{FFFD}'.to_string(), String::from)
}

/// Looks `name` up in `html.entities.html5` (names carry their `;` where they have one).
pub(crate) fn html5_entity(name: &str) -> Option<&'static str> {
    HTML5
        .binary_search_by(|&(key, _)| key.cmp(name))
        .ok()
        .map(|i| HTML5[i].1)
}

/// The replacement of a named reference `s` (as matched, `;` included if present).
fn named(s: &str) -> String {
    if let Some(value) = html5_entity(s) {
        return value.to_owned();
    }
    // Python: `for x in range(len(s)-1, 1, -1): if s[:x] in html5` — prefixes of
    // len(s)-1 down to 2 characters, longest first.
    let boundaries: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
    for x in (2..boundaries.len()).rev() {
        let cut = boundaries[x];
        if let Some(value) = html5_entity(&s[..cut]) {
            let mut out = String::with_capacity(value.len() + s.len() - cut);
            out.push_str(value);
            out.push_str(&s[cut..]);
            return out;
        }
    }
    let mut out = String::with_capacity(s.len() + 1);
    out.push('&');
    out.push_str(s);
    out
}

#[cfg(test)]
mod tests {
    use super::unescape;

    /// Each pair was checked against CPython 3.11.7's `html.unescape`.
    const PYTHON_CHECKED: &[(&str, &str)] = &[
        ("&amp;", "&"),
        ("&amp", "&"),
        ("&ampx", "&x"),
        ("&AMP;", "&"),
        ("&Amp;", "&Amp;"),
        ("&lt;b&gt;", "<b>"),
        ("&#39;", "'"),
        ("&#x1F600;", "\u{1F600}"),
        ("&#X41;", "A"),
        ("&#65", "A"),
        ("&#0;", "\u{FFFD}"),
        ("&#128;", "\u{20AC}"),
        ("&#x80;", "\u{20AC}"),
        ("&#129;", "\u{81}"),
        ("&#x110000;", "\u{FFFD}"),
        ("&#xD800;", "\u{FFFD}"),
        ("&#65534;", ""),
        ("&#1;", ""),
        ("&#x7f;", ""),
        ("&#13;", "\r"),
        ("&notit;", "\u{AC}it;"),
        ("&notin;", "\u{2209}"),
        ("&copy2020", "\u{A9}2020"),
        ("&nbsp;x", "\u{A0}x"),
        ("&;", "&;"),
        ("& x", "& x"),
        ("&#;", "&#;"),
        ("&#x;", "&#x;"),
        ("&#xZ;", "&#xZ;"),
        ("&foo;", "&foo;"),
        (
            "&abcdefghijklmnopqrstuvwxyzabcdefghijkl;",
            "&abcdefghijklmnopqrstuvwxyzabcdefghijkl;",
        ),
        ("&ampamp;amp;", "&amp;amp;"),
        ("&&amp;", "&&"),
        ("&a\tb", "&a\tb"),
        ("&\u{E9};", "&\u{E9};"),
        ("&amp;amp;", "&amp;"),
        ("&lt", "<"),
        ("&ltx", "<x"),
        ("&l", "&l"),
        ("a&b", "a&b"),
        ("&#00000065;", "A"),
        ("&#99999999999999999999;", "\u{FFFD}"),
        ("&#x000041", "A"),
        ("&acE;", "\u{223E}\u{333}"),
        ("&bne;", "=\u{20E5}"),
        ("&ThickSpace;", "\u{205F}\u{200A}"),
        ("&fjlig;", "fj"),
        ("&\rcopy;", "&\rcopy;"),
        ("&copy\r;", "\u{A9}\r;"),
        ("&lt;&gt&LT&GT;", "<><>"),
        ("&xx&amp;", "&xx&"),
        ("&#12345678901234567890123456789012345;", "\u{FFFD}"),
        ("&nbsp&nbsp;", "\u{A0}\u{A0}"),
        ("&#x41;&#x42", "AB"),
        ("no references at all", "no references at all"),
        ("", ""),
    ];

    #[test]
    fn matches_python() {
        for &(input, expected) in PYTHON_CHECKED {
            assert_eq!(unescape(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn tables_are_sorted() {
        use super::super::html_entities::{
            FTFY_UPPERCASE, HTML5, INVALID_CHARREFS, INVALID_CODEPOINTS,
        };
        assert!(HTML5.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(FTFY_UPPERCASE.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(INVALID_CHARREFS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(INVALID_CODEPOINTS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(HTML5.len(), 2231);
    }
}
