//! Signature checks over the raw request body. Nothing here parses JSON: a signature is always
//! checked against the exact bytes that arrived, before anything else looks at them. Every
//! check takes the project's secrets (two during a rotation) and passes if any one matches;
//! every comparison is constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<Sha1>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing signature header {0}")]
    Missing(&'static str),
    #[error("malformed signature header {0}")]
    Malformed(&'static str),
    #[error("signature does not match")]
    Mismatch,
    #[error("webhook-timestamp is {0} s away from now; more than 300 s is refused")]
    Stale(i64),
}

/// Every secret is tried before answering, so timing does not tell which one matched.
fn outcome(matched: bool) -> Result<(), SignatureError> {
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key size");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// `expected` is a hex HMAC-SHA256 of `body`, under any of `secrets`.
fn verify_hex_sha256<'a>(
    secrets: impl Iterator<Item = &'a str>,
    hex_sig: &str,
    body: &[u8],
    header: &'static str,
) -> Result<(), SignatureError> {
    let expected = hex::decode(hex_sig.trim()).map_err(|_| SignatureError::Malformed(header))?;
    let mut matched = false;
    for secret in secrets {
        // `verify_slice` compares in constant time; every secret is tried.
        matched |= hmac_sha256(secret.as_bytes(), &[body])
            .verify_slice(&expected)
            .is_ok();
    }
    outcome(matched)
}

/// GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`; Bitbucket Cloud
/// sends the same form in `X-Hub-Signature`.
pub fn verify_sha256_prefixed<'a>(
    secrets: impl Iterator<Item = &'a str>,
    header_name: &'static str,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing(header_name))?;
    let hex_sig = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed(header_name))?;
    verify_hex_sha256(secrets, hex_sig, body, header_name)
}

/// GitHub's legacy `X-Hub-Signature: sha1=<hex>`, for projects that opt in.
pub fn verify_github_sha1<'a>(
    secrets: impl Iterator<Item = &'a str>,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    const NAME: &str = "X-Hub-Signature";
    let header = header.ok_or(SignatureError::Missing(NAME))?;
    let hex_sig = header
        .trim()
        .strip_prefix("sha1=")
        .ok_or(SignatureError::Malformed(NAME))?;
    let expected = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed(NAME))?;
    let mut matched = false;
    for secret in secrets {
        let mut mac = HmacSha1::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
        mac.update(body);
        matched |= mac.verify_slice(&expected).is_ok();
    }
    outcome(matched)
}

/// Gitea's `X-Gitea-Signature` / Forgejo's `X-Forgejo-Signature`: bare hex HMAC-SHA256.
pub fn verify_gitea<'a>(
    secrets: impl Iterator<Item = &'a str>,
    header_name: &'static str,
    header: Option<&str>,
    payload: &[u8],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing(header_name))?;
    verify_hex_sha256(secrets, header, payload, header_name)
}

/// GitLab's `X-Gitlab-Token: <secret>`, a shared secret compared in constant time.
pub fn verify_gitlab_token<'a>(
    secrets: impl Iterator<Item = &'a str>,
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing("X-Gitlab-Token"))?;
    let mut matched = false;
    for secret in secrets {
        matched |= bool::from(header.as_bytes().ct_eq(secret.as_bytes()));
    }
    outcome(matched)
}

/// The Standard Webhooks headers GitLab's signing tokens send.
pub struct StandardWebhook<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Standard Webhooks (standardwebhooks.com): `webhook-signature` holds space-separated
/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` entries; the key is the base64
/// after `whsec_`. Timestamps more than 300 s from `now` are refused (replays).
pub fn verify_standard_webhook<'a>(
    secrets: impl Iterator<Item = &'a str>,
    headers: &StandardWebhook<'_>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let id = headers.id.ok_or(SignatureError::Missing("webhook-id"))?;
    let timestamp = headers
        .timestamp
        .ok_or(SignatureError::Missing("webhook-timestamp"))?;
    let signature = headers
        .signature
        .ok_or(SignatureError::Missing("webhook-signature"))?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed("webhook-timestamp"))?;
    // Both numbers may be anything a client sends: the difference saturates instead of
    // wrapping (or panicking), and its size is taken without `abs`, which overflows at MIN.
    let skew = now.saturating_sub(seconds);
    if skew.unsigned_abs() > 300 {
        return Err(SignatureError::Stale(skew));
    }
    let offered: Vec<Vec<u8>> = signature
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .collect();
    if offered.is_empty() {
        return Err(SignatureError::Malformed("webhook-signature"));
    }
    let mut matched = false;
    for secret in secrets {
        let key = match secret.strip_prefix("whsec_") {
            Some(b64) => match BASE64.decode(b64) {
                Ok(key) => key,
                Err(_) => continue,
            },
            None => secret.as_bytes().to_vec(),
        };
        let mac = hmac_sha256(
            &key,
            &[id.as_bytes(), b".", timestamp.trim().as_bytes(), b".", body],
        );
        let expected = mac.finalize().into_bytes();
        for candidate in &offered {
            matched |= bool::from(candidate.as_slice().ct_eq(expected.as_slice()));
        }
    }
    outcome(matched)
}

/// The signature a GitHub-style host sends for `body`; used by the README's curl example and tests.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(secret.as_bytes(), &[body]);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` a Standard Webhooks sender (GitLab signing token) sends.
pub fn standard_webhook_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|b64| BASE64.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let mac = hmac_sha256(
        &key,
        &[
            id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body,
        ],
    );
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from GitHub's "Validating webhook deliveries".
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    const GH: &str = "X-Hub-Signature-256";

    fn one(secret: &str) -> impl Iterator<Item = &str> {
        std::iter::once(secret)
    }

    #[test]
    fn github_test_vector() {
        assert_eq!(github_signature(SECRET, BODY), SIGNATURE);
        assert_eq!(
            verify_sha256_prefixed(one(SECRET), GH, Some(SIGNATURE), BODY),
            Ok(())
        );
    }

    #[test]
    fn github_refusals() {
        assert_eq!(
            verify_sha256_prefixed(one(SECRET), GH, None, BODY),
            Err(SignatureError::Missing(GH))
        );
        assert_eq!(
            verify_sha256_prefixed(one(SECRET), GH, Some("sha1=abcd"), BODY),
            Err(SignatureError::Malformed(GH))
        );
        assert_eq!(
            verify_sha256_prefixed(one(SECRET), GH, Some("sha256=zz"), BODY),
            Err(SignatureError::Malformed(GH))
        );
        assert_eq!(
            verify_sha256_prefixed(one(SECRET), GH, Some(SIGNATURE), b"Hello, World?"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_sha256_prefixed(one("another secret"), GH, Some(SIGNATURE), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rotation_accepts_either_secret() {
        let both = || ["new secret", SECRET].into_iter();
        assert_eq!(
            verify_sha256_prefixed(both(), GH, Some(SIGNATURE), BODY),
            Ok(())
        );
        let token = || ["tok-new", "tok-old"].into_iter();
        assert_eq!(verify_gitlab_token(token(), Some("tok-old")), Ok(()));
        assert_eq!(
            verify_gitlab_token(token(), Some("tok")),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn github_legacy_sha1() {
        // HMAC-SHA1("It's a Secret to Everybody", "Hello, World!"), as GitHub's sha1 header.
        let mut mac = HmacSha1::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(BODY);
        let header = format!("sha1={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(verify_github_sha1(one(SECRET), Some(&header), BODY), Ok(()));
        assert_eq!(
            verify_github_sha1(one(SECRET), Some(&header), b"other"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn gitea_bare_hex() {
        let hex_sig = SIGNATURE.trim_start_matches("sha256=");
        assert_eq!(
            verify_gitea(one(SECRET), "X-Gitea-Signature", Some(hex_sig), BODY),
            Ok(())
        );
        assert_eq!(
            verify_gitea(one(SECRET), "X-Gitea-Signature", Some(SIGNATURE), BODY),
            Err(SignatureError::Malformed("X-Gitea-Signature"))
        );
    }

    #[test]
    fn gitlab_token() {
        assert_eq!(verify_gitlab_token(one("tok"), Some("tok")), Ok(()));
        assert_eq!(
            verify_gitlab_token(one("tok"), Some("tok2")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_gitlab_token(one("tok"), Some("")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_gitlab_token(one("tok"), None),
            Err(SignatureError::Missing("X-Gitlab-Token"))
        );
    }

    // The example from the Standard Webhooks specification.
    const SW_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SW_TS: i64 = 1614265330;
    const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn sw(signature: &str) -> StandardWebhook<'_> {
        StandardWebhook {
            id: Some(SW_ID),
            timestamp: Some("1614265330"),
            signature: Some(signature),
        }
    }

    #[test]
    fn standard_webhooks_test_vector() {
        assert_eq!(
            standard_webhook_signature(SW_KEY, SW_ID, SW_TS, SW_BODY),
            SW_SIG
        );
        assert_eq!(
            verify_standard_webhook(one(SW_KEY), &sw(SW_SIG), SW_BODY, SW_TS + 10),
            Ok(())
        );
        // Several signatures may be offered; one valid one is enough.
        let several = format!("v1,bm9wZQ== {SW_SIG}");
        assert_eq!(
            verify_standard_webhook(one(SW_KEY), &sw(&several), SW_BODY, SW_TS),
            Ok(())
        );
    }

    #[test]
    fn standard_webhooks_refusals() {
        assert_eq!(
            verify_standard_webhook(one(SW_KEY), &sw(SW_SIG), SW_BODY, SW_TS + 301),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify_standard_webhook(one(SW_KEY), &sw(SW_SIG), SW_BODY, SW_TS - 301),
            Err(SignatureError::Stale(-301))
        );
        assert_eq!(
            verify_standard_webhook(one(SW_KEY), &sw(SW_SIG), br#"{"test": 1}"#, SW_TS),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_standard_webhook(one(SW_KEY), &sw("v2,abc"), SW_BODY, SW_TS),
            Err(SignatureError::Malformed("webhook-signature"))
        );
        // Timestamps at the ends of i64 are refused as stale, never wrapped into a small
        // difference (or a panic in a debug build), whatever the clock says.
        for extreme in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let text = extreme.to_string();
            let headers = StandardWebhook {
                timestamp: Some(&text),
                ..sw(SW_SIG)
            };
            for now in [SW_TS, 0, -1, i64::MAX / 2, i64::MIN / 2] {
                let result = verify_standard_webhook(one(SW_KEY), &headers, SW_BODY, now);
                assert!(
                    matches!(result, Err(SignatureError::Stale(_))),
                    "{extreme} at {now}: {result:?}"
                );
            }
        }
        let no_id = StandardWebhook {
            id: None,
            ..sw(SW_SIG)
        };
        assert_eq!(
            verify_standard_webhook(one(SW_KEY), &no_id, SW_BODY, SW_TS),
            Err(SignatureError::Missing("webhook-id"))
        );
    }
}
