//! Realistic scan output for tests and the benchmark: Mongo-like documents with non-ASCII
//! text, encrypted under a handful of data keys, wrapped in the envelope and printed the way
//! `hbase shell` prints cells. Deterministic for a seed, so a test can regenerate what it
//! expects to read back.

use std::io::{self, Write};

use base64::Engine;
use serde_json::json;

use crate::crypto::{BASE64, DataKey, apply_keystream};
use crate::scan::escape;

/// A small, fast, seeded generator (SplitMix64); test data needs no better.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        out
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A data key as a producer holds it: the id of the master key that wraps it, the wrapped
/// form written into records, and the plaintext only the key service should know.
#[derive(Debug, Clone)]
pub struct SynthKey {
    pub key_id: String,
    pub encrypted_key: String,
    pub plaintext: [u8; 16],
}

impl SynthKey {
    pub fn data_key(&self) -> DataKey {
        DataKey::from_bytes(&self.plaintext).unwrap_or_else(|_| unreachable!("16 bytes"))
    }
}

/// `count` data keys under two master keys.
pub fn keys(count: usize, seed: u64) -> Vec<SynthKey> {
    let mut rng = Rng::new(seed ^ 0x6b65_7973);
    (0..count)
        .map(|i| SynthKey {
            key_id: format!("cloudhsm:{},{}", 262_146 + i % 2, 262_150 + i % 2),
            // Real wrapped keys are a few hundred bytes of base64.
            encrypted_key: BASE64.encode(rng.bytes::<256>()),
            plaintext: rng.bytes::<16>(),
        })
        .collect()
}

/// One record before it is encrypted and printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthRecord {
    pub row: Vec<u8>,
    pub timestamp_ms: u64,
    /// `_id` as the producer wrote it (with spaces, as Python's `json.dumps` does).
    pub id_json: String,
    /// The same, compact, as the extractor writes it.
    pub id_compact: String,
    pub document: String,
    pub key_index: usize,
}

const WORDS: &[&str] = &[
    "claimant",
    "Zoë",
    "Łódź",
    "payment",
    "€120.50",
    "naïve",
    "statement",
    "Ørsted",
    "\"quoted\"",
    "back\\slash",
    "tab\there",
    "line\nbreak",
    "日本",
    "address",
    "contract",
];

/// A document of about `size` bytes (its JSON text).
pub fn document(rng: &mut Rng, index: u64, id: &serde_json::Value, size: usize) -> String {
    let mut notes = String::new();
    let mut base = json!({
        "_id": id,
        "_lastModifiedDateTime": {"$date": format!("2024-03-11T10:{:02}:{:02}.{:03}Z", index % 60, (index / 60) % 60, index % 1000)},
        "nino": format!("AA{:06}C", rng.below(1_000_000)),
        "name": {"first": WORDS[rng.below(WORDS.len() as u64) as usize], "last": "Nuñez"},
        "amounts": [rng.below(10_000), rng.below(10_000), rng.below(10_000)],
        "active": index % 3 != 0,
        "notes": "",
    });
    let skeleton = base.to_string().len();
    while skeleton + notes.len() < size {
        notes.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        notes.push(' ');
    }
    base["notes"] = serde_json::Value::String(notes);
    base.to_string()
}

/// The records of a scan, in row order.
pub fn records(
    count: usize,
    doc_size: usize,
    keys: usize,
    start_ms: u64,
    seed: u64,
) -> Vec<SynthRecord> {
    let mut rng = Rng::new(seed);
    (0..count as u64)
        .map(|i| {
            let claimant = format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                rng.next_u64() as u32,
                rng.below(0x10000),
                rng.below(0x1000),
                rng.below(0x10000),
                rng.next_u64() & 0xffff_ffff_ffff
            );
            let id = json!({"claimantId": claimant});
            let id_json = format!(r#"{{"claimantId": "{claimant}"}}"#);
            let mut row = rng.bytes::<2>().to_vec();
            row.extend_from_slice(id.to_string().as_bytes());
            SynthRecord {
                row,
                timestamp_ms: start_ms + i * 3 + rng.below(3),
                id_compact: id.to_string(),
                id_json,
                document: document(&mut rng, i, &id, doc_size),
                key_index: (i as usize) % keys.max(1),
            }
        })
        .collect()
}

/// The envelope of a record encrypted under `key` with `iv`.
pub fn envelope(id_json: &str, key: &SynthKey, iv: [u8; 16], document: &str) -> String {
    let mut ciphertext = document.as_bytes().to_vec();
    apply_keystream(&key.data_key(), &iv, &mut ciphertext);
    format!(
        r#"{{"message": {{"@type": "MONGO_UPDATE", "_id": {id_json}, "_lastModifiedDateTime": "2024-03-11T10:30:00.000+0000", "collection": "claimant", "db": "core", "encryption": {{"encryptionCipher": "AES", "initialisationVector": "{}", "encryptedEncryptionKey": "{}", "keyEncryptionKeyId": "{}"}}, "dbObject": "{}", "timestamp_created_from": "_lastModifiedDateTime"}}, "version": "core-4.master.9790", "timestamp": "2024-03-11T10:30:00.123+0000"}}"#,
        BASE64.encode(iv),
        key.encrypted_key,
        key.key_id,
        BASE64.encode(&ciphertext),
    )
}

/// A cell line as `hbase shell` prints it.
pub fn cell_line(row: &[u8], timestamp_ms: u64, value: &[u8]) -> String {
    format!(
        " {} column=cf:record, timestamp={timestamp_ms}, value={}",
        escape(row),
        escape(value)
    )
}

pub const HEADER: &str = "ROW                                COLUMN+CELL";

/// Writes a whole scan's output: the shell's banner, the header, a line per record, the
/// row count and the timing line.
pub fn write_scan(
    out: &mut impl Write,
    records: &[SynthRecord],
    keys: &[SynthKey],
    seed: u64,
) -> io::Result<()> {
    let mut rng = Rng::new(seed ^ 0x6976);
    writeln!(out, "HBase Shell")?;
    writeln!(
        out,
        "Version 2.4.17, r7fd096f39b4284da9a71da3ce67c48d259ffa79a"
    )?;
    writeln!(out, "{HEADER}")?;
    for record in records {
        let key = &keys[record.key_index];
        let value = envelope(&record.id_json, key, rng.bytes::<16>(), &record.document);
        writeln!(
            out,
            "{}",
            cell_line(&record.row, record.timestamp_ms, value.as_bytes())
        )?;
    }
    writeln!(out, "{} row(s)", records.len())?;
    writeln!(out, "Took 12.3456 seconds")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{ScanItem, ScanReader};

    #[test]
    fn synthetic_scans_read_back_and_decrypt() {
        let keys = keys(3, 1);
        let records = records(20, 1024, keys.len(), 1_710_149_400_001, 7);
        assert!(
            records
                .iter()
                .all(|r| (900..1300).contains(&r.document.len())),
            "about 1 KB"
        );
        let mut text = Vec::new();
        write_scan(&mut text, &records, &keys, 7).expect("write");
        let mut reader = ScanReader::new("synthetic", text.as_slice());
        let mut read = 0;
        while let Some(item) = reader.next_item().expect("valid scan") {
            let ScanItem::Cell(cell) = item else {
                panic!("reject: {item:?}")
            };
            let expected = &records[read];
            assert_eq!(cell.row, expected.row);
            let sealed = crate::record::open(cell).expect("envelope");
            let record = crate::record::decrypt(sealed, &keys[expected.key_index].data_key())
                .expect("decrypts");
            assert_eq!(record.record, expected.document.as_bytes());
            assert_eq!(record.id, expected.id_compact);
            read += 1;
        }
        assert_eq!(read, 20);
        assert_eq!(reader.summary().rows, 20);
    }
}
