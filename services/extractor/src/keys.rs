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

type Entry = Arc<OnceCell<KeyAnswer>>;

/// Caches answers by encrypted key (and the master key id it names). Concurrent callers
/// asking for the same key wait for the one request in flight rather than sending their own.
/// Refusals are cached too, so a bad key costs one request, not one per record. The keys
/// are wiped when the cache is dropped at the end of the run.
#[derive(Debug)]
pub struct KeyCache {
    provider: KeyProvider,
    entries: Mutex<HashMap<(String, String), Entry>>,
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
        let entry = {
            let mut entries = self
                .entries
                .lock()
                .map_err(|_| ExtractorError::Worker("the key cache lock was poisoned".into()))?;
            entries
                .entry((key_id.to_owned(), encrypted_key.to_owned()))
                .or_default()
                .clone()
        };
        let answer = entry
            .get_or_try_init(|| async {
                match self.provider.decrypt(key_id, encrypted_key).await {
                    Ok(key) => Ok(KeyAnswer::Key(key)),
                    Err(e) if e.is_key_refusal() => Ok(KeyAnswer::Refused(e.to_string())),
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(answer.clone())
    }

    /// The answer already had for this key, without waiting: `None` when it has not been
    /// asked for, or its request is still in flight.
    pub fn known(&self, key_id: &str, encrypted_key: &str) -> Option<KeyAnswer> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(&(key_id.to_owned(), encrypted_key.to_owned()))?
            .get()
            .cloned()
    }

    /// Distinct keys asked for so far.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
