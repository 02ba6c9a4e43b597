//! JSON at the speed the records need: a validator for decrypted documents, and a reader
//! that finds the envelope's few fields without building anything.
//!
//! Both walk the bytes once. Most of a record is string contents, and a string is crossed a
//! block at a time up to its closing quote, a backslash or a control character
//! ([`plain_run`]), so a kilobyte costs a few hundred nanoseconds rather than the
//! microseconds a general parser spends on it.
//!
//! The grammar is RFC 8259's. The bytes must be UTF-8 already (the callers check that with
//! the standard library's validator); bytes of 0x80 and above are accepted inside strings
//! and refused elsewhere. Nesting deeper than [`MAX_DEPTH`] is refused.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;

/// Arrays and objects nested deeper than this are refused: the readers downstream refuse
/// them too (Jackson, which Hive and Spark parse JSON with, has refused nesting deeper than
/// 1,000 by default since 2.15: `StreamReadConstraints.DEFAULT_MAX_DEPTH`), and the
/// validator recurses, so the bound also keeps its stack small.
pub const MAX_DEPTH: usize = 1000;

/// Why bytes are not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub offset: usize,
    pub problem: &'static str,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.problem, self.offset)
    }
}

/// Checks that `bytes` is one JSON value, with optional whitespace around it.
pub fn validate(bytes: &[u8]) -> Result<(), Invalid> {
    thread_local! {
        /// The index of the document being checked, kept for the next one on this thread.
        static INDEX: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    }
    let check = |index: &mut Vec<u64>| {
        index_specials(bytes, index);
        let mut walker = Walker::new(bytes);
        walker.index = Some(index);
        walker.value()?;
        walker.end()
    };
    INDEX.with(|index| match index.try_borrow_mut() {
        Ok(mut index) => {
            let checked = check(&mut index);
            // A rare huge document does not keep its index for the rest of the run.
            if index.capacity() > MAX_KEPT_INDEX {
                *index = Vec::new();
            }
            checked
        }
        Err(_) => check(&mut Vec::new()),
    })
}

/// Index words kept between documents: those of an 8 MiB document.
const MAX_KEPT_INDEX: usize = 1 << 17;

/// Reads JSON in one pass. The validator passes over every value ([`Walker::value`]); the
/// envelope's reader decides, per key, whether to descend into the value (another
/// [`Walker::object`]) or pass over it. Either way nothing is scanned twice, and one object
/// parser serves both.
pub struct Walker<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Arrays and objects entered and not yet left.
    depth: usize,
    /// The document's special bytes, when it was indexed ([`index_specials`]).
    index: Option<&'a [u64]>,
}

impl<'a> Walker<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let mut walker = Self {
            bytes,
            at: 0,
            depth: 0,
            index: None,
        };
        walker.whitespace();
        walker
    }

    /// The first byte of the value that comes next.
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// The object that comes next: `member` is called with each key's contents (between its
    /// quotes, still escaped) and must read that key's value.
    pub fn object<E: From<Invalid>>(
        &mut self,
        mut member: impl FnMut(&mut Self, Range<usize>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.peek() != Some(b'{') {
            return Err(self.invalid("expected an object").into());
        }
        self.enter()?;
        self.whitespace();
        if self.peek() != Some(b'}') {
            loop {
                self.whitespace();
                if self.peek() != Some(b'"') {
                    return Err(self.invalid("expected a key").into());
                }
                let key_start = self.at + 1;
                self.string()?;
                let key = key_start..self.at - 1;
                self.whitespace();
                if self.peek() != Some(b':') {
                    return Err(self.invalid("expected `:` after a key").into());
                }
                self.at += 1;
                self.whitespace();
                member(self, key)?;
                self.whitespace();
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b'}') => break,
                    _ => return Err(self.invalid("expected `,` or `}` in an object").into()),
                }
            }
        }
        self.leave();
        Ok(())
    }

    /// Passes over the value that comes next, checking it; where it lies.
    pub fn value(&mut self) -> Result<Range<usize>, Invalid> {
        let start = self.at;
        match self.peek() {
            Some(b'"') => self.string()?,
            Some(b'{') => self.object(|walker, _| walker.value().map(|_| ()))?,
            Some(b'[') => self.array()?,
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            _ => return Err(self.invalid("expected a value")),
        }
        let end = self.at;
        self.whitespace();
        Ok(start..end)
    }

    /// Checks that nothing but whitespace follows.
    pub fn end(mut self) -> Result<(), Invalid> {
        self.whitespace();
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(self.invalid("text after the value"))
        }
    }

    fn invalid(&self, problem: &'static str) -> Invalid {
        Invalid {
            offset: self.at,
            problem: if self.at >= self.bytes.len() {
                "the text ends too early"
            } else {
                problem
            },
        }
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Past the opening bracket of an array or object, one level deeper.
    fn enter(&mut self) -> Result<(), Invalid> {
        if self.depth >= MAX_DEPTH {
            return Err(self.invalid("nested too deeply"));
        }
        self.depth += 1;
        self.at += 1;
        Ok(())
    }

    /// Past the closing bracket (the caller has seen it), one level up.
    fn leave(&mut self) {
        self.depth -= 1;
        self.at += 1;
    }

    fn array(&mut self) -> Result<(), Invalid> {
        self.enter()?;
        self.whitespace();
        if self.peek() != Some(b']') {
            loop {
                self.whitespace();
                self.value()?;
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b']') => break,
                    _ => return Err(self.invalid("expected `,` or `]` in an array")),
                }
            }
        }
        self.leave();
        Ok(())
    }

    /// From the opening quote to just past the closing one.
    fn string(&mut self) -> Result<(), Invalid> {
        self.at += 1;
        loop {
            self.at = match self.index {
                Some(index) => next_special(index, self.bytes.len(), self.at),
                None => self.at + plain_run(&self.bytes[self.at..]),
            };
            match self.peek() {
                None => return Err(self.invalid("an unterminated string")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b'\\') => {}
                Some(_) => return Err(self.invalid("a control character in a string")),
            }
            match self.bytes.get(self.at + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 2,
                Some(b'u') => {
                    let hex = self.bytes.get(self.at + 2..self.at + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return Err(self.invalid("an invalid `\\u` escape"));
                    }
                    self.at += 6;
                }
                _ => return Err(self.invalid("an invalid escape")),
            }
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), Invalid> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(self.invalid("expected a value"))
        }
    }

    fn number(&mut self) -> Result<(), Invalid> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.invalid("a number without digits")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.invalid("a number without digits after `.`"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.invalid("a number without digits in its exponent"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }
}

/// Whether a key, as written between its quotes, means `name`. Keys with escapes are
/// decoded first, so `"mess\u0061ge"` is `message`, as any JSON reader takes it.
pub fn key_is(bytes: &[u8], key: &Range<usize>, name: &str) -> bool {
    let raw = &bytes[key.clone()];
    if memchr::memchr(b'\\', raw).is_none() {
        return raw == name.as_bytes();
    }
    string_contents(bytes, key.clone()).is_some_and(|decoded| decoded == name)
}

/// The text of a string whose contents (between the quotes) are `range`, escapes decoded;
/// `None` if the contents are not a valid JSON string's.
pub fn string_contents(bytes: &[u8], range: Range<usize>) -> Option<String> {
    let quoted = &bytes[range.start.checked_sub(1)?..range.end.checked_add(1)?];
    serde_json::from_slice::<String>(quoted).ok()
}

/// How many bytes from the start of `bytes` may stand in a string as they are: up to the
/// first quote, backslash or control character. A run that passes its first block is a
/// long one (a base64 ciphertext, a paragraph of text) and is crossed by [`long_run`];
/// otherwise the byte is found eight bytes at a time ([`specials`]): strings with an escape
/// every few words are mostly such short runs.
fn plain_run(bytes: &[u8]) -> usize {
    const BLOCK: usize = 32;
    let special = |b: u8| (b == b'"') | (b == b'\\') | (b < 0x20);
    // A fold with no branch per byte, which the compiler turns into vector compares.
    if let Some(first) = bytes.get(..BLOCK)
        && !first.iter().fold(false, |any, &b| any | special(b))
    {
        return BLOCK + long_run(&bytes[BLOCK..]);
    }
    let mut at = 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let found = word_specials(word);
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + words
        .remainder()
        .iter()
        .position(|&b| special(b))
        .unwrap_or(bytes.len() - at)
}

/// A long run: memchr's vector search (AVX2 where the CPU has it, chosen at run time) for
/// the quote or backslash that ends it, then one pass for a control character before that,
/// as a minimum, which the compiler vectorises. Twice as fast on a ciphertext's base64 as
/// testing the three kinds of byte together.
fn long_run(bytes: &[u8]) -> usize {
    let end = memchr::memchr2(b'"', b'\\', bytes).unwrap_or(bytes.len());
    let run = &bytes[..end];
    let mut at = 0;
    for block in run.chunks_exact(64) {
        if block.iter().fold(u8::MAX, |least, &b| least.min(b)) < 0x20 {
            break;
        }
        at += 64;
    }
    at + run[at..].iter().position(|&b| b < 0x20).unwrap_or(end - at)
}

/// Indexes a whole document for [`next_special`]: a bit per byte, set for a quote, a
/// backslash or a control character, sixty-four bytes to a word. One pass with no branch per
/// byte, instead of a search started again after every escape; and a string is then crossed
/// a word per sixty-four bytes, so the notes in a document, kilobytes with a quote every few
/// words, cost a few steps each.
fn index_specials(bytes: &[u8], index: &mut Vec<u64>) {
    index.clear();
    let blocks = bytes.chunks_exact(64);
    let tail = blocks.remainder();
    index.extend(blocks.map(block_specials));
    if !tail.is_empty() {
        // Padded with spaces, which are not special, so nothing past the end is marked.
        let mut block = [b' '; 64];
        block[..tail.len()].copy_from_slice(tail);
        index.push(block_specials(&block));
    }
}

/// Bit `i` set when byte `i` of the 64 is special.
fn block_specials(block: &[u8]) -> u64 {
    block
        .chunks_exact(8)
        .enumerate()
        .fold(0, |mask, (i, word)| {
            mask | gather(word_specials(word)) << (8 * i)
        })
}

/// The high bit of each of the eight bytes of `flags` (no other bit may be set), as the low
/// eight bits, byte 0 first. The multiplication moves byte `k`'s bit to bit 56 + k and no two
/// of its partial products meet, so nothing carries.
fn gather(flags: u64) -> u64 {
    (flags >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Where the first special byte at or after `from` lies, by the index; `len` if none.
fn next_special(index: &[u64], len: usize, from: usize) -> usize {
    let mut block = from / 64;
    let Some(&first) = index.get(block) else {
        return len;
    };
    let mut bits = first & (!0u64 << (from % 64));
    loop {
        if bits != 0 {
            return block * 64 + bits.trailing_zeros() as usize;
        }
        block += 1;
        match index.get(block) {
            Some(&next) => bits = next,
            None => return len,
        }
    }
}

/// [`specials`] of eight bytes (`chunks_exact(8)` gives no shorter ones).
fn word_specials(word: &[u8]) -> u64 {
    let mut eight = [0; 8];
    eight.copy_from_slice(word);
    specials(u64::from_le_bytes(eight))
}

/// The high bit of each byte of `word` that is a quote, a backslash or below 0x20, and no
/// other bit. Each test is exact per byte (no carry crosses into the next byte), so the
/// lowest bit set marks the first such byte.
fn specials(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // The high bit of each byte that is zero.
    let zero = |x: u64| !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7);
    zero(word ^ (ONES * u64::from(b'"')))
        | zero(word ^ (ONES * u64::from(b'\\')))
        | zero(word & (ONES * 0xE0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IgnoredAny;

    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<IgnoredAny>(text).is_ok()
    }

    #[test]
    fn accepts_what_rfc_8259_allows() {
        for text in [
            r#"{}"#,
            r#" [ ] "#,
            r#"{"a": [1, -0, 0.5, -1.25e+10, 3E-2, true, false, null, "x"], "b": {"c": {}}}"#,
            r#""caf\u00e9 \"quoted\" back\\slash \/ \b\f\n\r\t""#,
            "\"Zoë 日本 €\"",
            "\n\t 42 \r\n",
        ] {
            assert_eq!(validate(text.as_bytes()), Ok(()), "{text}");
            assert!(serde_accepts(text), "{text}");
        }
    }

    #[test]
    fn refuses_what_it_does_not_and_says_where() {
        for (text, problem, offset) in [
            ("", "the text ends too early", 0),
            (r#"{"a": 1,}"#, "expected a key", 8),
            (r#"{"a" 1}"#, "expected `:` after a key", 5),
            (r#"[1 2]"#, "expected `,` or `]` in an array", 3),
            (r#"{"a": 01}"#, "expected `,` or `}` in an object", 7),
            (r#"[-]"#, "a number without digits", 2),
            (r#"[1.]"#, "a number without digits after `.`", 3),
            (r#"[1e+]"#, "a number without digits in its exponent", 4),
            (r#"["a\qb"]"#, "an invalid escape", 3),
            (r#"["\u12g4"]"#, "an invalid `\\u` escape", 2),
            ("[\"a\tb\"]", "a control character in a string", 3),
            (r#"["open"#, "the text ends too early", 6),
            (r#"{} {}"#, "text after the value", 3),
            (r#"[tru]"#, "expected a value", 1),
            (r#"{"a": 1"#, "the text ends too early", 7),
        ] {
            let error = validate(text.as_bytes()).expect_err(text);
            assert_eq!(error, Invalid { offset, problem }, "{text}");
            assert!(!serde_accepts(text), "{text}");
        }
        assert_eq!(
            validate(b"\x80").expect_err("not a value").problem,
            "expected a value"
        );
    }

    #[test]
    fn nesting_stops_where_the_readers_downstream_stop() {
        let at_limit = format!(
            "{}0{}",
            "[{\"a\":".repeat(MAX_DEPTH / 2),
            "}]".repeat(MAX_DEPTH / 2)
        );
        assert_eq!(validate(at_limit.as_bytes()), Ok(()));
        let deeper = format!("[{at_limit}]");
        assert_eq!(
            validate(deeper.as_bytes()).expect_err("too deep").problem,
            "nested too deeply"
        );
        // A megabyte of brackets is refused, not a stack overflow.
        let flood = "[".repeat(1 << 20);
        assert_eq!(
            validate(flood.as_bytes()).expect_err("too deep").problem,
            "nested too deeply"
        );
    }

    #[test]
    fn walks_objects_descending_only_where_asked() {
        let text =
            br#" {"message": {"_id": {"a": 1}, "n": [1, "x"]}, "mess\u0061ge": null, "z": 2} "#;
        let mut seen = Vec::new();
        let mut walker = Walker::new(text);
        walker
            .object(|walker, key| {
                if key_is(text, &key, "message") && walker.peek() == Some(b'{') {
                    walker.object(|walker, key| {
                        let value = walker.value()?;
                        seen.push((text[key].to_vec(), text[value].to_vec()));
                        Ok::<_, Invalid>(())
                    })
                } else {
                    let value = walker.value()?;
                    seen.push((text[key].to_vec(), text[value].to_vec()));
                    Ok(())
                }
            })
            .expect("an object");
        walker.end().expect("nothing after it");
        let seen: Vec<(&str, &str)> = seen
            .iter()
            .map(|(k, v)| {
                (
                    std::str::from_utf8(k).expect("utf-8"),
                    std::str::from_utf8(v).expect("utf-8"),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("_id", r#"{"a": 1}"#),
                ("n", r#"[1, "x"]"#),
                // An escaped key is decoded before it is compared, so this is `message` too;
                // its value is null, so it is passed over.
                ("mess\\u0061ge", "null"),
                ("z", "2"),
            ]
        );

        let walk_all = |text: &[u8]| -> Result<(), Invalid> {
            let mut walker = Walker::new(text);
            walker.object(|walker, _| walker.value().map(|_| ()))?;
            walker.end()
        };
        assert_eq!(
            walk_all(b"[1]").expect_err("an array").problem,
            "expected an object"
        );
        assert_eq!(
            walk_all(br#"{"a": tru}"#).expect_err("bad").problem,
            "expected a value"
        );
        assert_eq!(
            walk_all(br#"{"a": 1} x"#).expect_err("after").problem,
            "text after the value"
        );
        assert_eq!(
            string_contents(br#""a\/b\n""#, 1..7).as_deref(),
            Some("a/b\n")
        );
    }

    /// JSON-ish text: valid documents, and the same with one byte changed or cut.
    fn jsonish() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            "[a-z é\"\\\\/\\n\\t\\u{1}]{0,12}".prop_map(|s| serde_json::json!(s).to_string()),
        ];
        let value = leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5)
                    .prop_map(|items| format!("[{}]", items.join(", "))),
                proptest::collection::vec(("[a-z\\\\\"]{0,6}", inner), 0..5).prop_map(|fields| {
                    let fields: Vec<String> = fields
                        .into_iter()
                        .map(|(k, v)| format!("{}:{v}", serde_json::json!(k)))
                        .collect();
                    format!("{{ {} }}", fields.join(","))
                }),
            ]
        });
        (value, any::<usize>(), any::<u8>(), 0..3u8).prop_map(|(text, at, byte, how)| {
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let at = at % bytes.len();
                match how {
                    0 => {}
                    1 => bytes[at] = b" \"\\{}[],:0-.eEtfnu\t\x01x"[usize::from(byte) % 21],
                    _ => bytes.truncate(at),
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }

    #[test]
    fn plain_runs_stop_at_the_first_special_byte() {
        let plain = |b: u8| b != b'"' && b != b'\\' && b >= 0x20;
        for len in 0..40 {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    // Bytes around the special one that word tricks could confuse with it.
                    if at > 0 {
                        bytes[at - 1] = 0x20;
                    }
                    if at + 1 < len {
                        bytes[at + 1] = 0xff;
                    }
                    bytes[at] = special;
                    let expected = bytes.iter().position(|&b| !plain(b)).unwrap_or(len);
                    assert_eq!(plain_run(&bytes), expected, "{bytes:?}");
                }
            }
            let text = "é日x ~\x7f".repeat(len);
            assert_eq!(plain_run(text.as_bytes()), text.len());
        }
    }

    proptest! {
        #[test]
        fn plain_run_matches_a_byte_loop(
            bytes in proptest::collection::vec(
                (
                    // A plain run, short or long enough for the long path, then any byte,
                    // often one a bit away from a special one.
                    prop_oneof![0..8usize, 0..200usize],
                    prop_oneof![
                        any::<u8>(),
                        prop::sample::select(vec![b'"', b'\\', 0x1f, 0x20, 0x21, 0x5d, 0xa2, 0xdc, 0x9f, 0xe0]),
                    ],
                ),
                0..6,
            )
            .prop_map(|segments| {
                segments
                    .into_iter()
                    .flat_map(|(run, byte)| "é~a".bytes().cycle().take(run).chain([byte]))
                    .collect::<Vec<u8>>()
            })
        ) {
            let expected = bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(bytes.len());
            prop_assert_eq!(plain_run(&bytes), expected);
        }

        #[test]
        fn the_index_finds_what_a_byte_loop_finds(
            bytes in proptest::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    prop::sample::select(vec![b'"', b'\\', 0x1f, 0x20, b'a', 0xe9]),
                ],
                0..300,
            ),
            from in 0..310usize,
        ) {
            let mut index = Vec::new();
            index_specials(&bytes, &mut index);
            let expected = bytes
                .iter()
                .enumerate()
                .skip(from)
                .find(|&(_, &b)| b == b'"' || b == b'\\' || b < 0x20)
                .map_or(bytes.len(), |(at, _)| at);
            prop_assert_eq!(next_special(&index, bytes.len(), from), expected);
        }

        #[test]
        fn agrees_with_serde_json(text in jsonish()) {
            prop_assert_eq!(validate(text.as_bytes()).is_ok(), serde_accepts(&text), "{}", text);
        }
    }
}
