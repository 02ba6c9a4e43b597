//! From a cell's value to a record: the JSON envelope
//! `{"message": {"_id": .., "encryption": {..}, "dbObject": "<b64>"}}`, then the decrypted
//! document. Every way this can fail is a reason for a reject, never a panic or an error.

use std::borrow::Cow;

use base64::Engine;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::crypto::{BASE64, DataKey, IV_LEN, apply_keystream, decode_iv};
use crate::scan::{Cell, Reject, escape};

/// One decrypted record, as the writers take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's `_id` as compact JSON, in the order the producer wrote its fields.
    pub id: String,
    /// The cell's timestamp, epoch ms.
    pub timestamp_ms: u64,
    /// The decrypted document, exactly as decrypted (valid UTF-8 JSON).
    pub record: String,
}

/// A record whose envelope was read, waiting for its data key.
#[derive(Debug)]
pub struct Sealed {
    row: Vec<u8>,
    line: u64,
    pub timestamp_ms: u64,
    id: String,
    iv: [u8; IV_LEN],
    ciphertext: Vec<u8>,
    pub key_id: String,
    pub encrypted_key: String,
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
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    message: Option<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(rename = "_id", borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    encryption: Option<Encryption<'a>>,
    #[serde(rename = "dbObject", borrow)]
    db_object: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Encryption<'a> {
    #[serde(rename = "initialisationVector", borrow)]
    iv: Option<Cow<'a, str>>,
    #[serde(rename = "encryptedEncryptionKey", borrow)]
    encrypted_key: Option<Cow<'a, str>>,
    #[serde(rename = "keyEncryptionKeyId", borrow)]
    key_id: Option<Cow<'a, str>>,
}

/// Reads a cell's envelope. The ciphertext is decoded here so the decrypting step only
/// runs AES.
pub fn open(cell: Cell) -> Result<Sealed, Reject> {
    let parsed = match serde_json::from_slice::<Envelope<'_>>(&cell.value) {
        Ok(envelope) => read_envelope(envelope),
        Err(e) => Err(format!("the value is not JSON: {e}")),
    };
    match parsed {
        Ok((id, iv, ciphertext, key_id, encrypted_key)) => Ok(Sealed {
            row: cell.row,
            line: cell.line,
            timestamp_ms: cell.timestamp_ms,
            id,
            iv,
            ciphertext,
            key_id,
            encrypted_key,
        }),
        Err(reason) => Err(Reject::of_cell(&cell, reason)),
    }
}

type Opened = (String, [u8; IV_LEN], Vec<u8>, String, String);

fn read_envelope(envelope: Envelope<'_>) -> Result<Opened, String> {
    let message = envelope.message.ok_or("the value has no `message`")?;
    let id = message.id.ok_or("`message._id` is missing")?;
    let encryption = message
        .encryption
        .ok_or("`message.encryption` is missing")?;
    let iv = encryption
        .iv
        .ok_or("`message.encryption.initialisationVector` is missing")?;
    let encrypted_key = encryption
        .encrypted_key
        .ok_or("`message.encryption.encryptedEncryptionKey` is missing")?;
    let key_id = encryption
        .key_id
        .ok_or("`message.encryption.keyEncryptionKeyId` is missing")?;
    let db_object = message.db_object.ok_or("`message.dbObject` is missing")?;
    let iv = decode_iv(&iv)?;
    let ciphertext = BASE64
        .decode(db_object.as_bytes())
        .map_err(|e| format!("`message.dbObject` is not base64: {e}"))?;
    Ok((
        compact_json(id.get()),
        iv,
        ciphertext,
        key_id.into_owned(),
        encrypted_key.into_owned(),
    ))
}

/// Decrypts a sealed record. A wrong key gives bytes that are not UTF-8 JSON, which is how
/// it shows; CTR has no integrity check of its own.
pub fn decrypt(sealed: Sealed, key: &DataKey) -> Result<Record, Reject> {
    let mut plaintext = sealed.ciphertext;
    apply_keystream(key, &sealed.iv, &mut plaintext);
    let checked = String::from_utf8(plaintext)
        .map_err(|e| format!("not UTF-8 ({e})"))
        .and_then(|text| {
            serde_json::from_str::<IgnoredAny>(&text)
                .map(|_| text)
                .map_err(|e| format!("not JSON ({e})"))
        });
    match checked {
        Ok(record) => Ok(Record {
            id: sealed.id,
            timestamp_ms: sealed.timestamp_ms,
            record,
        }),
        Err(problem) => Err(Reject {
            row_key: Some(escape(&sealed.row)),
            timestamp_ms: Some(sealed.timestamp_ms),
            line: Some(sealed.line),
            reason: format!(
                "`dbObject` decrypted under master key `{}` is {problem}: a wrong data key or a corrupt record",
                sealed.key_id
            ),
        }),
    }
}

/// Valid JSON without the whitespace between tokens; strings are copied as they are, so
/// field order and escapes stay the producer's.
pub fn compact_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(value: &str) -> Cell {
        Cell {
            row: b"\x01row".to_vec(),
            timestamp_ms: 42,
            value: value.as_bytes().to_vec(),
            line: 7,
        }
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
        assert_eq!(sealed.key_id, "cloudhsm:1,2");
        assert_eq!(sealed.encrypted_key, "AQID");
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
                record: r#"{"name":"Zo\u00eb","_id":{"claimantId":"c-1"}}"#.to_owned(),
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
