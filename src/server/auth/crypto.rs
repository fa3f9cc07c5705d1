//! Encryption of Spotify tokens (and PKCE verifiers) at rest: AES-256-GCM, a fresh random
//! nonce per value, the owner bound in as associated data so a ciphertext copied to another
//! user's row does not decrypt. Keys rotate: the first key encrypts, every listed key
//! decrypts, and each ciphertext is stored with the id of its key.

use crate::server::config::TokenKey;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("no key with id {0:?} is configured (was it removed from TOKEN_ENCRYPTION_KEYS?)")]
    UnknownKey(String),
    #[error("ciphertext does not decrypt (wrong key, owner or corrupted data)")]
    Corrupt,
}

#[derive(Clone)]
pub struct TokenCipher {
    keys: Vec<(String, Aes256Gcm)>,
}

/// A value sealed under the key `key_id`: `nonce || ciphertext+tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

impl TokenCipher {
    /// From configured keys; none configured (demo mode) means one random key for this
    /// process, so demo sign-ins last until a restart.
    pub fn new(keys: &[TokenKey]) -> Self {
        if keys.is_empty() {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            return TokenCipher {
                keys: vec![("ephemeral".to_string(), Aes256Gcm::new(&key.into()))],
            };
        }
        TokenCipher {
            keys: keys
                .iter()
                .map(|k| (k.id.clone(), Aes256Gcm::new(k.key.expose_secret().into())))
                .collect(),
        }
    }

    pub fn current_key_id(&self) -> &str {
        &self.keys[0].0
    }

    pub fn seal(&self, plaintext: &str, owner: &str) -> Sealed {
        let (key_id, cipher) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Sealed {
            key_id: key_id.clone(),
            bytes,
        }
    }

    pub fn open(&self, sealed: &Sealed, owner: &str) -> Result<String, CryptoError> {
        let cipher = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .map(|(_, c)| c)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN {
            return Err(CryptoError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Corrupt)
    }
}

/// SHA-256, for values stored only as hashes (session tokens, OAuth states).
pub fn sha256(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// A random URL-safe token with 256 bits of entropy.
pub fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> TokenKey {
        TokenKey {
            id: id.into(),
            key: std::sync::Arc::new(secrecy::SecretBox::new(Box::new([byte; 32]))),
        }
    }

    #[test]
    fn round_trips_and_never_contains_the_plaintext() {
        let cipher = TokenCipher::new(&[key("k1", 1)]);
        let sealed = cipher.seal("BQD-secret-access-token", "alice");
        assert_eq!(sealed.key_id, "k1");
        assert!(!sealed.bytes.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            cipher.open(&sealed, "alice").unwrap(),
            "BQD-secret-access-token"
        );
        // Same plaintext twice: different nonces, different ciphertexts.
        assert_ne!(
            cipher.seal("x", "alice").bytes,
            cipher.seal("x", "alice").bytes
        );
    }

    #[test]
    fn a_ciphertext_moved_to_another_owner_does_not_open() {
        let cipher = TokenCipher::new(&[key("k1", 1)]);
        let sealed = cipher.seal("token", "alice");
        assert_eq!(cipher.open(&sealed, "mallory"), Err(CryptoError::Corrupt));
        let mut tampered = sealed.clone();
        *tampered.bytes.last_mut().unwrap() ^= 1;
        assert_eq!(cipher.open(&tampered, "alice"), Err(CryptoError::Corrupt));
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable_and_seals_with_the_new_key() {
        let old = TokenCipher::new(&[key("k1", 1)]);
        let sealed_old = old.seal("token", "alice");
        let rotated = TokenCipher::new(&[key("k2", 2), key("k1", 1)]);
        assert_eq!(rotated.open(&sealed_old, "alice").unwrap(), "token");
        assert_eq!(rotated.seal("token", "alice").key_id, "k2");
        let retired = TokenCipher::new(&[key("k2", 2)]);
        assert_eq!(
            retired.open(&sealed_old, "alice"),
            Err(CryptoError::UnknownKey("k1".into()))
        );
    }
}
