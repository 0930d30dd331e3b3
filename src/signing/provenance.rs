//! A release's provenance: an in-toto Statement v1 whose predicate is SLSA Provenance v1,
//! wrapped in a DSSE envelope signed with the release key ([`super::Signer`]). Served as
//! `provenance.intoto.jsonl` (one envelope per line).
//!
//! No crate models Statement v1 with SLSA v1 and DSSE together, so the few structs are here;
//! their field names are the specifications' (in-toto Statement v1, SLSA Provenance v1,
//! DSSE v1).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::Signer;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// What kind of build this is: baler packaging one ref of a git repository.
pub const BUILD_TYPE: &str = "urn:baler:buildtype:release:v1";

/// The builder: baler, at the version that built the release.
pub fn builder_id() -> String {
    format!("urn:baler:builder:v{}", env!("CARGO_PKG_VERSION"))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Provenance,
}

/// A subject or a dependency: a name or URI and its digests (`sha256`, `gitCommit`, `gitTree`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    pub digest: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: ExternalParameters,
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// Everything that decides the archives' bytes besides the repository's content: with these
/// and the commit, `baler verify` rebuilds the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalParameters {
    pub repository: String,
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub project: String,
    pub version: String,
    pub layout: String,
    pub formats: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetails {
    pub builder: Builder,
    pub metadata: BuildMetadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    pub id: String,
    pub version: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildMetadata {
    /// The queue item whose job built the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    pub started_on: String,
    pub finished_on: String,
}

/// What a release's provenance says, as the worker knows it when the archives are written.
pub struct BuildFacts<'a> {
    pub project: &'a str,
    pub version: &'a str,
    /// The full ref: `refs/tags/v1.0.0`, `refs/heads/main`.
    pub ref_name: &'a str,
    pub repository: &'a str,
    pub commit: &'a str,
    pub tree: &'a str,
    pub layout: &'a str,
    pub formats: Vec<String>,
    pub item: Option<i64>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// Each archive: its name and sha256.
    pub archives: Vec<(&'a str, &'a str)>,
}

impl Statement {
    pub fn new(facts: &BuildFacts<'_>) -> Statement {
        let repository = without_credentials(facts.repository);
        let digest = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Statement {
            statement_type: STATEMENT_TYPE.into(),
            subject: facts
                .archives
                .iter()
                .map(|(name, sha256)| ResourceDescriptor {
                    name: Some(name.to_string()),
                    uri: None,
                    digest: digest(&[("sha256", sha256)]),
                })
                .collect(),
            predicate_type: PREDICATE_TYPE.into(),
            predicate: Provenance {
                build_definition: BuildDefinition {
                    build_type: BUILD_TYPE.into(),
                    external_parameters: ExternalParameters {
                        repository: repository.clone(),
                        ref_name: facts.ref_name.into(),
                        project: facts.project.into(),
                        version: facts.version.into(),
                        layout: facts.layout.into(),
                        formats: facts.formats.clone(),
                    },
                    resolved_dependencies: vec![ResourceDescriptor {
                        name: Some("repository".into()),
                        uri: Some(format!("git+{repository}@{}", facts.ref_name)),
                        digest: digest(&[("gitCommit", facts.commit), ("gitTree", facts.tree)]),
                    }],
                },
                run_details: RunDetails {
                    builder: Builder {
                        id: builder_id(),
                        version: digest(&[("baler", env!("CARGO_PKG_VERSION"))]),
                    },
                    metadata: BuildMetadata {
                        invocation_id: facts.item.map(|item| item.to_string()),
                        started_on: facts.started.to_rfc3339_opts(SecondsFormat::Secs, true),
                        finished_on: facts.finished.to_rfc3339_opts(SecondsFormat::Secs, true),
                    },
                },
            },
        }
    }

    /// The commit the release was built from, as its provenance names it.
    pub fn commit(&self) -> Option<&str> {
        self.predicate
            .build_definition
            .resolved_dependencies
            .first()
            .and_then(|d| d.digest.get("gitCommit"))
            .map(String::as_str)
    }
}

/// A repository URL as provenance shows it: without a user name or password.
fn without_credentials(repository: &str) -> String {
    match url::Url::parse(repository) {
        Ok(mut url)
            if url.has_host() && (!url.username().is_empty() || url.password().is_some()) =>
        {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => repository.to_string(),
    }
}

/// DSSE's pre-authentication encoding: what the signature covers, so that the payload's type
/// cannot be swapped under it.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The statement's JSON, base64.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// The minisign key id, so that the minisign public key is the one to verify with.
    pub keyid: String,
    /// Ed25519 over [`pae`], base64.
    pub sig: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the provenance is not a DSSE envelope: {0}")]
    NotAnEnvelope(String),
    #[error("the provenance's payload type is {0:?}, not {PAYLOAD_TYPE}")]
    PayloadType(String),
    #[error("the provenance's payload is not an in-toto Statement v1: {0}")]
    NotAStatement(String),
}

impl Envelope {
    /// The envelope of `statement`, signed by `signer` when there is one (unsigned otherwise:
    /// `baler sign --all` signs it later).
    pub fn new(statement: &Statement, signer: Option<&Signer>) -> Envelope {
        let payload = serde_json::to_vec(statement).expect("a statement serialises");
        let mut envelope = Envelope {
            payload: BASE64.encode(&payload),
            payload_type: PAYLOAD_TYPE.into(),
            signatures: Vec::new(),
        };
        if let Some(signer) = signer {
            envelope.sign(signer, &payload);
        }
        envelope
    }

    /// Adds `signer`'s signature over the payload (replacing an earlier one of the same key).
    fn sign(&mut self, signer: &Signer, payload: &[u8]) {
        let sig = signer.sign_raw(&pae(&self.payload_type, payload));
        self.signatures.retain(|s| s.keyid != signer.key_id());
        self.signatures.push(EnvelopeSignature {
            keyid: signer.key_id().to_string(),
            sig,
        });
    }

    /// Reads one line of `provenance.intoto.jsonl`.
    pub fn parse(line: &str) -> Result<Envelope, EnvelopeError> {
        let envelope: Envelope = serde_json::from_str(line.trim())
            .map_err(|e| EnvelopeError::NotAnEnvelope(e.to_string()))?;
        if envelope.payload_type != PAYLOAD_TYPE {
            return Err(EnvelopeError::PayloadType(envelope.payload_type));
        }
        Ok(envelope)
    }

    /// Signs an envelope that `signer` has not signed yet; `false` when it already had.
    pub fn sign_if_unsigned(&mut self, signer: &Signer) -> Result<bool, EnvelopeError> {
        if self.signatures.iter().any(|s| s.keyid == signer.key_id()) {
            return Ok(false);
        }
        let payload = self.payload_bytes()?;
        self.sign(signer, &payload);
        Ok(true)
    }

    pub fn payload_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        BASE64
            .decode(&self.payload)
            .map_err(|e| EnvelopeError::NotAnEnvelope(format!("payload: {e}")))
    }

    pub fn statement(&self) -> Result<Statement, EnvelopeError> {
        let statement: Statement = serde_json::from_slice(&self.payload_bytes()?)
            .map_err(|e| EnvelopeError::NotAStatement(e.to_string()))?;
        if statement.statement_type != STATEMENT_TYPE {
            return Err(EnvelopeError::NotAStatement(format!(
                "_type is {:?}",
                statement.statement_type
            )));
        }
        Ok(statement)
    }

    /// Whether a signature with `keyid` verifies under `key` (an Ed25519 public key).
    pub fn verified_by(&self, keyid: &str, key: &ed25519_dalek::VerifyingKey) -> bool {
        let Ok(payload) = self.payload_bytes() else {
            return false;
        };
        let message = pae(&self.payload_type, &payload);
        self.signatures
            .iter()
            .filter(|s| s.keyid == keyid)
            .filter_map(|s| BASE64.decode(&s.sig).ok())
            .filter_map(|sig| ed25519_dalek::Signature::from_slice(&sig).ok())
            .any(|sig| key.verify_strict(&message, &sig).is_ok())
    }

    /// The envelope as `provenance.intoto.jsonl` holds it: one line.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("an envelope serialises");
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DSSE's own example: type `http://example.com/HelloWorld`, body `hello world`.
    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn credentials_stay_out_of_provenance() {
        assert_eq!(
            without_credentials("https://user:tok@git.example.com/a/b.git"),
            "https://git.example.com/a/b.git"
        );
        assert_eq!(
            without_credentials("git@github.com:acme/b.git"),
            "git@github.com:acme/b.git"
        );
        assert_eq!(
            without_credentials("file:///srv/b.git"),
            "file:///srv/b.git"
        );
    }
}
