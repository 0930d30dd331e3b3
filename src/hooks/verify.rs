//! Signature checks over the raw request body. Nothing here parses JSON: a signature is always
//! checked against the exact bytes that arrived, before anything else looks at them.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing signature header {0}")]
    Missing(&'static str),
    #[error("malformed signature header {0}")]
    Malformed(&'static str),
    #[error("signature does not match")]
    Mismatch,
}

/// GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn verify_github(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    const NAME: &str = "X-Hub-Signature-256";
    let header = header.ok_or(SignatureError::Missing(NAME))?;
    let hex_sig = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed(NAME))?;
    let expected = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed(NAME))?;
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// GitLab's `X-Gitlab-Token: <secret>`, a shared secret compared in constant time.
pub fn verify_gitlab_token(secret: &str, header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing("X-Gitlab-Token"))?;
    if bool::from(header.as_bytes().ct_eq(secret.as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The signature a GitHub-style host sends for `body`; used by the README's curl example and tests.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from GitHub's "Validating webhook deliveries".
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_test_vector() {
        assert_eq!(github_signature(SECRET, BODY), SIGNATURE);
        assert_eq!(verify_github(SECRET, Some(SIGNATURE), BODY), Ok(()));
    }

    #[test]
    fn github_refusals() {
        assert_eq!(
            verify_github(SECRET, None, BODY),
            Err(SignatureError::Missing("X-Hub-Signature-256"))
        );
        assert_eq!(
            verify_github(SECRET, Some("sha1=abcd"), BODY),
            Err(SignatureError::Malformed("X-Hub-Signature-256"))
        );
        assert_eq!(
            verify_github(SECRET, Some("sha256=zz"), BODY),
            Err(SignatureError::Malformed("X-Hub-Signature-256"))
        );
        assert_eq!(
            verify_github(SECRET, Some(SIGNATURE), b"Hello, World?"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_github("another secret", Some(SIGNATURE), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn gitlab_token() {
        assert_eq!(verify_gitlab_token("tok", Some("tok")), Ok(()));
        assert_eq!(
            verify_gitlab_token("tok", Some("tok2")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_gitlab_token("tok", Some("")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_gitlab_token("tok", None),
            Err(SignatureError::Missing("X-Gitlab-Token"))
        );
    }
}
