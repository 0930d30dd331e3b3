//! Payload parsers and signature-header parsers on arbitrary input: nothing may panic.
//!
//!     cargo +nightly fuzz run --debug-assertions webhooks corpus/webhooks seeds/webhooks -- -max_total_time=60
//!
//! `--debug-assertions` turns integer overflow into a panic, so a wrap is found, not hidden.
//!
//! The first byte picks what to feed; the rest is the input. Signature checks get the input
//! as both the header value and the body, so their header parsing is exercised whole.

#![no_main]

use baler::hooks::event::{normalize_repository_url, parse_bitbucket, parse_gitea, parse_github, parse_gitlab};
use baler::hooks::verify::{
    StandardWebhook, verify_gitea, verify_github_sha1, verify_gitlab_token, verify_sha256_prefixed,
    verify_standard_webhook,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(input);
    let secrets = || ["secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"].into_iter();
    match selector % 8 {
        0 => {
            for event in ["push", "ping", "create"] {
                let _ = parse_github(event, input);
            }
        }
        1 => {
            for event in ["Push Hook", "Tag Push Hook"] {
                let _ = parse_gitlab(event, input);
            }
        }
        2 => {
            for event in ["push", "create", "delete"] {
                let _ = parse_gitea(event, input);
            }
        }
        3 => {
            let _ = parse_bitbucket("repo:push", input);
        }
        4 => {
            let _ = normalize_repository_url(&text);
        }
        5 => {
            let _ = verify_sha256_prefixed(secrets(), "X-Hub-Signature-256", Some(&text), input);
            let _ = verify_github_sha1(secrets(), Some(&text), input);
            let _ = verify_gitea(secrets(), "X-Gitea-Signature", Some(&text), input);
            let _ = verify_gitlab_token(secrets(), Some(&text));
        }
        _ => {
            // The clock comes from the input too (its first 8 bytes), so that every
            // difference between two i64s is tried; the rest splits into the three Standard
            // Webhooks headers.
            let (clock, rest) = input.split_at(input.len().min(8));
            let mut now = [0u8; 8];
            now[..clock.len()].copy_from_slice(clock);
            let now = i64::from_le_bytes(now);
            let text = String::from_utf8_lossy(rest);
            let mut parts = text.splitn(3, '\n');
            let headers = StandardWebhook {
                id: parts.next(),
                timestamp: parts.next(),
                signature: parts.next(),
            };
            let _ = verify_standard_webhook(secrets(), &headers, rest, now);
        }
    }
});
