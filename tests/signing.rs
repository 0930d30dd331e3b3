//! Signed releases end to end: keys made by the real `baler key generate`, releases signed by
//! the worker and checked with Debian's `minisign` CLI, the provenance's DSSE signature checked
//! with `ed25519-dalek` over the pre-authentication encoding written out here (not baler's
//! code), `baler verify` on a good and an altered release, `baler sign --all` and a key
//! rotation, and a worker killed with SIGKILL while it packages: no release is ever visible
//! unsigned.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::git::GitRepo;
use crate::support::{
    ADMIN_TOKEN, AuditRow, BalerProcess, ItemState, ProjectSpec, TestApp, TestDb, wait_until,
};

const PASSWORD_VAR: &str = "BALER_TEST_KEY_PASSWORD";
const PASSWORD: &str = "correct horse battery staple";

/// A key made by `baler key generate`.
struct Key {
    secret: PathBuf,
    /// The base64 line `minisign -P` takes.
    public: String,
    id: String,
    _dir: tempfile::TempDir,
}

fn baler(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baler"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("USER", "tester")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `baler key generate --out DIR`, encrypted with [`PASSWORD`] when `encrypted`.
fn generate_key(encrypted: bool) -> Key {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let made = if encrypted {
        baler(
            &[
                "key",
                "generate",
                "--out",
                out,
                "--password-env",
                PASSWORD_VAR,
            ],
            &[(PASSWORD_VAR, PASSWORD)],
        )
    } else {
        baler(&["key", "generate", "--out", out], &[])
    };
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let public_file = std::fs::read_to_string(dir.path().join("baler.pub")).unwrap();
    let mut lines = public_file.lines();
    let comment = lines.next().unwrap();
    let id = comment.rsplit(' ').next().unwrap().to_string();
    assert!(
        comment.starts_with("untrusted comment: minisign public key"),
        "{comment}"
    );
    Key {
        secret: dir.path().join("baler.key"),
        public: lines.next().unwrap().to_string(),
        id,
        _dir: dir,
    }
}

/// `minisign -Vm FILE -x SIG -P KEY`, Debian's minisign.
fn minisign_verify(file: &Path, signature: &Path, key: &str) -> Output {
    Command::new("minisign")
        .args(["-Vm"])
        .arg(file)
        .arg("-x")
        .arg(signature)
        .args(["-P", key])
        .output()
        .expect("minisign is installed (.ci/run installs it)")
}

async fn body(app: &TestApp, url: &str) -> (u16, Vec<u8>) {
    let response = app.client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

/// Downloads `url` into `dir` under its last path segment, as `curl -O` does.
async fn fetch_into(app: &TestApp, url: &str, dir: &Path) -> PathBuf {
    let (status, bytes) = body(app, url).await;
    assert_eq!(status, 200, "GET {url}");
    let path = dir.join(url.rsplit('/').next().unwrap());
    std::fs::write(&path, bytes).unwrap();
    path
}

fn one_tag_repo() -> GitRepo {
    let mut repo = GitRepo::new();
    repo.write("README.md", b"# Signed\n\nA signed project.\n");
    repo.write("src/lib.txt", b"library\n");
    repo.commit("First");
    repo.git(&["tag", "-a", "v1.0.0", "-m", "Release 1.0.0"]);
    repo
}

async fn release_tag(app: &TestApp, repo: &GitRepo, tag: &str) {
    let commit = repo.rev(tag);
    app.github_push("signed", &format!("refs/tags/{tag}"), &commit)
        .await;
    app.run_queue_until_idle().await;
}

/// A signed release: every file and SHA256SUMS verify with `minisign` under the served key,
/// with the trusted comment baler promises; a tampered copy is refused; the page shows the key
/// and the command.
async fn a_signed_release_verifies_with_minisign(db: TestDb) {
    let key = generate_key(true);
    let repo = one_tag_repo();
    let app = TestApp::builder()
        .database(&db)
        .signing(&key.secret, Some(PASSWORD_VAR))
        .env(PASSWORD_VAR, PASSWORD)
        .project(ProjectSpec::github("signed", repo.url()))
        .start()
        .await;
    release_tag(&app, &repo, "v1.0.0").await;
    let commit = repo.rev("v1.0.0");

    let (status, served_key) =
        body(&app, &format!("{}/.well-known/baler/minisign.pub", app.url)).await;
    assert_eq!(status, 200);
    let served_key = String::from_utf8(served_key).unwrap();
    assert!(served_key.contains(&key.public), "{served_key}");
    assert!(served_key.contains(&key.id), "{served_key}");

    let release = app.release("signed", "1.0.0").await;
    assert_eq!(release["signing_key"], key.public.as_str());
    let dir = tempfile::tempdir().unwrap();
    let files = release["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for file in files {
        let path = fetch_into(&app, file["url"].as_str().unwrap(), dir.path()).await;
        let signature = fetch_into(&app, file["minisig"].as_str().unwrap(), dir.path()).await;
        let checked = minisign_verify(&path, &signature, &key.public);
        let said = String::from_utf8_lossy(&checked.stdout);
        assert!(
            checked.status.success(),
            "{said} {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        assert!(
            said.contains(&format!(
                "Trusted comment: baler release signed 1.0.0 commit {commit}"
            )),
            "{said}"
        );
        // One byte changed: refused.
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        let tampered = dir.path().join("tampered");
        std::fs::write(&tampered, &bytes).unwrap();
        let refused = minisign_verify(&tampered, &signature, &key.public);
        assert!(!refused.status.success(), "a tampered file verified");
        // Another key: refused.
        let other = generate_key(false);
        assert!(
            !minisign_verify(&path, &signature, &other.public)
                .status
                .success()
        );
    }
    let sums = fetch_into(&app, release["sha256sums"].as_str().unwrap(), dir.path()).await;
    let sums_signature = fetch_into(
        &app,
        release["sha256sums_minisig"].as_str().unwrap(),
        dir.path(),
    )
    .await;
    let checked = minisign_verify(&sums, &sums_signature, &key.public);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    // The signed SHA256SUMS is what `sha256sum -c` checks the downloads with.
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let page = String::from_utf8(body(&app, release["page"].as_str().unwrap()).await.1).unwrap();
    assert!(page.contains(&key.public), "the page shows the key");
    assert!(
        page.contains(&format!("minisign -Vm signed-1.0.0.zip -P {}", key.public)),
        "the page shows the command"
    );
    // A file of an unknown release has no signature to serve.
    let (missing, _) = body(
        &app,
        &format!("{}/files/signed/signed-9.zip.minisig", app.url),
    )
    .await;
    assert_eq!(missing, 404);
}

/// The provenance: one DSSE envelope whose signature verifies (checked here with ed25519-dalek
/// over DSSE's pre-authentication encoding, without baler's code) under the minisign key, with
/// `keyid` its key id, and whose statement names the files' sha256, the commit and tree, the
/// ref, the layout and formats, the queue item and baler's version.
async fn provenance_is_a_signed_in_toto_statement(db: TestDb) {
    let key = generate_key(false);
    let repo = one_tag_repo();
    let app = TestApp::builder()
        .database(&db)
        .signing(&key.secret, None)
        .project(ProjectSpec::github("signed", repo.url()))
        .start()
        .await;
    release_tag(&app, &repo, "v1.0.0").await;
    let release = app.release("signed", "1.0.0").await;
    let (status, text) = body(&app, release["provenance"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(text).unwrap();
    assert_eq!(text.lines().count(), 1, "one envelope per line: {text}");
    let envelope: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let payload = BASE64
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let signatures = envelope["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 1);
    assert_eq!(signatures[0]["keyid"], key.id.as_str());

    // DSSE v1: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    pae.extend_from_slice(&payload);
    // A minisign public key: "Ed", the 8-byte key id, the 32-byte Ed25519 key.
    let public = BASE64.decode(&key.public).unwrap();
    assert_eq!(&public[..2], b"Ed");
    let verifying =
        ed25519_dalek::VerifyingKey::from_bytes(&public[10..42].try_into().unwrap()).unwrap();
    let sig = BASE64
        .decode(signatures[0]["sig"].as_str().unwrap())
        .unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
    verifying
        .verify_strict(&pae, &sig)
        .expect("the DSSE signature verifies");
    let mut altered = pae.clone();
    let last = altered.len() - 2;
    altered[last] ^= 1;
    assert!(verifying.verify_strict(&altered, &sig).is_err());

    let statement: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    let subjects = statement["subject"].as_array().unwrap();
    let files = release["files"].as_array().unwrap();
    assert_eq!(subjects.len(), files.len());
    for file in files {
        let (_, bytes) = body(&app, file["url"].as_str().unwrap()).await;
        let subject = subjects
            .iter()
            .find(|s| s["name"] == file["name"])
            .unwrap_or_else(|| panic!("no subject for {}", file["name"]));
        assert_eq!(
            subject["digest"]["sha256"],
            hex::encode(Sha256::digest(&bytes)).as_str()
        );
    }
    let definition = &statement["predicate"]["buildDefinition"];
    assert!(
        definition["buildType"]
            .as_str()
            .unwrap()
            .starts_with("urn:baler:")
    );
    let parameters = &definition["externalParameters"];
    assert_eq!(parameters["repository"], repo.url().as_str());
    assert_eq!(parameters["ref"], "refs/tags/v1.0.0");
    assert_eq!(parameters["layout"], "plain");
    assert_eq!(parameters["formats"], serde_json::json!(["tar.gz", "zip"]));
    let dependency = &definition["resolvedDependencies"][0];
    assert_eq!(
        dependency["digest"]["gitCommit"],
        repo.rev("v1.0.0").as_str()
    );
    assert_eq!(
        dependency["digest"]["gitTree"],
        repo.git(&["rev-parse", "v1.0.0^{tree}"]).as_str()
    );
    let run = &statement["predicate"]["runDetails"];
    assert!(
        run["builder"]["id"]
            .as_str()
            .unwrap()
            .ends_with(env!("CARGO_PKG_VERSION")),
        "{}",
        run["builder"]
    );
    let item: i64 = run["metadata"]["invocationId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let recorded = app
        .db
        .query_one_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT item_id FROM releases WHERE version = '1.0.0'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "item_id")
        .unwrap();
    assert_eq!(item, recorded);
    let started =
        chrono::DateTime::parse_from_rfc3339(run["metadata"]["startedOn"].as_str().unwrap())
            .unwrap();
    let finished =
        chrono::DateTime::parse_from_rfc3339(run["metadata"]["finishedOn"].as_str().unwrap())
            .unwrap();
    assert!(started <= finished);
}

/// `baler verify` rebuilds a good release and says OK; once a published file is replaced by
/// one with an altered entry, it names that entry.
async fn baler_verify_rebuilds_and_names_what_differs(db: TestDb) {
    let key = generate_key(false);
    let repo = one_tag_repo();
    let app = TestApp::builder()
        .database(&db)
        .signing(&key.secret, None)
        // Served from disk each time, so the altered file is what is served.
        .http(crate::support::HttpSettings {
            files_in_memory_mib: Some(0),
            ..Default::default()
        })
        .project(ProjectSpec::github("signed", repo.url()))
        .start()
        .await;
    release_tag(&app, &repo, "v1.0.0").await;
    let page = format!("{}/projects/signed/releases/1.0.0", app.url);
    let source = repo.dir.to_str().unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", source, "--ref", "v1.0.0", "--release", &page];
        args.extend_from_slice(extra);
        baler(&args, &[])
    };
    let good = verify(&["--public-key", &key.public]);
    let said = String::from_utf8_lossy(&good.stdout);
    assert!(
        good.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(
        said.starts_with("OK signed 1.0.0: 2 files rebuilt byte for byte"),
        "{said}"
    );
    // The server's key, by default.
    assert!(verify(&[]).status.success());
    // Another key: refused.
    let other = generate_key(false);
    let refused = verify(&["--public-key", &other.public]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("provenance"));
    // A ref at another commit: refused, naming both.
    let mut moved = one_tag_repo();
    moved.write("README.md", b"moved\n");
    moved.commit("Moved");
    moved.git(&["tag", "-f", "v1.0.0"]);
    let elsewhere = baler(
        &[
            "verify",
            moved.dir.to_str().unwrap(),
            "--ref",
            "v1.0.0",
            "--release",
            &page,
        ],
        &[],
    );
    assert_eq!(elsewhere.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&elsewhere.stdout).contains("but the release was built from"));

    // The published zip replaced by one whose README says something else.
    let zip_path = app.data_dir.join("files/signed/signed-1.0.0.zip");
    let original = std::fs::read(&zip_path).unwrap();
    std::fs::write(
        &zip_path,
        rewrite_entry(&original, "signed-1.0.0/README.md", b"# Evil\n"),
    )
    .unwrap();
    let altered = verify(&["--public-key", &key.public]);
    let said = String::from_utf8_lossy(&altered.stdout);
    assert_eq!(altered.status.code(), Some(1), "{said}");
    assert!(said.contains("signed-1.0.0.zip"), "{said}");
    assert!(
        said.contains("entry \"signed-1.0.0/README.md\" differs"),
        "{said}"
    );
}

/// `original` with `entry`'s content replaced, every other entry as it was.
fn rewrite_entry(original: &[u8], entry: &str, content: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(original)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).unwrap();
        let name = file.name().unwrap().to_string();
        let options = zip::write::SimpleFileOptions::default()
            .last_modified_time(file.last_modified().unwrap_or_default())
            .unix_permissions(file.unix_mode().unwrap_or(0o644));
        if file.is_dir() {
            out.add_directory(name, options).unwrap();
            continue;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        out.start_file(name.clone(), options).unwrap();
        out.write_all(if name == entry { content } else { &bytes })
            .unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// Releases made with signing off get their signatures from `baler sign --all` (audited, and
/// only once); after a key rotation, new releases carry the new key and the old ones still
/// verify under the old key, which their pages keep showing.
async fn sign_all_then_rotate_the_key(db: TestDb) {
    let repo = one_tag_repo();
    let installation = crate::support::Installation::new(&db).await;
    let unsigned = TestApp::builder()
        .installation(&installation)
        .project(ProjectSpec::github("signed", repo.url()))
        .start()
        .await;
    release_tag(&unsigned, &repo, "v1.0.0").await;
    // An older tag whose files retention has since removed (its rows stay): nothing to sign.
    repo.git(&["tag", "v0.9.0", "v1.0.0^{commit}"]);
    release_tag(&unsigned, &repo, "v0.9.0").await;
    unsigned
        .db
        .execute_unprepared(
            "DELETE FROM release_files WHERE release_id = \
             (SELECT id FROM releases WHERE version = '0.9.0')",
        )
        .await
        .unwrap();
    let release = unsigned.release("signed", "1.0.0").await;
    assert!(release.get("signing_key").is_none(), "{release}");
    let zip_url = format!("{}/files/signed/signed-1.0.0.zip", unsigned.url);
    assert_eq!(body(&unsigned, &format!("{zip_url}.minisig")).await.0, 404);
    assert_eq!(
        body(
            &unsigned,
            &format!("{}/.well-known/baler/minisign.pub", unsigned.url)
        )
        .await
        .0,
        404
    );
    let (_, provenance) = body(&unsigned, release["provenance"].as_str().unwrap()).await;
    let envelope: Value = serde_json::from_slice(&provenance).unwrap();
    assert_eq!(envelope["signatures"], serde_json::json!([]));

    // `baler sign --all` with key A, from a config that names it.
    let old = generate_key(true);
    let config = std::fs::read_to_string(&unsigned.config_path).unwrap();
    let signing_config = unsigned.config_path.with_file_name("signing.toml");
    std::fs::write(
        &signing_config,
        format!(
            "{config}\n[signing]\nminisign_key_file = {:?}\npassword_env = \"{PASSWORD_VAR}\"\n",
            old.secret.display().to_string()
        ),
    )
    .unwrap();
    let config_arg = signing_config.to_str().unwrap();
    let sign = |env: &[(&str, &str)]| baler(&["sign", "--all", "--config", config_arg], env);
    let wrong = sign(&[(PASSWORD_VAR, "wrong")]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("could not be decrypted"));
    let signed = sign(&[(PASSWORD_VAR, PASSWORD)]);
    let said = String::from_utf8_lossy(&signed.stdout);
    assert!(
        signed.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&signed.stderr)
    );
    assert!(said.contains("signed signed 1.0.0"), "{said}");
    assert!(said.contains("1 releases signed"), "{said}");
    let again = sign(&[(PASSWORD_VAR, PASSWORD)]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 releases signed"));
    let audit: Vec<AuditRow> = unsigned.audit_trail().await;
    let signings: Vec<&AuditRow> = audit
        .iter()
        .filter(|r| r.action == "release.sign")
        .collect();
    assert_eq!(signings.len(), 1, "{audit:?}");
    assert_eq!(signings[0].actor, "cli:tester");
    assert_eq!(signings[0].target, "signed 1.0.0");
    unsigned.stop().await;

    // Rotation: key B from now on.
    let new = generate_key(false);
    let app = TestApp::builder()
        .installation(&installation)
        .admin_token(ADMIN_TOKEN)
        .signing(&new.secret, None)
        .project(ProjectSpec::github("signed", repo.url()))
        .start()
        .await;
    let mut repo = repo;
    repo.write("NEWS.txt", b"2.0.0\n");
    repo.commit("Second");
    repo.git(&["tag", "v2.0.0"]);
    release_tag(&app, &repo, "v2.0.0").await;
    let dir = tempfile::tempdir().unwrap();
    for (version, key, other) in [("1.0.0", &old, &new), ("2.0.0", &new, &old)] {
        let release = app.release("signed", version).await;
        assert_eq!(release["signing_key"], key.public.as_str(), "{version}");
        let file = &release["files"][0];
        let path = fetch_into(&app, file["url"].as_str().unwrap(), dir.path()).await;
        let signature = fetch_into(&app, file["minisig"].as_str().unwrap(), dir.path()).await;
        assert!(
            minisign_verify(&path, &signature, &key.public)
                .status
                .success(),
            "{version}"
        );
        assert!(
            !minisign_verify(&path, &signature, &other.public)
                .status
                .success(),
            "{version}"
        );
        let page =
            String::from_utf8(body(&app, release["page"].as_str().unwrap()).await.1).unwrap();
        assert!(
            page.contains(&key.public),
            "{version}'s page shows the key that signed it"
        );
        // The provenance signed by sign --all (1.0.0) or at build time (2.0.0).
        let (_, provenance) = body(&app, release["provenance"].as_str().unwrap()).await;
        let envelope: Value = serde_json::from_slice(&provenance).unwrap();
        assert_eq!(
            envelope["signatures"][0]["keyid"],
            key.id.as_str(),
            "{version}"
        );
    }
    let (_, served) = body(&app, &format!("{}/.well-known/baler/minisign.pub", app.url)).await;
    assert!(String::from_utf8(served).unwrap().contains(&new.public));
    // The admin release page says whether, and by which key, a release is signed.
    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    for (version, said) in [
        ("1.0.0", format!("by minisign key {}", old.public)),
        ("0.9.0", "no: baler sign --all signs it".to_string()),
    ] {
        let page = browser
            .get(&format!("/admin/projects/signed/releases/{version}"))
            .await;
        assert_eq!(page.status, 200);
        let html = scraper::Html::parse_document(&page.body);
        let shown: String = html
            .select(&scraper::Selector::parse("#signed").unwrap())
            .flat_map(|e| e.text())
            .collect();
        assert_eq!(shown, said, "{version}");
    }
}

/// With signing on, a worker killed with SIGKILL while it packages leaves no release row at
/// all, and none is ever visible without its signatures (checked every few milliseconds
/// throughout); the retry publishes the release signed.
async fn a_killed_job_never_leaves_an_unsigned_release(db: TestDb) {
    let key = generate_key(true);
    let repo = GitRepo::heavy(24);
    let app = TestApp::builder()
        .database(&db)
        .role(baler::startup::Role::Web)
        .max_attempts(3)
        .queue(crate::support::QueueSettings {
            lease_seconds: Some(2),
            poll_interval_ms: Some(100),
        })
        .signing(&key.secret, Some(PASSWORD_VAR))
        .env(PASSWORD_VAR, PASSWORD)
        .project(ProjectSpec::github("heavy", repo.url()))
        .start()
        .await;
    let env = [(PASSWORD_VAR.to_string(), PASSWORD.to_string())];
    let unsigned_rows = async || -> (i64, i64) {
        let row = app
            .db
            .query_one_raw(Statement::from_string(
                app.db.get_database_backend(),
                "SELECT (SELECT COUNT(*) FROM releases WHERE signing_key IS NULL OR \
                 sums_minisig IS NULL OR provenance IS NULL) AS releases, \
                 (SELECT COUNT(*) FROM release_files WHERE minisig IS NULL) AS files",
            ))
            .await
            .unwrap()
            .unwrap();
        (
            row.try_get::<i64>("", "releases").unwrap(),
            row.try_get::<i64>("", "files").unwrap(),
        )
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let watching = {
        let stop = stop.clone();
        let db = app.db.clone();
        tokio::spawn(async move {
            let mut checks = 0u64;
            while !stop.is_cancelled() {
                let row = db
                    .query_one_raw(Statement::from_string(
                        db.get_database_backend(),
                        "SELECT COUNT(*) AS n FROM releases WHERE signing_key IS NULL",
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    row.try_get::<i64>("", "n").unwrap(),
                    0,
                    "an unsigned release row"
                );
                checks += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            checks
        })
    };

    // The web-only server holds no key: it serves the one the workers record.
    let well_known = format!("{}/.well-known/baler/minisign.pub", app.url);
    assert_eq!(body(&app, &well_known).await.0, 404);
    let mut first = BalerProcess::start_with_env(&["worker"], &app.config_path, &env);
    app.github_push("heavy", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    let files = app.data_dir.join("files/heavy");
    wait_until(60, "the worker to start writing archives", || {
        let files = files.clone();
        async move {
            std::fs::read_dir(&files)
                .map(|entries| {
                    entries
                        .flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with(".building-"))
                })
                .unwrap_or(false)
        }
    })
    .await;
    let (status, served) = body(&app, &well_known).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8(served).unwrap().contains(&key.public));
    first.kill();
    assert_eq!(unsigned_rows().await, (0, 0));
    let releases = app.versions("heavy").await;
    assert!(
        releases.is_empty(),
        "nothing published by the killed job: {releases:?}"
    );

    let _second = BalerProcess::start_with_env(&["worker"], &app.config_path, &env);
    wait_until(120, "the retry to finish", || async {
        app.items_in(&[ItemState::Done]).await == 1
    })
    .await;
    stop.cancel();
    let checks = watching.await.unwrap();
    assert!(checks > 10, "the watcher ran ({checks} checks)");
    assert_eq!(unsigned_rows().await, (0, 0));
    let release = app.release("heavy", "1.0.0").await;
    assert_eq!(release["signing_key"], key.public.as_str());
}

on_both_databases!(
    a_signed_release_verifies_with_minisign,
    provenance_is_a_signed_in_toto_statement,
    baler_verify_rebuilds_and_names_what_differs,
    sign_all_then_rotate_the_key,
    a_killed_job_never_leaves_an_unsigned_release,
);

/// A key that cannot be used stops a building process at start, in words that say what to
/// change: with signing on, nothing may be published unsigned. A web-only process does not
/// read it.
#[tokio::test]
async fn a_bad_key_stops_the_start() {
    let key = generate_key(true);
    let data = tempfile::tempdir().unwrap();
    let config = |password_env: Option<&str>| {
        let mut text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[signing]\nminisign_key_file = {:?}\n",
            data.path().display().to_string(),
            key.secret.display().to_string()
        );
        if let Some(var) = password_env {
            text.push_str(&format!("password_env = \"{var}\"\n"));
        }
        text
    };
    let start = async |text: String, vars: &[(String, String)]| {
        let config = baler::config::Config::from_toml(&text, vars)?;
        baler::startup::Application::build(config, baler::startup::Role::Worker)
            .await
            .map(|_| ())
    };
    let no_password = start(config(None), &[]).await.unwrap_err().to_string();
    assert!(
        no_password.contains("signing.password_env"),
        "{no_password}"
    );
    let wrong = start(
        config(Some(PASSWORD_VAR)),
        &[(PASSWORD_VAR.into(), "wrong".into())],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(wrong.contains("could not be decrypted"), "{wrong}");
    let unset =
        baler::config::Config::from_toml(&config(Some("BALER_TEST_UNSET_VAR")), &[]).unwrap_err();
    assert!(
        unset.to_string().contains("BALER_TEST_UNSET_VAR"),
        "{unset}"
    );
    start(
        config(Some(PASSWORD_VAR)),
        &[(PASSWORD_VAR.into(), PASSWORD.into())],
    )
    .await
    .expect("the right password starts it");
    // A web-only process never reads the key: it need not be on its machine.
    let elsewhere = config(None).replace(
        &format!("{:?}", key.secret.display().to_string()),
        "\"/nonexistent/baler.key\"",
    );
    let config = baler::config::Config::from_toml(&elsewhere, &[]).unwrap();
    baler::startup::Application::build(config, baler::startup::Role::Web)
        .await
        .expect("a web-only process starts without the key file");
}

/// A key made by Debian's own `minisign -G -W` (no password) signs releases that `minisign`
/// verifies: baler reads minisign's key files, not only its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_by_minisign_itself_signs() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = (dir.path().join("m.key"), dir.path().join("m.pub"));
    let made = Command::new("minisign")
        .args(["-G", "-W", "-p"])
        .arg(&public)
        .arg("-s")
        .arg(&secret)
        .output()
        .expect("minisign is installed (.ci/run installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key = std::fs::read_to_string(&public)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let repo = one_tag_repo();
    let app = TestApp::builder()
        .signing(&secret, None)
        .project(ProjectSpec::github("signed", repo.url()))
        .start()
        .await;
    release_tag(&app, &repo, "v1.0.0").await;
    let release = app.release("signed", "1.0.0").await;
    assert_eq!(release["signing_key"], key.as_str());
    let out = tempfile::tempdir().unwrap();
    let file = &release["files"][0];
    let path = fetch_into(&app, file["url"].as_str().unwrap(), out.path()).await;
    let signature = fetch_into(&app, file["minisig"].as_str().unwrap(), out.path()).await;
    let checked = minisign_verify(&path, &signature, &key);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}
