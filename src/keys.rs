//! Keys in the encodings the Sigstore servers read.
//!
//! Private keys leave this module only as PKCS#8: plain (`PRIVATE KEY`, for
//! ct_server, whose loader cannot decrypt PBES2) or encrypted with PBES2,
//! PBKDF2-HMAC-SHA256 and AES-256-CBC (`ENCRYPTED PRIVATE KEY`), the one
//! scheme every Fulcio and Rekor version decrypts. Values holding private
//! material are zeroized on drop and never logged.

use pkcs8::{
    DecodePrivateKey, EncodePrivateKey, EncodePublicKey, EncryptedPrivateKeyInfo, LineEnding,
    PrivateKeyInfo, der::Decode, pkcs5::pbes2,
};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::api::KeyAlgorithm;

/// What a key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// RSA (3072 bits when generated here).
    Rsa,
    /// Ed25519 (for the Rekor v2 log, whose checkpoints witnesses cosign).
    Ed25519,
}

impl From<KeyAlgorithm> for Algorithm {
    fn from(a: KeyAlgorithm) -> Self {
        match a {
            KeyAlgorithm::EcdsaP256 => Self::EcdsaP256,
            KeyAlgorithm::EcdsaP384 => Self::EcdsaP384,
            KeyAlgorithm::Rsa3072 => Self::Rsa,
        }
    }
}

/// The SubjectPublicKeyInfo DER of an Ed25519 key is this prefix and the
/// 32-byte key (RFC 8410).
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// PBKDF2 rounds for encrypted keys (what scaffolding and cosign use).
const PBKDF2_ROUNDS: u32 = 100_000;

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Generation or encoding failed.
    #[error("cannot encode the key: {0}")]
    Encode(String),
    /// The PEM is not a private key this operator can use.
    #[error("{0}")]
    Unsupported(String),
    /// Decryption failed.
    #[error("cannot decrypt the private key: wrong password or not PBES2-encrypted PKCS#8")]
    Decrypt,
}

/// A private key, held as PKCS#8 DER.
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The public key, SubjectPublicKeyInfo DER.
    pub public_der: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn enc(e: impl std::fmt::Display) -> KeyError {
    KeyError::Encode(e.to_string())
}

impl PrivateKey {
    /// A fresh key.
    pub fn generate(algorithm: impl Into<Algorithm>) -> Result<Self, KeyError> {
        let pkcs8 = match algorithm.into() {
            Algorithm::EcdsaP256 => p256::SecretKey::random(&mut OsRng)
                .to_pkcs8_der()
                .map_err(enc)?,
            Algorithm::EcdsaP384 => p384::SecretKey::random(&mut OsRng)
                .to_pkcs8_der()
                .map_err(enc)?,
            Algorithm::Rsa => rsa::RsaPrivateKey::new(&mut OsRng, 3072)
                .map_err(enc)?
                .to_pkcs8_der()
                .map_err(enc)?,
            Algorithm::Ed25519 => {
                // Version 1 (no public key inside): what Go's
                // x509.ParsePKCS8PrivateKey and OpenSSL read everywhere.
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&rng)
                    .map_err(|e| enc(format!("Ed25519: {e}")))?;
                return Self::from_pkcs8_der(doc.as_ref());
            }
        };
        Self::from_pkcs8_der(pkcs8.as_bytes())
    }

    /// Reads PKCS#8 DER (P-256, P-384, RSA of 2048 to 4096 bits, or
    /// Ed25519).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        use aws_lc_rs::signature::KeyPair as _;
        let pkcs8 = Zeroizing::new(der.to_vec());
        if let Ok(k) = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let mut public_der = ED25519_SPKI_PREFIX.to_vec();
            public_der.extend_from_slice(k.public_key().as_ref());
            return Ok(Self {
                pkcs8,
                algorithm: Algorithm::Ed25519,
                public_der,
            });
        }
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
            let public_der = k.public_key().to_public_key_der().map_err(enc)?;
            return Ok(Self {
                pkcs8,
                algorithm: Algorithm::EcdsaP256,
                public_der: public_der.into_vec(),
            });
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_der(der) {
            let public_der = k.public_key().to_public_key_der().map_err(enc)?;
            return Ok(Self {
                pkcs8,
                algorithm: Algorithm::EcdsaP384,
                public_der: public_der.into_vec(),
            });
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
            use rsa::traits::PublicKeyParts;
            let bits = k.size() * 8;
            if !(2048..=4096).contains(&bits) {
                return Err(KeyError::Unsupported(format!(
                    "RSA keys must have 2048 to 4096 bits, this one has {bits}"
                )));
            }
            let public_der = rsa::RsaPublicKey::from(&k)
                .to_public_key_der()
                .map_err(enc)?;
            return Ok(Self {
                pkcs8,
                algorithm: Algorithm::Rsa,
                public_der: public_der.into_vec(),
            });
        }
        Err(KeyError::Unsupported(
            "unsupported private key: expected ECDSA P-256, ECDSA P-384, RSA or Ed25519".into(),
        ))
    }

    /// Reads a PEM private key: `PRIVATE KEY`, `EC PRIVATE KEY`, `RSA
    /// PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with `password`.
    pub fn from_pem(pem: &str, password: Option<&str>) -> Result<Self, KeyError> {
        let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| KeyError::Unsupported(format!("not a PEM private key: {e}")))?;
        let der = Zeroizing::new(der);
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "ENCRYPTED PRIVATE KEY" => {
                let password = password.ok_or_else(|| {
                    KeyError::Unsupported("the key is encrypted but no password was given".into())
                })?;
                let info = EncryptedPrivateKeyInfo::from_der(&der).map_err(|e| {
                    KeyError::Unsupported(format!("bad ENCRYPTED PRIVATE KEY: {e}"))
                })?;
                let plain = info.decrypt(password).map_err(|_| KeyError::Decrypt)?;
                Self::from_pkcs8_der(plain.as_bytes())
            }
            "EC PRIVATE KEY" => {
                let sec1 = sec1::EcPrivateKey::from_der(&der)
                    .map_err(|e| KeyError::Unsupported(format!("bad EC PRIVATE KEY: {e}")))?;
                if let Ok(k) = p256::SecretKey::try_from(sec1.clone()) {
                    return Self::from_pkcs8_der(k.to_pkcs8_der().map_err(enc)?.as_bytes());
                }
                let k = p384::SecretKey::try_from(sec1).map_err(|_| {
                    KeyError::Unsupported("EC keys must be on P-256 or P-384".into())
                })?;
                Self::from_pkcs8_der(k.to_pkcs8_der().map_err(enc)?.as_bytes())
            }
            "RSA PRIVATE KEY" => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                let k = rsa::RsaPrivateKey::from_pkcs1_der(&der)
                    .map_err(|e| KeyError::Unsupported(format!("bad RSA PRIVATE KEY: {e}")))?;
                Self::from_pkcs8_der(k.to_pkcs8_der().map_err(enc)?.as_bytes())
            }
            other => Err(KeyError::Unsupported(format!(
                "a PEM block {other:?} is not a private key; expected PRIVATE KEY, \
                 ENCRYPTED PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY"
            ))),
        }
    }

    /// The private key, PKCS#8 DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as PEM `PUBLIC KEY`.
    pub fn public_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.public_der)
    }

    /// The private key as plain PEM `PRIVATE KEY`.
    pub fn pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem_encode("PRIVATE KEY", &self.pkcs8))
    }

    /// The private key as PEM `ENCRYPTED PRIVATE KEY` (PBES2,
    /// PBKDF2-HMAC-SHA256, AES-256-CBC) under `password`.
    pub fn encrypted_pem(&self, password: &str) -> Result<String, KeyError> {
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut iv);
        let params =
            pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ROUNDS, &salt, &iv).map_err(enc)?;
        let info = PrivateKeyInfo::try_from(self.pkcs8.as_slice()).map_err(enc)?;
        let doc = info.encrypt_with_params(params, password).map_err(enc)?;
        let pem = doc
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .map_err(enc)?;
        Ok(pem.to_string())
    }

    /// The private key as unencrypted SEC1 PEM `EC PRIVATE KEY` naming
    /// its curve (Go's x509.ParseECPrivateKey, which TesseraCT uses, needs
    /// the curve inside); `None` for a key that is not ECDSA.
    pub fn sec1_pem(&self) -> Option<Zeroizing<String>> {
        use pkcs8::der::Encode;
        if !matches!(self.algorithm, Algorithm::EcdsaP256 | Algorithm::EcdsaP384) {
            return None;
        }
        let info = PrivateKeyInfo::try_from(self.pkcs8.as_slice()).ok()?;
        let curve = info.algorithm.parameters_oid().ok()?;
        let mut sec1 = sec1::EcPrivateKey::from_der(info.private_key).ok()?;
        sec1.parameters = Some(sec1::EcParameters::NamedCurve(curve));
        let der = Zeroizing::new(sec1.to_der().ok()?);
        Some(Zeroizing::new(pem_encode("EC PRIVATE KEY", &der)))
    }

    /// The raw 32-byte public key of an Ed25519 key.
    pub fn ed25519_public(&self) -> Option<&[u8]> {
        (self.algorithm == Algorithm::Ed25519)
            .then(|| self.public_der.get(ED25519_SPKI_PREFIX.len()..))
            .flatten()
    }

    /// A signer for building certificates.
    pub fn rcgen_key(&self) -> Result<rcgen::KeyPair, KeyError> {
        rcgen::KeyPair::try_from(self.pkcs8.as_slice()).map_err(enc)
    }
}

/// DER as one PEM block. Encoding fails only on an invalid label or a
/// length beyond memory, neither possible with the fixed labels used here.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    pkcs8::der::pem::encode_string(label, LineEnding::LF, der).unwrap_or_default()
}

/// A random password of 32 letters and digits (190 bits).
pub fn random_password() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = Zeroizing::new(String::with_capacity(32));
    while out.len() < 32 {
        let mut b = [0u8; 1];
        OsRng.fill_bytes(&mut b);
        // Rejection sampling keeps the choice uniform.
        if usize::from(b[0]) < ALPHABET.len() * 4 {
            out.push(char::from(ALPHABET[usize::from(b[0]) % ALPHABET.len()]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_algorithm_through_encryption() {
        for alg in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Rsa3072,
        ] {
            let key = PrivateKey::generate(alg).unwrap();
            let password = random_password();
            let pem = key.encrypted_pem(&password).unwrap();
            assert!(
                pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
                "{alg:?}"
            );
            let back = PrivateKey::from_pem(&pem, Some(&password)).unwrap();
            assert_eq!(back.public_der, key.public_der, "{alg:?}");
            assert_eq!(back.algorithm, Algorithm::from(alg));
            assert!(matches!(
                PrivateKey::from_pem(&pem, Some("wrong")),
                Err(KeyError::Decrypt)
            ));
            let plain = PrivateKey::from_pem(&key.pkcs8_pem(), None).unwrap();
            assert_eq!(plain.public_der, key.public_der);
            key.rcgen_key().unwrap();
        }
    }

    #[test]
    fn encryption_is_pbes2_pbkdf2_sha256_aes256cbc() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = key.encrypted_pem("pw").unwrap();
        let (_, der) = pkcs8::der::pem::decode_vec(pem.as_bytes()).unwrap();
        let info = EncryptedPrivateKeyInfo::from_der(&der).unwrap();
        let pkcs8::pkcs5::EncryptionScheme::Pbes2(params) = info.encryption_algorithm else {
            panic!("not PBES2")
        };
        let pbes2::Kdf::Pbkdf2(kdf) = params.kdf else {
            panic!("not PBKDF2")
        };
        assert_eq!(kdf.prf, pbes2::Pbkdf2Prf::HmacWithSha256);
        assert_eq!(kdf.iteration_count, PBKDF2_ROUNDS);
        assert!(matches!(
            params.encryption,
            pbes2::EncryptionScheme::Aes256Cbc { .. }
        ));
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        let err = PrivateKey::from_pem(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not a private key"), "{err}");
        assert!(PrivateKey::from_pem("garbage", None).is_err());
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = key.encrypted_pem("pw").unwrap();
        let err = PrivateKey::from_pem(&pem, None).unwrap_err().to_string();
        assert!(err.contains("no password"), "{err}");
    }

    #[test]
    fn reads_sec1_keys() {
        use p256::pkcs8::LineEnding;
        let k = p256::SecretKey::random(&mut OsRng);
        let sec1 = k.to_sec1_pem(LineEnding::LF).unwrap();
        let key = PrivateKey::from_pem(&sec1, None).unwrap();
        assert_eq!(key.algorithm, Algorithm::EcdsaP256);
        let again = key.sec1_pem().unwrap();
        assert!(again.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        let (_, der) = pkcs8::der::pem::decode_vec(again.as_bytes()).unwrap();
        let parsed = sec1::EcPrivateKey::from_der(&der).unwrap();
        assert_eq!(
            parsed
                .parameters
                .and_then(|p| p.named_curve())
                .map(|o| o.to_string()),
            Some("1.2.840.10045.3.1.7".to_owned()),
            "the curve is named inside"
        );
        assert_eq!(
            PrivateKey::from_pem(&again, None).unwrap().public_der,
            key.public_der
        );
    }

    #[test]
    fn ed25519_keys_are_pkcs8_v1_with_an_rfc8410_public_key() {
        let key = PrivateKey::generate(Algorithm::Ed25519).unwrap();
        assert_eq!(key.algorithm, Algorithm::Ed25519);
        assert_eq!(key.public_der.len(), 44);
        assert_eq!(key.ed25519_public().map(<[u8]>::len), Some(32));
        let info = PrivateKeyInfo::try_from(key.pkcs8_der()).unwrap();
        assert!(info.public_key.is_none(), "version 1: no public key inside");
        let pem = key.encrypted_pem("pw").unwrap();
        let back = PrivateKey::from_pem(&pem, Some("pw")).unwrap();
        assert_eq!(back.public_der, key.public_der);
        assert!(key.sec1_pem().is_none());
        // The public key parses as an SPKI with the Ed25519 OID.
        let (_, spki) =
            <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<
                '_,
                x509_parser::error::X509Error,
            >>::from_der(&key.public_der)
            .unwrap();
        assert_eq!(spki.algorithm.algorithm.to_id_string(), "1.3.101.112");
    }

    #[test]
    fn passwords_are_random_alphanumerics() {
        let a = random_password();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(*a, *random_password());
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        assert_eq!(
            format!("{key:?}"),
            "PrivateKey { algorithm: EcdsaP256, .. }"
        );
    }
}
