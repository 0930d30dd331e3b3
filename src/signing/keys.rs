//! `baler key generate`: a minisign key pair, in the files `minisign` itself reads.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Signer, SigningError};

/// The file names `baler key generate` writes in its `--out` directory.
pub const SECRET_KEY_FILE: &str = "baler.key";
pub const PUBLIC_KEY_FILE: &str = "baler.pub";

/// What `baler key generate` wrote.
#[derive(Debug)]
pub struct GeneratedKey {
    pub secret_path: PathBuf,
    pub public_path: PathBuf,
    pub key_id: String,
    pub public_key: String,
}

/// Makes a key pair in `dir`: `baler.key` (mode 0600; encrypted with `password` when given,
/// as `minisign -G` does) and `baler.pub`. Never overwrites a key: an existing file is an
/// error, so a slip cannot destroy the key every published signature depends on.
pub fn generate(dir: &Path, password: Option<String>) -> Result<GeneratedKey, SigningError> {
    let secret_path = dir.join(SECRET_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    for path in [&secret_path, &public_path] {
        if path.exists() {
            return Err(write_error(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "it exists; baler never overwrites a key (move it away first)",
                ),
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| write_error(dir, e))?;
    let encrypted = password.is_some();
    let pair = match password {
        // Always `Some`: given `None`, the crate would prompt on the terminal.
        Some(password) => minisign::KeyPair::generate_encrypted_keypair(Some(password)),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| SigningError::Sign(e.to_string()))?;
    let secret_text = pair
        .sk
        .to_box(Some(if encrypted {
            "baler secret key (encrypted)"
        } else {
            "baler secret key (not encrypted)"
        }))
        .map_err(|e| SigningError::Sign(e.to_string()))?
        .into_string();
    // The public half, checked against the secret one (decrypting it needs the password,
    // so the key pair's public key is used).
    let public = pair.pk;
    let key_id = super::key_id(public.keynum());
    let public_key = public.to_base64();
    let public_text = format!("untrusted comment: minisign public key {key_id}\n{public_key}\n");

    write_new(&secret_path, secret_text.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public_path, public_text.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&secret_path);
        return Err(e);
    }
    if !encrypted {
        // What a server will do with it: load it and sign.
        let settings = crate::config::SigningSettings {
            key_file: secret_path.clone(),
            password: None,
        };
        Signer::load(&settings)?;
    }
    Ok(GeneratedKey {
        secret_path,
        public_path,
        key_id,
        public_key,
    })
}

/// Writes `bytes` to a new file at `path` with `mode`: to a temp file first, then linked into
/// place only if nothing is there, so no half-written key is ever visible under its name.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SigningError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(|e| write_error(path, e))?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| write_error(path, e))?;
    temp.write_all(bytes).map_err(|e| write_error(path, e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| write_error(path, e))?;
    temp.persist_noclobber(path)
        .map_err(|e| write_error(path, e.error))?;
    Ok(())
}

fn write_error(path: &Path, source: std::io::Error) -> SigningError {
    SigningError::Write {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encrypted_key_loads_with_its_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let made = generate(dir.path(), Some("correct horse".into())).unwrap();
        let load = |password: Option<&str>| {
            Signer::load(&crate::config::SigningSettings {
                key_file: made.secret_path.clone(),
                password: password.map(str::to_string),
            })
        };
        let signer = load(Some("correct horse")).unwrap();
        assert_eq!(signer.key_id(), made.key_id);
        assert_eq!(signer.public_key(), made.public_key);
        let wrong = load(Some("wrong")).unwrap_err().to_string();
        assert!(wrong.contains("could not be decrypted"), "{wrong}");
        let none = load(None).unwrap_err().to_string();
        assert!(none.contains("signing.password_env"), "{none}");
        let mode = std::fs::metadata(&made.secret_path).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
        // Never overwritten.
        let again = generate(dir.path(), None).unwrap_err().to_string();
        assert!(again.contains("never overwrites"), "{again}");
        assert_eq!(load(Some("correct horse")).unwrap().key_id(), made.key_id);
    }
}
