//! Standard Webhooks signing, the sender's side: `webhook-signature: v1,<base64 HMAC-SHA256
//! over "{id}.{timestamp}.{body}">`, keyed by the bytes the secret's base64 part (after
//! `whsec_`) decodes to. The receiving side is `hooks::verify`; the tests check this one
//! against the reference crate `standardwebhooks`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// A subscriber's signing key, checked: `whsec_` and base64 of at least 24 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// A new random secret (32 bytes), for a subscriber added without one.
    pub fn generate() -> WebhookSecret {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source");
        WebhookSecret { key }
    }

    pub fn parse(text: &str) -> Result<WebhookSecret, &'static str> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or("must start with `whsec_` (a Standard Webhooks secret)")?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "must be `whsec_` followed by base64")?;
        if key.len() < 24 {
            return Err("must hold at least 24 bytes after `whsec_`");
        }
        Ok(WebhookSecret { key })
    }

    /// The secret as written: `whsec_` and base64.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The `webhook-signature` header's value for one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks test vector (REFERENCES.md). Its key holds 24 bytes.
    #[test]
    fn signs_the_specs_test_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn refuses_secrets_that_are_not_standard_webhooks_keys() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
        let generated = WebhookSecret::generate();
        assert_eq!(
            WebhookSecret::parse(&generated.reveal()).unwrap(),
            generated
        );
    }
}
