//! Signing releases with one Ed25519 key, in minisign's format: each archive and the release's
//! `SHA256SUMS` get a `.minisig` that Debian's `minisign -Vm FILE -P KEY` verifies, and the
//! release's provenance ([`provenance`]) is a DSSE envelope signed by the same key, its
//! `keyid` the minisign key id, so one public key verifies both.
//!
//! The worker signs a release's files right after packaging them and writes the signatures in
//! the release's own transaction (`worker::carry_out`): with signing on, no release row is
//! ever visible unsigned. `baler sign --all` ([`backfill`]) signs the releases made before.

pub mod backfill;
mod keys;
pub mod provenance;
pub mod verify;

use std::io::Read;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::config::SigningSettings;

pub use keys::{GeneratedKey, generate};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("reading the signing key {path}: {source}")]
    ReadKey {
        path: String,
        source: std::io::Error,
    },
    #[error("the signing key {path} {reason}")]
    BadKey { path: String, reason: String },
    #[error("signing: {0}")]
    Sign(String),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The key that signs releases, loaded and checked once when a process starts.
pub struct Signer {
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
    /// The same Ed25519 key as `secret`, for the DSSE signature (minisign signs only its own
    /// formats, not DSSE's pre-authentication encoding).
    dsse: ed25519_dalek::SigningKey,
    key_id: String,
}

/// The secret key is left out, so a stray `{:?}` never writes it to a log.
impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Where the Ed25519 key pair sits in a decrypted minisign secret key's bytes: signature
/// algorithm, KDF algorithm and checksum algorithm (2 bytes each), KDF salt (32), KDF limits
/// (8 + 8), key id (8), then the 64-byte key pair (seed, public key) and a 32-byte checksum.
const KEYPAIR_AT: usize = 2 + 2 + 2 + 32 + 8 + 8 + 8;
/// Where the Ed25519 public key sits in a minisign public key's bytes: after the signature
/// algorithm (2) and the key id (8).
const PUBLIC_AT: usize = 2 + 8;

impl Signer {
    /// Loads the key `[signing]` names: decrypted with its password when it has one, never by
    /// prompting. Refuses a key that is encrypted but given no password, a wrong password and
    /// a corrupt file, each in words that say what to change.
    pub fn load(settings: &SigningSettings) -> Result<Signer, SigningError> {
        let path = settings.key_file.display().to_string();
        let text = std::fs::read_to_string(&settings.key_file).map_err(|source| {
            SigningError::ReadKey {
                path: path.clone(),
                source,
            }
        })?;
        let bad = |reason: String| SigningError::BadKey {
            path: path.clone(),
            reason,
        };
        let secret_box = minisign::SecretKeyBox::from_string(&text)
            .map_err(|e| bad(format!("is not a minisign secret key: {e}")))?;
        let secret = match &settings.password {
            Some(password) => minisign::SecretKey::from_box(secret_box, Some(password.clone()))
                .map_err(|e| {
                    bad(format!(
                        "could not be decrypted with signing.password_env: {e}"
                    ))
                })?,
            None => unencrypted(&secret_box.into_string()).map_err(|e| {
                bad(format!(
                    "could not be read without a password ({e}); if it is encrypted, name the \
                     variable that holds its password in signing.password_env"
                ))
            })?,
        };
        Signer::from_secret(secret).map_err(bad)
    }

    fn from_secret(secret: minisign::SecretKey) -> Result<Signer, String> {
        let public = minisign::PublicKey::from_secret_key(&secret)
            .map_err(|e| format!("gives no public key: {e}"))?;
        let bytes = secret.to_bytes();
        let pair: [u8; 64] = bytes
            .get(KEYPAIR_AT..KEYPAIR_AT + 64)
            .and_then(|b| b.try_into().ok())
            .ok_or("is too short")?;
        let dsse = ed25519_dalek::SigningKey::from_keypair_bytes(&pair)
            .map_err(|e| format!("holds no valid Ed25519 key pair: {e}"))?;
        if dsse.verifying_key().as_bytes()[..] != public.to_bytes()[PUBLIC_AT..PUBLIC_AT + 32] {
            return Err("holds a key pair that does not match its public key".into());
        }
        let key_id = key_id(public.keynum());
        Ok(Signer {
            secret,
            public,
            dsse,
            key_id,
        })
    }

    /// The key id as minisign prints it (16 upper-case hex digits); the DSSE `keyid`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key's base64 line: what `minisign -P` takes.
    pub fn public_key(&self) -> String {
        self.public.to_base64()
    }

    /// The public key file (`minisign.pub`): an untrusted comment line, then the key.
    pub fn public_key_file(&self) -> String {
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            self.key_id,
            self.public_key()
        )
    }

    /// A `.minisig` of `data` whose trusted comment (covered by the signature) is
    /// `trusted_comment`. Prehashed (BLAKE2b-512), as `minisign -S` signs by default.
    pub fn sign(&self, data: impl Read, trusted_comment: &str) -> Result<String, SigningError> {
        let untrusted = format!("signature from baler key {}", self.key_id);
        minisign::sign(
            Some(&self.public),
            &self.secret,
            data,
            Some(trusted_comment),
            Some(&untrusted),
        )
        .map(|signature| signature.into_string())
        .map_err(|e| SigningError::Sign(e.to_string()))
    }

    /// [`sign`](Self::sign) over a file's bytes.
    pub fn sign_file(&self, path: &Path, trusted_comment: &str) -> Result<String, SigningError> {
        let file = std::fs::File::open(path)
            .map_err(|e| SigningError::Sign(format!("reading {}: {e}", path.display())))?;
        self.sign(std::io::BufReader::new(file), trusted_comment)
    }

    /// An Ed25519 signature over `message`, base64: DSSE's `sig`.
    fn sign_raw(&self, message: &[u8]) -> String {
        use ed25519_dalek::Signer as _;
        BASE64.encode(self.dsse.sign(message).to_bytes())
    }
}

/// An unencrypted secret key, read as it is. minisign's own `minisign -G -W` writes a zero
/// checksum for these, which the crate's `from_unencrypted_box` refuses as corrupt; the key
/// pair itself is checked instead ([`Signer::from_secret`]: the seed must give the public key).
fn unencrypted(text: &str) -> Result<minisign::SecretKey, String> {
    let line = text.lines().nth(1).ok_or("it has no key line")?.trim();
    let bytes = BASE64
        .decode(line)
        .map_err(|e| format!("its key line is not base64: {e}"))?;
    // Bytes 2..4: the key derivation algorithm, zero for a key with no password.
    if bytes.get(2..4) != Some(&[0, 0][..]) {
        return Err("it is encrypted".into());
    }
    minisign::SecretKey::from_bytes(&bytes).map_err(|e| e.to_string())
}

/// A minisign key id as minisign prints it: the 8 bytes read as a little-endian number, in
/// upper-case hex.
fn key_id(keynum: &[u8]) -> String {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&keynum[..8]);
    format!("{:016X}", u64::from_le_bytes(bytes))
}

/// The trusted comment of every signature of a release, covered by the signature: which
/// release of which project, and the commit it was built from.
pub fn trusted_comment(project: &str, version: &str, commit: &str) -> String {
    format!("baler release {project} {version} commit {commit}")
}

/// What signing a release produced, written with its rows.
#[derive(Debug, Clone, Default)]
pub struct ReleaseSignatures {
    /// One `.minisig` per archive, by file name.
    pub files: Vec<(String, String)>,
    /// The `.minisig` of the release's `SHA256SUMS`.
    pub sums: Option<String>,
    /// The public key (base64) that made them.
    pub key: Option<String>,
}

impl ReleaseSignatures {
    /// The `.minisig` of the archive `name`.
    pub fn of_file(&self, name: &str) -> Option<String> {
        self.files
            .iter()
            .find(|(file, _)| file == name)
            .map(|(_, signature)| signature.clone())
    }
}

/// One archive to sign: its name, its sha256 and where its bytes are.
pub struct ToSign<'a> {
    pub name: &'a str,
    pub sha256: &'a str,
    pub path: &'a Path,
}

/// Signs a release's archives and its `SHA256SUMS` (the text [`crate::releases::sha256sums`]
/// makes of them, exactly as it is served).
pub fn sign_release(
    signer: &Signer,
    project: &str,
    version: &str,
    commit: &str,
    archives: &[ToSign<'_>],
) -> Result<ReleaseSignatures, SigningError> {
    let comment = trusted_comment(project, version, commit);
    let mut files = Vec::with_capacity(archives.len());
    for archive in archives {
        files.push((
            archive.name.to_string(),
            signer.sign_file(archive.path, &comment)?,
        ));
    }
    let sums = crate::releases::sha256sums(archives.iter().map(|a| (a.sha256, a.name)));
    Ok(ReleaseSignatures {
        files,
        sums: Some(signer.sign(sums.as_bytes(), &comment)?),
        key: Some(signer.public_key()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unencrypted() -> Signer {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        Signer::from_secret(pair.sk).unwrap()
    }

    #[test]
    fn a_signature_verifies_with_the_public_key_and_carries_the_comment() {
        let signer = unencrypted();
        let text = signer
            .sign(&b"hello"[..], &trusted_comment("demo", "1.0.0", "abc"))
            .unwrap();
        let signature = minisign::SignatureBox::from_string(&text).unwrap();
        assert_eq!(
            signature.trusted_comment().unwrap(),
            "baler release demo 1.0.0 commit abc"
        );
        let public = minisign::PublicKey::from_base64(&signer.public_key()).unwrap();
        minisign::verify(
            &public,
            &signature,
            std::io::Cursor::new(b"hello"),
            true,
            false,
            false,
        )
        .unwrap();
        let tampered = minisign::verify(
            &public,
            &signature,
            std::io::Cursor::new(b"hellO"),
            true,
            false,
            false,
        );
        assert!(tampered.is_err());
    }

    /// A key as `minisign -G -W` writes it: no password, and a zero checksum.
    #[test]
    fn an_unencrypted_key_with_a_zero_checksum_loads() {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let mut bytes = pair.sk.to_bytes();
        let end = bytes.len();
        bytes[end - 32..].fill(0);
        let text = format!("untrusted comment: x\n{}\n", BASE64.encode(&bytes));
        let signer = Signer::from_secret(super::unencrypted(&text).unwrap()).unwrap();
        assert_eq!(signer.public_key(), pair.pk.to_base64());
        // A key pair that does not hold together is refused.
        bytes[KEYPAIR_AT + 40] ^= 1;
        let broken = format!("untrusted comment: x\n{}\n", BASE64.encode(&bytes));
        assert!(Signer::from_secret(super::unencrypted(&broken).unwrap()).is_err());
    }

    #[test]
    fn the_dsse_key_is_the_minisign_key() {
        let signer = unencrypted();
        let public = minisign::PublicKey::from_base64(&signer.public_key()).unwrap();
        let raw: [u8; 32] = public.to_bytes()[PUBLIC_AT..].try_into().unwrap();
        let verifying = ed25519_dalek::VerifyingKey::from_bytes(&raw).unwrap();
        let sig = BASE64.decode(signer.sign_raw(b"message")).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        verifying.verify_strict(b"message", &sig).unwrap();
        assert_eq!(signer.key_id().len(), 16);
        assert!(signer.public_key_file().contains(signer.key_id()));
    }
}
