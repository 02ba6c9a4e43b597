//! From a cell's value to a record: the JSON envelope
//! `{"message": {"_id": .., "encryption": {..}, "dbObject": "<b64>"}}`, then the decrypted
//! document. Every way this can fail is a reason for a reject, never a panic or an error.

use std::ops::Range;

use base64::Engine;
use bytes::Bytes;

use crate::crypto::{BASE64, DataKey, IV_LEN, apply_keystream, decode_iv};
use crate::json;
use crate::scan::{Cell, Reject, escape};

/// One decrypted record, as the writers take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's `_id` as compact JSON, in the order the producer wrote its fields.
    pub id: String,
    /// The cell's timestamp, epoch ms.
    pub timestamp_ms: u64,
    /// The decrypted document, exactly as decrypted: checked to be UTF-8 and one JSON value.
    /// Bytes rather than a `String`, so the decrypted buffer is kept as it is instead of being
    /// copied into one (the standard library's own UTF-8 check is the slower one).
    pub record: Vec<u8>,
}

/// A record whose envelope was read, waiting for its data key. The key's names stay where
/// they are in the cell's value rather than being copied out for every record.
#[derive(Debug)]
pub struct Sealed {
    row: Vec<u8>,
    line: u64,
    pub timestamp_ms: u64,
    id: String,
    iv: [u8; IV_LEN],
    ciphertext: Vec<u8>,
    value: Bytes,
    key_id: Text,
    encrypted_key: Text,
}

/// A string of the envelope: where it lies in the value, or (when it was written with
/// escapes) its decoded text.
#[derive(Debug)]
enum Text {
    At(Range<usize>),
    Decoded(String),
}

impl Sealed {
    pub fn reject(&self, reason: impl Into<String>) -> Reject {
        Reject {
            row_key: Some(escape(&self.row)),
            timestamp_ms: Some(self.timestamp_ms),
            line: Some(self.line),
            reason: reason.into(),
        }
    }

    /// The id of the master key that wrapped the data key.
    pub fn key_id(&self) -> &str {
        as_str(&self.value, &self.key_id)
    }

    /// The wrapped data key, base64, as the data key service takes it.
    pub fn encrypted_key(&self) -> &str {
        as_str(&self.value, &self.encrypted_key)
    }

    /// What the data key is looked up by ([`crate::keys::key_tail`]).
    pub fn key_tail(&self) -> u128 {
        crate::keys::key_tail(as_bytes(&self.value, &self.encrypted_key))
    }

    /// The master key id and the wrapped data key as bytes, without the UTF-8 check the
    /// `&str` accessors repeat.
    pub fn wrapped_key(&self) -> (&[u8], &[u8]) {
        (
            as_bytes(&self.value, &self.key_id),
            as_bytes(&self.value, &self.encrypted_key),
        )
    }

    /// Whether this record's data key is the one named so.
    pub fn has_key(&self, key_id: &str, encrypted_key: &str) -> bool {
        self.wrapped_key() == (key_id.as_bytes(), encrypted_key.as_bytes())
    }
}

/// Reads a cell's envelope
/// `{"message": {"_id": .., "encryption": {..}, "dbObject": "<b64>"}}`. The ciphertext is
/// decoded here so the decrypting step only runs AES.
pub fn open(cell: Cell) -> Result<Sealed, Reject> {
    let value = cell
        .value()
        .map_err(|e| Reject::of_cell(&cell, format!("value: {e}")))?;
    match read_envelope(&value) {
        Ok(opened) => Ok(Sealed {
            row: cell.row,
            line: cell.line,
            timestamp_ms: cell.timestamp_ms,
            id: opened.id,
            iv: opened.iv,
            ciphertext: opened.ciphertext,
            key_id: opened.key_id,
            encrypted_key: opened.encrypted_key,
            value,
        }),
        Err(reason) => Err(Reject::of_cell(&cell, reason)),
    }
}

struct Opened {
    id: String,
    iv: [u8; IV_LEN],
    ciphertext: Vec<u8>,
    key_id: Text,
    encrypted_key: Text,
}

/// Why an envelope could not be read.
enum Unreadable {
    Json(json::Invalid),
    Reason(String),
}

impl From<json::Invalid> for Unreadable {
    fn from(e: json::Invalid) -> Self {
        Unreadable::Json(e)
    }
}

/// The fields the envelope must give, as they are found in one pass over the value.
#[derive(Default)]
struct Found {
    message: bool,
    encryption: bool,
    id: Option<Range<usize>>,
    db_object: Option<Range<usize>>,
    iv: Option<Range<usize>>,
    encrypted_key: Option<Range<usize>>,
    key_id: Option<Range<usize>>,
}

fn read_envelope(value: &[u8]) -> Result<Opened, String> {
    let found = find_fields(value).map_err(|e| match e {
        Unreadable::Json(e) => format!("the value is not JSON: {e}"),
        Unreadable::Reason(reason) => reason,
    })?;
    if !found.message {
        return Err("the value has no `message`".to_owned());
    }
    let id = found.id.ok_or("`message._id` is missing")?;
    if !found.encryption {
        return Err("`message.encryption` is missing".to_owned());
    }
    let iv = text(value, found.iv, "encryption.initialisationVector")?;
    let encrypted_key = text(
        value,
        found.encrypted_key,
        "encryption.encryptedEncryptionKey",
    )?;
    let key_id = text(value, found.key_id, "encryption.keyEncryptionKeyId")?;
    let db_object = unchecked_text(value, found.db_object, "dbObject")?;

    let id =
        std::str::from_utf8(&value[id]).map_err(|e| format!("`message._id` is not UTF-8: {e}"))?;
    let iv = decode_iv(as_str(value, &iv))?;
    let ciphertext = decode_base64(value, db_object)?;
    Ok(Opened {
        id: compact_json(id),
        iv,
        ciphertext,
        key_id,
        encrypted_key,
    })
}

/// One pass over the value: descends into `message` and `message.encryption`, notes where
/// the wanted members' values lie, and checks everything else as it passes over it. A
/// wanted member given twice is refused rather than one of the two picked; `null` counts
/// as missing, as a reader with optional fields takes it.
fn find_fields(value: &[u8]) -> Result<Found, Unreadable> {
    let mut found = Found::default();
    let mut walker = json::Walker::new(value);
    walker.object(|walker, key| {
        if !json::key_is(value, &key, "message") {
            return walker.value().map(|_| ()).map_err(Unreadable::from);
        }
        if !object_follows(walker, value, found.message, "message", "message")? {
            return Ok(());
        }
        found.message = true;
        walker.object(|walker, key| {
            if json::key_is(value, &key, "encryption") {
                let path = "message.encryption";
                if !object_follows(walker, value, found.encryption, "encryption", path)? {
                    return Ok(());
                }
                found.encryption = true;
                return walker.object(|walker, key| {
                    note_member(
                        walker,
                        value,
                        &key,
                        [
                            ("initialisationVector", &mut found.iv),
                            ("encryptedEncryptionKey", &mut found.encrypted_key),
                            ("keyEncryptionKeyId", &mut found.key_id),
                        ],
                    )
                });
            }
            note_member(
                walker,
                value,
                &key,
                [("_id", &mut found.id), ("dbObject", &mut found.db_object)],
            )
        })
    })?;
    walker.end()?;
    Ok(found)
}

/// For a member that must be an object: `Ok(true)` when one follows (not yet read),
/// `Ok(false)` once a `null` was read (it counts as missing). A second one (`seen`), or a
/// value of another type, is refused; broken JSON is read first, so it is reported as such.
fn object_follows(
    walker: &mut json::Walker<'_>,
    value: &[u8],
    seen: bool,
    name: &str,
    path: &str,
) -> Result<bool, Unreadable> {
    if seen {
        return Err(twice(name));
    }
    if walker.peek() == Some(b'{') {
        return Ok(true);
    }
    match &value[walker.value()?] {
        b"null" => Ok(false),
        _ => Err(Unreadable::Reason(format!("`{path}` is not an object"))),
    }
}

fn twice(name: &str) -> Unreadable {
    Unreadable::Reason(format!("`{name}` appears twice in one object"))
}

/// Reads the value of the member named by `key`, noting where it lies if the key is one of
/// `wanted` (a name and its slot); a wanted name given twice is refused.
fn note_member<const N: usize>(
    walker: &mut json::Walker<'_>,
    value: &[u8],
    key: &Range<usize>,
    wanted: [(&str, &mut Option<Range<usize>>); N],
) -> Result<(), Unreadable> {
    let range = walker.value()?;
    for (name, slot) in wanted {
        if json::key_is(value, key, name) {
            if slot.is_some() {
                return Err(twice(name));
            }
            *slot = Some(range);
            return Ok(());
        }
    }
    Ok(())
}

/// A string member of `message` by where its contents lie, or decoded when it holds
/// escapes; `null` counts as missing.
fn text(value: &[u8], range: Option<Range<usize>>, name: &str) -> Result<Text, String> {
    let text = unchecked_text(value, range, name)?;
    check_utf8(value, &text, name)?;
    Ok(text)
}

/// Contents that lie in the value as they are must be UTF-8; decoded ones already are.
fn check_utf8(value: &[u8], text: &Text, name: &str) -> Result<(), String> {
    if let Text::At(range) = text {
        simdutf8::compat::from_utf8(&value[range.clone()])
            .map_err(|e| format!("`message.{name}` is not UTF-8: {e}"))?;
    }
    Ok(())
}

/// [`text`] without the UTF-8 check of contents without escapes, for `dbObject`: its
/// base64 decoder refuses every byte outside ASCII anyway, and the check is only made
/// when it does, to say why ([`decode_base64`]).
fn unchecked_text(value: &[u8], range: Option<Range<usize>>, name: &str) -> Result<Text, String> {
    // Only a reject needs the field's path written out: four times a record, it was a tenth
    // of reading the envelope.
    let range = match range {
        Some(range) if value[range.start] == b'"' => range.start + 1..range.end - 1,
        Some(range) if &value[range.clone()] != b"null" => {
            return Err(format!("`message.{name}` is not a string"));
        }
        _ => return Err(format!("`message.{name}` is missing")),
    };
    if memchr::memchr(b'\\', &value[range.clone()]).is_some() {
        return json::string_contents(value, range)
            .map(Text::Decoded)
            .ok_or_else(|| format!("`message.{name}` is not a valid string"));
    }
    Ok(Text::At(range))
}

fn as_bytes<'a>(value: &'a [u8], text: &'a Text) -> &'a [u8] {
    match text {
        Text::At(range) => &value[range.clone()],
        Text::Decoded(text) => text.as_bytes(),
    }
}

fn as_str<'a>(value: &'a [u8], text: &'a Text) -> &'a str {
    match text {
        // Checked to be UTF-8 when the envelope was read (`dbObject` before it is used so).
        Text::At(range) => std::str::from_utf8(&value[range.clone()]).unwrap_or(""),
        Text::Decoded(text) => text,
    }
}

/// `dbObject`'s bytes. A SIMD decoder does the work; when it refuses, the scalar one says why.
fn decode_base64(value: &[u8], text: Text) -> Result<Vec<u8>, String> {
    let decoded = match &text {
        Text::At(range) => {
            let encoded = &value[range.clone()];
            // Padding is accepted with or without, as `crypto::BASE64` does.
            let simd = if encoded.len() % 4 == 0 {
                base64_simd::STANDARD
            } else {
                base64_simd::STANDARD_NO_PAD
            };
            simd.decode_to_vec(encoded).ok()
        }
        Text::Decoded(_) => None,
    };
    if let Some(bytes) = decoded {
        return Ok(bytes);
    }
    check_utf8(value, &text, "dbObject")?;
    BASE64
        .decode(as_str(value, &text))
        .map_err(|e| format!("`message.dbObject` is not base64: {e}"))
}

/// Decrypts a sealed record. A wrong key gives bytes that are not UTF-8 JSON, which is how
/// it shows; CTR has no integrity check of its own.
pub fn decrypt(mut sealed: Sealed, key: &DataKey) -> Result<Record, Reject> {
    let mut plaintext = std::mem::take(&mut sealed.ciphertext);
    apply_keystream(key, &sealed.iv, &mut plaintext);
    // The SIMD validator is many times faster than the standard library's on text with
    // non-ASCII characters.
    let checked = match simdutf8::compat::from_utf8(&plaintext) {
        Ok(_) => json::validate(&plaintext).map_err(|e| format!("not JSON ({e})")),
        Err(e) => Err(format!("not UTF-8 ({e})")),
    };
    match checked {
        Ok(()) => Ok(Record {
            id: std::mem::take(&mut sealed.id),
            timestamp_ms: sealed.timestamp_ms,
            record: plaintext,
        }),
        Err(problem) => Err(Reject {
            row_key: Some(escape(&sealed.row)),
            timestamp_ms: Some(sealed.timestamp_ms),
            line: Some(sealed.line),
            reason: format!(
                "`dbObject` decrypted under master key `{}` is {problem}: a wrong data key or a corrupt record",
                sealed.key_id()
            ),
        }),
    }
}

/// Valid JSON without the whitespace between tokens; strings are copied as they are, so
/// field order and escapes stay the producer's.
pub fn compact_json(json: &str) -> String {
    // Byte by byte: no byte of a multi-byte UTF-8 sequence is an ASCII quote, backslash or
    // space, so the bytes kept are whole characters.
    let mut out = Vec::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in json.as_bytes() {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.push(b);
        } else if !b.is_ascii_whitespace() {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(value: &str) -> Cell {
        bytes_cell(value.as_bytes())
    }

    fn bytes_cell(value: &[u8]) -> Cell {
        Cell::new(b"\x01row".to_vec(), 42, value, 7)
    }

    fn envelope(id: &str, encryption: &str, db_object: &str) -> String {
        format!(
            r#"{{"message": {{"_id": {id}, "encryption": {encryption}, "dbObject": "{db_object}", "timestamp_created_from": "_lastModifiedDateTime"}}}}"#
        )
    }

    const ENCRYPTION: &str = r#"{"initialisationVector": "vtA/hDISUq2BacN2iklB8g==", "encryptedEncryptionKey": "AQID", "keyEncryptionKeyId": "cloudhsm:1,2"}"#;
    const CIPHERTEXT: &str = "ZLDdPh9IXexOzCztXNtC/uFASJVFU+RhIzu7/x8DzUmenZlO";

    #[test]
    fn compacts_ids_keeping_field_order_and_string_contents() {
        assert_eq!(
            compact_json("{ \"z\" : 1,\n \"a\" : \"x y\\\" }\" }"),
            r#"{"z":1,"a":"x y\" }"}"#
        );
        assert_eq!(compact_json(" \"plain\" "), r#""plain""#);
        assert_eq!(
            compact_json(r#"{"$oid": "5f0 c", "n": [1, 2]}"#),
            r#"{"$oid":"5f0 c","n":[1,2]}"#
        );
    }

    #[test]
    fn opens_an_envelope_and_decrypts_the_published_vector() {
        // The published vector's plaintext is not JSON, so its decryption is a reject that
        // still shows the key worked; a JSON document follows below.
        let sealed = open(cell(&envelope(
            r#"{ "claimantId" : "c-1", "n": 2 }"#,
            ENCRYPTION,
            CIPHERTEXT,
        )))
        .expect("a valid envelope");
        assert_eq!(sealed.id, r#"{"claimantId":"c-1","n":2}"#);
        assert_eq!(sealed.key_id(), "cloudhsm:1,2");
        assert_eq!(sealed.encrypted_key(), "AQID");
        let key = DataKey::from_base64("9IGlYTqyhBVKZBav1uROVA==").expect("key");
        let reject = decrypt(sealed, &key).expect_err("not JSON");
        assert!(reject.reason.contains("not JSON"), "{}", reject.reason);

        let mut document = br#"{"name":"Zo\u00eb","_id":{"claimantId":"c-1"}}"#.to_vec();
        let iv = decode_iv("vtA/hDISUq2BacN2iklB8g==").expect("iv");
        apply_keystream(&key, &iv, &mut document);
        let sealed = open(cell(&envelope(
            r#""c-1""#,
            ENCRYPTION,
            &BASE64.encode(&document),
        )))
        .expect("valid");
        let record = decrypt(sealed, &key).expect("decrypts");
        assert_eq!(
            record,
            Record {
                id: r#""c-1""#.to_owned(),
                timestamp_ms: 42,
                record: br#"{"name":"Zo\u00eb","_id":{"claimantId":"c-1"}}"#.to_vec(),
            }
        );
    }

    #[test]
    fn a_wrong_key_is_a_reject_naming_the_master_key() {
        let key = DataKey::from_base64("9IGlYTqyhBVKZBav1uROVA==").expect("key");
        let mut document = br#"{"a":1}"#.to_vec();
        let iv = decode_iv("vtA/hDISUq2BacN2iklB8g==").expect("iv");
        apply_keystream(&key, &iv, &mut document);
        let sealed =
            open(cell(&envelope("1", ENCRYPTION, &BASE64.encode(&document)))).expect("valid");
        let wrong = DataKey::from_bytes(&[0x55; 16]).expect("key");
        let reject = decrypt(sealed, &wrong).expect_err("garbage");
        assert_eq!(reject.row_key.as_deref(), Some("\\x01row"));
        assert_eq!(reject.line, Some(7));
        assert!(
            reject.reason.contains("under master key `cloudhsm:1,2`"),
            "{}",
            reject.reason
        );
        assert!(
            reject.reason.contains("wrong data key"),
            "{}",
            reject.reason
        );
    }

    #[test]
    fn every_missing_part_is_named() {
        let without = |field: &str| ENCRYPTION.replace(field, "unused");
        let cases = [
            ("not json".to_owned(), "the value is not JSON"),
            (r#"{"other": 1}"#.to_owned(), "has no `message`"),
            (
                r#"{"message": "#.to_owned(),
                "the value is not JSON: the text ends too early",
            ),
            (r#"{"message": null}"#.to_owned(), "has no `message`"),
            (
                r#"{"message": [1]}"#.to_owned(),
                "`message` is not an object",
            ),
            (
                r#"{"message": {"_id": 1, "encryption": 7, "dbObject": "AA=="}}"#.to_owned(),
                "`message.encryption` is not an object",
            ),
            (
                r#"{"message": {"_id": 1, "_id": 2}}"#.to_owned(),
                "`_id` appears twice in one object",
            ),
            (
                format!(
                    r#"{{"message": {{"_id": 1, "encryption": {ENCRYPTION}, "dbObject": 5}}}}"#
                ),
                "`message.dbObject` is not a string",
            ),
            (
                format!(
                    r#"{{"message": {{"_id": 1, "encryption": {ENCRYPTION}, "dbObject": "AA=="}}}} trailing"#
                ),
                "the value is not JSON: text after the value",
            ),
            (
                r#"{"message": {"encryption": {}, "dbObject": ""}}"#.to_owned(),
                "`message._id` is missing",
            ),
            (
                r#"{"message": {"_id": 1, "dbObject": "AA=="}}"#.to_owned(),
                "`message.encryption` is missing",
            ),
            (
                envelope("1", &without("initialisationVector"), CIPHERTEXT),
                "`message.encryption.initialisationVector` is missing",
            ),
            (
                envelope("1", &without("encryptedEncryptionKey"), CIPHERTEXT),
                "`message.encryption.encryptedEncryptionKey` is missing",
            ),
            (
                envelope("1", &without("keyEncryptionKeyId"), CIPHERTEXT),
                "`message.encryption.keyEncryptionKeyId` is missing",
            ),
            (
                format!(r#"{{"message": {{"_id": 1, "encryption": {ENCRYPTION}}}}}"#),
                "`message.dbObject` is missing",
            ),
            (
                envelope("1", ENCRYPTION, "%%%"),
                "`message.dbObject` is not base64",
            ),
            (
                envelope(
                    "1",
                    &ENCRYPTION.replace("vtA/hDISUq2BacN2iklB8g==", "AAAA"),
                    CIPHERTEXT,
                ),
                "`initialisationVector` is 3 bytes",
            ),
        ];
        for (value, want) in cases {
            let reject = open(cell(&value)).expect_err(&value);
            assert!(reject.reason.contains(want), "{value}: {}", reject.reason);
            assert_eq!(reject.row_key.as_deref(), Some("\\x01row"));
            assert_eq!(reject.timestamp_ms, Some(42));
        }
    }

    #[test]
    fn a_value_with_a_broken_escape_is_a_reject_naming_it() {
        let cell = Cell::printed(
            b"\x01row".to_vec(),
            42,
            bytes::Bytes::from_static(br#"{"message": \q}"#),
            7,
        );
        let reject = open(cell).expect_err("a broken escape");
        assert_eq!(
            reject.reason,
            "value: invalid escape at byte 12: a backslash must start `\\xHH`"
        );
        assert_eq!(reject.line, Some(7));
        assert_eq!(reject.row_key.as_deref(), Some("\\x01row"));
    }

    #[test]
    fn a_ciphertext_that_is_not_utf8_is_refused_as_such() {
        let mut value = envelope("1", ENCRYPTION, CIPHERTEXT).into_bytes();
        let at = memchr::memmem::find(&value, CIPHERTEXT.as_bytes()).expect("the ciphertext");
        value[at + 4] = 0xff;
        let reject = open(bytes_cell(&value)).expect_err("not base64");
        assert!(
            reject
                .reason
                .contains("`message.dbObject` is not UTF-8: invalid utf-8 sequence"),
            "{}",
            reject.reason
        );
    }

    #[test]
    fn escaped_slashes_in_base64_are_read() {
        // Some JSON writers escape `/` as `\/`.
        let encryption = ENCRYPTION.replace("vtA/hD", "vtA\\/hD");
        let sealed = open(cell(&envelope(
            "1",
            &encryption,
            &CIPHERTEXT.replace('/', "\\/"),
        )))
        .expect("escaped slashes are valid JSON");
        assert_eq!(
            sealed.iv,
            decode_iv("vtA/hDISUq2BacN2iklB8g==").expect("iv")
        );
        assert_eq!(sealed.ciphertext, BASE64.decode(CIPHERTEXT).expect("b64"));
    }
}
