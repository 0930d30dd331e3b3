//! `baler verify`: rebuilds a published release from its repository and checks it against
//! what the server publishes, trusting nothing the server says that a signature does not
//! cover. In order:
//!
//! 1. the provenance (`provenance.intoto.jsonl`): its DSSE signature under the public key, and
//!    that it describes this release (project, version);
//! 2. a rebuild from the repository at `--ref` with the provenance's parameters: the ref must
//!    be at the commit the provenance names;
//! 3. each file the provenance names: equal byte for byte to the rebuild (else the first
//!    archive entry that differs is named), its sha256 the provenance's, and its `.minisig`
//!    good (with the trusted comment `baler release PROJECT VERSION commit COMMIT`);
//! 4. `SHA256SUMS` and its `.minisig`, listing exactly those files.

use std::io::Read;

use super::provenance::{Envelope, Statement};
use super::trusted_comment;
use crate::package::offline::{self, OfflineRequest};

pub struct VerifyRequest {
    pub source: String,
    pub reference: String,
    /// The release page URL: `BASE/projects/NAME/releases/VERSION`.
    pub release: String,
    /// A public key (its base64 line) or a `.pub` file; `None`: the server's.
    pub public_key: Option<String>,
    /// Credentials for a private repository.
    pub auth: crate::git::RemoteAuth,
}

/// The outcome: everything holds (a summary), or the first thing that does not.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok(String),
    Differs(String),
}

/// Where a release is published.
struct ReleaseUrl {
    base: String,
    project: String,
    version: String,
}

impl ReleaseUrl {
    fn parse(url: &str) -> anyhow::Result<ReleaseUrl> {
        let trimmed = url.trim_end_matches('/');
        let (base, rest) = trimmed.rsplit_once("/projects/").ok_or_else(|| {
            anyhow::anyhow!(
                "--release {url:?} is not a release page URL (BASE/projects/NAME/releases/VERSION)"
            )
        })?;
        let (project, version) = rest.split_once("/releases/").ok_or_else(|| {
            anyhow::anyhow!(
                "--release {url:?} is not a release page URL (BASE/projects/NAME/releases/VERSION)"
            )
        })?;
        if project.contains('/') || version.contains('/') || version.is_empty() {
            anyhow::bail!("--release {url:?} is not a release page URL");
        }
        Ok(ReleaseUrl {
            base: base.to_string(),
            project: project.to_string(),
            version: version.to_string(),
        })
    }

    fn page(&self, file: &str) -> String {
        format!(
            "{}/projects/{}/releases/{}/{file}",
            self.base, self.project, self.version
        )
    }

    fn file(&self, name: &str) -> String {
        format!("{}/files/{}/{name}", self.base, self.project)
    }
}

pub async fn verify(request: VerifyRequest) -> anyhow::Result<Verdict> {
    let at = ReleaseUrl::parse(&request.release)?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()?;
    let get = async |url: String| -> anyhow::Result<Vec<u8>> {
        let response = client.get(&url).send().await?;
        if !response.status().is_success() {
            anyhow::bail!("GET {url}: {}", response.status());
        }
        Ok(response.bytes().await?.to_vec())
    };

    let key_text = match &request.public_key {
        Some(given) if std::path::Path::new(given).is_file() => std::fs::read_to_string(given)?,
        Some(given) => given.clone(),
        None => {
            let url = format!("{}/.well-known/baler/minisign.pub", at.base);
            let served = get(url).await.map_err(|e| {
                anyhow::anyhow!("{e}: the server publishes no signing key; pass --public-key")
            })?;
            String::from_utf8(served)?
        }
    };
    let key = PublicKey::parse(&key_text)?;

    // 1. The provenance.
    let line = String::from_utf8(get(at.page("provenance.intoto.jsonl")).await?)?;
    let envelope = Envelope::parse(line.lines().next().unwrap_or_default())?;
    if !envelope.verified_by(&key.id, &key.ed25519) {
        return Ok(Verdict::Differs(format!(
            "provenance.intoto.jsonl: no signature by key {} verifies it",
            key.id
        )));
    }
    let statement = envelope.statement()?;
    let parameters = &statement.predicate.build_definition.external_parameters;
    if parameters.project != at.project || parameters.version != at.version {
        return Ok(Verdict::Differs(format!(
            "provenance.intoto.jsonl describes {} {}, not {} {}",
            parameters.project, parameters.version, at.project, at.version
        )));
    }
    let commit = statement
        .commit()
        .ok_or_else(|| anyhow::anyhow!("the provenance names no commit"))?
        .to_string();
    let comment = trusted_comment(&at.project, &at.version, &commit);
    // The name goes into file and directory names; held to what a configured project may be.
    crate::config::validate_project_name(&parameters.project)
        .map_err(|e| anyhow::anyhow!("the provenance's project {:?}: {e}", parameters.project))?;

    // 2. The rebuild, from the repository at --ref with the provenance's parameters.
    let out = tempfile::tempdir()?;
    let offline_request = OfflineRequest {
        source: request.source.clone(),
        reference: request.reference.clone(),
        out: out.path().to_path_buf(),
        name: parameters.project.clone(),
        layout: parameters.layout.parse()?,
        formats: parameters
            .formats
            .iter()
            .map(|f| f.parse())
            .collect::<Result<_, _>>()?,
        auth: request.auth.clone(),
        progress: false,
    };
    let rebuilt = tokio::task::spawn_blocking(move || offline::package(&offline_request)).await??;
    if rebuilt.commit != commit {
        return Ok(Verdict::Differs(format!(
            "{} is at commit {}, but the release was built from {commit}",
            request.reference, rebuilt.commit
        )));
    }
    if rebuilt.version != at.version {
        return Ok(Verdict::Differs(format!(
            "{} gives version {}, not {}",
            request.reference, rebuilt.version, at.version
        )));
    }

    // 3. Each published file: the rebuild's bytes, the provenance's sha256, its signature.
    let expected = subjects(&statement)?;
    for (name, sha256) in &expected {
        let published = get(at.file(name)).await?;
        let Some(file) = rebuilt
            .files
            .iter()
            .find(|f| f.path.file_name().is_some_and(|n| n == name.as_str()))
        else {
            return Ok(Verdict::Differs(format!(
                "{name}: the rebuild made no such file"
            )));
        };
        let local = std::fs::read(&file.path)?;
        if local != published {
            return Ok(Verdict::Differs(format!(
                "{name}: {}",
                first_difference(name, &local, &published)
            )));
        }
        if &file.sha256 != sha256 {
            return Ok(Verdict::Differs(format!(
                "{name}: its sha256 is {}, the signed provenance says {sha256}",
                file.sha256
            )));
        }
        let signature = String::from_utf8(get(at.file(&format!("{name}.minisig"))).await?)?;
        if let Err(why) = key.check(&signature, &published, &comment) {
            return Ok(Verdict::Differs(format!("{name}.minisig: {why}")));
        }
    }

    // 4. SHA256SUMS and its signature.
    let sums = get(at.page("SHA256SUMS")).await?;
    let sums_signature = String::from_utf8(get(at.page("SHA256SUMS.minisig")).await?)?;
    if let Err(why) = key.check(&sums_signature, &sums, &comment) {
        return Ok(Verdict::Differs(format!("SHA256SUMS.minisig: {why}")));
    }
    let listed = crate::releases::sha256sums(
        expected
            .iter()
            .map(|(name, sha)| (sha.as_str(), name.as_str())),
    );
    if sums != listed.as_bytes() {
        return Ok(Verdict::Differs(
            "SHA256SUMS does not list exactly the files of the provenance".into(),
        ));
    }
    Ok(Verdict::Ok(format!(
        "{} {}: {} files rebuilt byte for byte from {commit}; their signatures, SHA256SUMS and \
         provenance verified with key {}",
        at.project,
        at.version,
        expected.len(),
        key.id
    )))
}

/// The provenance's subjects: name and sha256.
fn subjects(statement: &Statement) -> anyhow::Result<Vec<(String, String)>> {
    statement
        .subject
        .iter()
        .map(|s| {
            let name = s.name.clone().unwrap_or_default();
            let sha256 = s.digest.get("sha256").cloned().unwrap_or_default();
            let plain = !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.');
            if !plain || sha256.len() != 64 {
                anyhow::bail!("the provenance has a subject without a plain name and a sha256");
            }
            Ok((name, sha256))
        })
        .collect()
}

/// A minisign public key, for minisign signatures and (its Ed25519 half) the DSSE one.
struct PublicKey {
    minisign: minisign::PublicKey,
    ed25519: ed25519_dalek::VerifyingKey,
    id: String,
}

impl PublicKey {
    /// A `.pub` file's text or its base64 line.
    fn parse(text: &str) -> anyhow::Result<PublicKey> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| anyhow::anyhow!("no minisign public key in {text:?}"))?;
        let minisign = minisign::PublicKey::from_base64(line)
            .map_err(|e| anyhow::anyhow!("not a minisign public key ({line:?}): {e}"))?;
        let bytes = minisign.to_bytes();
        let raw: [u8; 32] = bytes[super::PUBLIC_AT..super::PUBLIC_AT + 32].try_into()?;
        Ok(PublicKey {
            ed25519: ed25519_dalek::VerifyingKey::from_bytes(&raw)?,
            id: super::key_id(minisign.keynum()),
            minisign,
        })
    }

    /// Checks a `.minisig` over `data` and its trusted comment.
    fn check(&self, signature: &str, data: &[u8], comment: &str) -> Result<(), String> {
        let signature = minisign::SignatureBox::from_string(signature)
            .map_err(|e| format!("unreadable: {e}"))?;
        minisign::verify(
            &self.minisign,
            &signature,
            std::io::Cursor::new(data),
            true,
            false,
            false,
        )
        .map_err(|e| format!("does not verify with key {}: {e}", self.id))?;
        let trusted = signature.trusted_comment().map_err(|e| e.to_string())?;
        if trusted != comment {
            return Err(format!(
                "its trusted comment is {trusted:?}, not {comment:?}"
            ));
        }
        Ok(())
    }
}

/// Where two archives of the same name first differ: the first entry whose name, header or
/// content differs, else the first byte (the entries match but not their encoding).
pub fn first_difference(name: &str, rebuilt: &[u8], published: &[u8]) -> String {
    let entries = |bytes: &[u8]| -> Option<Vec<(String, Vec<u8>)>> {
        if name.ends_with(".zip") {
            zip_entries(bytes)
        } else if name.ends_with(".tar.gz") {
            tar_entries(bytes)
        } else {
            None
        }
    };
    match (entries(rebuilt), entries(published)) {
        (Some(ours), Some(theirs)) => {
            for (index, (a, b)) in ours.iter().zip(theirs.iter()).enumerate() {
                if a.0 != b.0 {
                    return format!(
                        "entry {index} is {:?} in the rebuild, {:?} in the published file",
                        a.0, b.0
                    );
                }
                if a.1 != b.1 {
                    return format!("entry {:?} differs", a.0);
                }
            }
            if ours.len() != theirs.len() {
                let (longer, which) = if ours.len() > theirs.len() {
                    (&ours, "the rebuild")
                } else {
                    (&theirs, "the published file")
                };
                let extra = &longer[ours.len().min(theirs.len())].0;
                return format!("entry {extra:?} is only in {which}");
            }
            format!(
                "every entry matches, but the bytes differ from offset {}",
                first_byte(rebuilt, published)
            )
        }
        _ => format!(
            "the published file cannot be read as an archive; the bytes differ from offset {}",
            first_byte(rebuilt, published)
        ),
    }
}

fn first_byte(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b.iter())
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Each entry's name with what decides its bytes: its metadata and its content.
fn zip_entries(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).ok()?;
    let mut entries = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).ok()?;
        let mut seen = format!(
            "{:?} {:?} {:?} {:?}",
            file.unix_mode(),
            file.last_modified(),
            file.compression(),
            file.extra_data()
        )
        .into_bytes();
        let name = file.name().ok()?.to_string();
        file.read_to_end(&mut seen).ok()?;
        entries.push((name, seen));
    }
    Some(entries)
}

/// Each raw tar entry (headers of long names and pax records included) with its header
/// block and content.
fn tar_entries(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut entries = Vec::new();
    for entry in archive.entries().ok()?.raw(true) {
        let mut entry = entry.ok()?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut seen = entry.header().as_bytes().to_vec();
        entry.read_to_end(&mut seen).ok()?;
        entries.push((name, seen));
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_urls() {
        let at = ReleaseUrl::parse("https://r.example/projects/demo/releases/1.0.0/").unwrap();
        assert_eq!(
            (at.base.as_str(), at.project.as_str(), at.version.as_str()),
            ("https://r.example", "demo", "1.0.0")
        );
        assert_eq!(
            at.page("SHA256SUMS"),
            "https://r.example/projects/demo/releases/1.0.0/SHA256SUMS"
        );
        assert_eq!(
            at.file("demo-1.0.0.zip"),
            "https://r.example/files/demo/demo-1.0.0.zip"
        );
        assert!(ReleaseUrl::parse("https://r.example/files/demo").is_err());
    }

    #[test]
    fn the_first_differing_byte() {
        assert_eq!(first_byte(b"abcd", b"abXd"), 2);
        assert_eq!(first_byte(b"ab", b"abc"), 2);
        let text = first_difference("x.tar.gz", b"not gzip", b"not gzip!");
        assert!(text.contains("offset 8"), "{text}");
    }
}
