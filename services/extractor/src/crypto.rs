//! `dbObject` decryption: AES-128 in CTR mode, the 16-byte initialisation vector being the
//! initial 128-bit big-endian counter (Java's `AES/CTR/NoPadding`), no padding.

use std::fmt;

use aes::Aes128;
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ctr::cipher::{KeyIvInit, StreamCipher};
use zeroize::Zeroizing;

/// The whole 128-bit block is the counter: a 64-bit counter (`Ctr64BE`) would wrap
/// differently after 2^64 blocks from an IV whose low half is near its end.
type Aes128Ctr = ctr::Ctr128BE<Aes128>;

pub const KEY_LEN: usize = 16;
pub const IV_LEN: usize = 16;

/// Base64 as the producers write it; padding is accepted with or without, since Java and
/// Python encoders differ there and nothing is gained by refusing either.
pub const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A plaintext data key. Its bytes are wiped when it is dropped, and neither `Debug` nor
/// anything else prints them.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A key from raw bytes; AES-128 needs exactly 16.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            format!(
                "the plaintext data key is {} bytes; AES-128 needs {KEY_LEN}",
                bytes.len()
            )
        })?;
        Ok(Self(Zeroizing::new(array)))
    }

    /// A key from its base64 text, as the data key service returns it.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = Zeroizing::new(
            BASE64
                .decode(text.trim())
                .map_err(|e| format!("the plaintext data key is not base64: {e}"))?,
        );
        Self::from_bytes(&bytes)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Decrypts (or, CTR being symmetric, encrypts) `data` in place.
pub fn apply_keystream(key: &DataKey, iv: &[u8; IV_LEN], data: &mut [u8]) {
    // The cipher holds the expanded key; with the `zeroize` features it wipes it on drop.
    let mut cipher = Aes128Ctr::new(&(*key.0).into(), &(*iv).into());
    cipher.apply_keystream(data);
}

/// Decodes a base64 initialisation vector, which must be 16 bytes.
pub fn decode_iv(text: &str) -> Result<[u8; IV_LEN], String> {
    let bytes = BASE64
        .decode(text)
        .map_err(|e| format!("`initialisationVector` is not base64: {e}"))?;
    bytes.as_slice().try_into().map_err(|_| {
        format!(
            "`initialisationVector` is {} bytes; AES-CTR needs {IV_LEN}",
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{BlockCipherEncrypt, KeyInit};

    fn b64(text: &str) -> Vec<u8> {
        BASE64.decode(text).expect("valid base64")
    }

    #[test]
    fn the_published_vector_decrypts() {
        let key = DataKey::from_base64("9IGlYTqyhBVKZBav1uROVA==").expect("16-byte key");
        let iv = decode_iv("vtA/hDISUq2BacN2iklB8g==").expect("16-byte iv");
        let mut data = b64("ZLDdPh9IXexOzCztXNtC/uFASJVFU+RhIzu7/x8DzUmenZlO");
        apply_keystream(&key, &iv, &mut data);
        assert_eq!(data, b"12b1a332-5b46-4ad7-bd98-6f8deea3ecb7");

        apply_keystream(&key, &iv, &mut data);
        assert_eq!(
            BASE64.encode(&data),
            "ZLDdPh9IXexOzCztXNtC/uFASJVFU+RhIzu7/x8DzUmenZlO",
            "encrypting the plaintext gives the published ciphertext"
        );
    }

    #[test]
    fn the_counter_carries_across_all_128_bits() {
        let raw_key = [7u8; 16];
        let key = DataKey::from_bytes(&raw_key).expect("key");
        // The low 64 bits are at their end: block 2's counter must carry into the high half.
        let mut iv = [0u8; 16];
        iv[7] = 0x01;
        iv[8..].fill(0xff);
        let mut data = [0u8; 32];
        apply_keystream(&key, &iv, &mut data);

        let aes = Aes128::new(&raw_key.into());
        let mut first = iv.into();
        aes.encrypt_block(&mut first);
        let mut next = [0u8; 16];
        next[7] = 0x02;
        let mut second = next.into();
        aes.encrypt_block(&mut second);
        assert_eq!(data[..16], first[..]);
        assert_eq!(data[16..], second[..]);
    }

    #[test]
    fn keys_and_ivs_of_the_wrong_size_are_refused_and_keys_never_print() {
        assert_eq!(
            DataKey::from_bytes(&[1; 32]).unwrap_err(),
            "the plaintext data key is 32 bytes; AES-128 needs 16"
        );
        assert!(
            DataKey::from_base64("not base64!")
                .unwrap_err()
                .contains("not base64")
        );
        assert_eq!(
            decode_iv("AAAA").unwrap_err(),
            "`initialisationVector` is 3 bytes; AES-CTR needs 16"
        );
        let key = DataKey::from_base64("9IGlYTqyhBVKZBav1uROVA").expect("unpadded is accepted");
        assert_eq!(format!("{key:?}"), "DataKey(<redacted>)");
    }
}
