//! Plaintext data keys: where they come from (the data key service or KMS) and the cache
//! that asks for each distinct encrypted key once per run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::ExtractorError;
use crate::crypto::DataKey;
use crate::dks::DksClient;
use crate::kms::KmsKeys;

/// Where plaintext data keys come from.
#[derive(Debug)]
pub enum KeyProvider {
    Dks(Box<DksClient>),
    Kms(KmsKeys),
}

impl KeyProvider {
    async fn decrypt(&self, key_id: &str, encrypted_key: &str) -> Result<DataKey, ExtractorError> {
        match self {
            KeyProvider::Dks(dks) => dks.decrypt(key_id, encrypted_key).await,
            KeyProvider::Kms(kms) => kms.decrypt(key_id, encrypted_key).await,
        }
    }
}

/// What the provider said about one encrypted key.
#[derive(Debug, Clone)]
pub enum KeyAnswer {
    Key(DataKey),
    /// A definite refusal: every record under this key is rejected with this reason.
    Refused(String),
}

/// One wrapped data key in the cache: what names it, and the provider's answer once had.
#[derive(Debug)]
pub struct CachedKey {
    key_id: String,
    encrypted_key: String,
    answer: OnceCell<KeyAnswer>,
}

impl CachedKey {
    /// The id of the master key that wrapped the data key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The wrapped data key, base64, as the data key service takes it.
    pub fn encrypted_key(&self) -> &str {
        &self.encrypted_key
    }

    /// The provider's answer, once it has been had.
    pub fn answer(&self) -> Option<&KeyAnswer> {
        self.answer.get()
    }

    /// Whether this is the key named so (bytes, as a record's envelope holds them).
    pub fn names(&self, key_id: &[u8], encrypted_key: &[u8]) -> bool {
        self.encrypted_key.as_bytes() == encrypted_key && self.key_id.as_bytes() == key_id
    }
}

/// What a wrapped key is looked up by: its last 16 bytes (fewer, zero-padded, if it is
/// shorter). A wrapped key ends in ciphertext, so its ends tell keys apart, where its start
/// may be a header that every key of one master key shares (a KMS ciphertext blob's does).
pub fn key_tail(encrypted_key: &[u8]) -> u128 {
    let tail = &encrypted_key[encrypted_key.len().saturating_sub(16)..];
    let mut bytes = [0; 16];
    bytes[..tail.len()].copy_from_slice(tail);
    u128::from_le_bytes(bytes)
}

/// Caches answers by encrypted key (and the master key id it names). Concurrent callers
/// asking for the same key wait for the one request in flight rather than sending their own.
/// Refusals are cached too, so a bad key costs one request, not one per record. The keys
/// are wiped when the cache is dropped at the end of the run.
///
/// Keys are found by [`key_tail`], so a look-up copies and hashes 16 bytes, not the two
/// strings: with thousands of data keys every batch looks up hundreds (BENCH.md, "Many
/// data keys").
#[derive(Debug)]
pub struct KeyCache {
    provider: KeyProvider,
    entries: Mutex<HashMap<u128, Vec<Arc<CachedKey>>>>,
}

impl KeyCache {
    pub fn new(provider: KeyProvider) -> Self {
        Self {
            provider,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The answer for `encrypted_key` under master key `key_id`. An error here (the provider
    /// unreachable, throttling past the retries) fails the step; it is not cached, though by
    /// then the run is ending anyway.
    pub async fn get(
        &self,
        key_id: &str,
        encrypted_key: &str,
    ) -> Result<KeyAnswer, ExtractorError> {
        let entry = self.entry(key_id, encrypted_key)?;
        self.answer(&entry).await.cloned()
    }

    /// The cache's entry for this key, made if it has none yet; [`Self::answer`] fills it.
    pub fn entry(
        &self,
        key_id: &str,
        encrypted_key: &str,
    ) -> Result<Arc<CachedKey>, ExtractorError> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| ExtractorError::Worker("the key cache lock was poisoned".into()))?;
        let same_tail = entries
            .entry(key_tail(encrypted_key.as_bytes()))
            .or_default();
        if let Some(entry) = same_tail
            .iter()
            .find(|entry| entry.names(key_id.as_bytes(), encrypted_key.as_bytes()))
        {
            return Ok(entry.clone());
        }
        let entry = Arc::new(CachedKey {
            key_id: key_id.to_owned(),
            encrypted_key: encrypted_key.to_owned(),
            answer: OnceCell::new(),
        });
        same_tail.push(entry.clone());
        Ok(entry)
    }

    /// The provider's answer for `entry`, asked for once per run whoever asks.
    pub async fn answer<'e>(&self, entry: &'e CachedKey) -> Result<&'e KeyAnswer, ExtractorError> {
        entry
            .answer
            .get_or_try_init(|| async {
                match self
                    .provider
                    .decrypt(&entry.key_id, &entry.encrypted_key)
                    .await
                {
                    Ok(key) => Ok(KeyAnswer::Key(key)),
                    Err(e) if e.is_key_refusal() => Ok(KeyAnswer::Refused(e.to_string())),
                    Err(e) => Err(e),
                }
            })
            .await
    }

    /// The entry for this key when its answer has already been had, found without copying
    /// either name: `None` when it has not been asked for, or its request is still in flight.
    pub fn known(&self, key_id: &[u8], encrypted_key: &[u8]) -> Option<Arc<CachedKey>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(&key_tail(encrypted_key))?
            .iter()
            .find(|entry| entry.names(key_id, encrypted_key) && entry.answer().is_some())
            .cloned()
    }

    /// Distinct keys asked for so far.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .map_or(0, |entries| entries.values().map(Vec::len).sum())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::apply_keystream;
    use crate::dks::{DksSettings, RetryPolicy};
    use crate::loopback_dks::LoopbackDks;

    /// A key's first keystream block, to tell two keys apart without showing either.
    fn keystream(key: &DataKey) -> Vec<u8> {
        let mut block = vec![0; 16];
        apply_keystream(key, &[0; 16], &mut block);
        block
    }

    #[tokio::test]
    async fn keys_ending_alike_are_told_apart_and_known_only_once_answered() {
        let dks = LoopbackDks::start().await.expect("loopback DKS");
        // Two wrapped keys whose last 16 bytes agree: found by that tail, then compared whole.
        let tail = "c2FtZSB0YWlsIGJ5dGVzIQ==";
        let (first, second) = (format!("Zmlyc3Qg{tail}"), format!("c2Vjb25k{tail}"));
        assert_eq!(key_tail(first.as_bytes()), key_tail(second.as_bytes()));
        dks.add_key(&first, &[1; 16]);
        dks.add_key(&second, &[2; 16]);
        let client = DksClient::new(DksSettings {
            url: dks.url(),
            tls: None,
            correlation_id: "key-cache-test".to_owned(),
            retry: RetryPolicy::default(),
        })
        .expect("a client");
        let cache = KeyCache::new(KeyProvider::Dks(Box::new(client)));

        assert!(cache.known(b"master", first.as_bytes()).is_none());
        let entry = cache.entry("master", &first).expect("an entry");
        assert!(
            cache.known(b"master", first.as_bytes()).is_none(),
            "asked for is not answered"
        );
        for (wrapped, plaintext) in [(&first, [1; 16]), (&second, [2; 16])] {
            match cache.get("master", wrapped).await.expect("an answer") {
                KeyAnswer::Key(key) => assert_eq!(
                    keystream(&key),
                    keystream(&DataKey::from_bytes(&plaintext).expect("16 bytes")),
                    "{wrapped} gets its own key"
                ),
                KeyAnswer::Refused(reason) => panic!("{wrapped} refused: {reason}"),
            }
        }
        let known = cache
            .known(b"master", first.as_bytes())
            .expect("known once answered");
        assert!(Arc::ptr_eq(&known, &entry), "one entry per key");

        // The same wrapped key named under another master key is another key.
        assert!(cache.known(b"other", first.as_bytes()).is_none());
        cache.get("other", &first).await.expect("an answer");
        cache.get("master", &second).await.expect("an answer");
        assert_eq!(cache.len(), 3);
        assert_eq!(dks.requests(), 3, "one request per distinct key");
    }
}
