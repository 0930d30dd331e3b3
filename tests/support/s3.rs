//! A real S3 server for the tests: `s3s-fs` (crates.io, installed by `.ci/run`), which checks
//! SigV4 signatures, so a wrong key fails as it would on AWS. `.ci/run` starts one and names
//! it in `BALER_TEST_S3` (its URL) and `BALER_TEST_S3_ROOT` (the directory it serves); without
//! them, a test starts its own on a free port. Either way each test gets a bucket of its own.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use object_store::ObjectStoreExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;

use super::config::StorageSettings;

/// The keys s3s-fs is started with (in `.ci/run` too).
pub const ACCESS_KEY: &str = "baler-test-key";
pub const SECRET_KEY: &str = "baler-test-secret-key";

/// An S3 server and one fresh, empty bucket on it.
pub struct S3Bucket {
    pub endpoint: String,
    pub bucket: String,
    root: PathBuf,
    _server: Option<S3Server>,
}

/// An s3s-fs process this test started; killed when dropped.
struct S3Server {
    process: Child,
    _root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl S3Bucket {
    /// A new bucket on CI's server, or on a server of this test's own.
    pub fn new() -> S3Bucket {
        let shared = std::env::var("BALER_TEST_S3")
            .ok()
            .zip(std::env::var("BALER_TEST_S3_ROOT").ok())
            .filter(|(url, root)| !url.is_empty() && !root.is_empty());
        let (endpoint, root, server) = match shared {
            Some((url, root)) => (url, PathBuf::from(root), None),
            None => {
                let (url, server) = start_s3s_fs();
                let root = server._root.path().to_path_buf();
                (url, root, Some(server))
            }
        };
        let bucket = format!("baler-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        // s3s-fs keeps a bucket as a directory of its root; creating one there is creating
        // the bucket (what an operator does before pointing baler at it).
        std::fs::create_dir(root.join(&bucket)).unwrap();
        S3Bucket {
            endpoint,
            bucket,
            root,
            _server: server,
        }
    }

    /// `[storage]` for this bucket, with the keys in the environment baler is given.
    pub fn settings(&self) -> StorageSettings {
        StorageSettings {
            kind: "s3".into(),
            bucket: Some(self.bucket.clone()),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            prefix: Some("baler/".into()),
            ..StorageSettings::default()
        }
    }

    /// The environment that carries the right keys.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
        ]
    }

    /// Removes the bucket (and what it holds), as an operator's mistake would.
    pub fn remove(&self) {
        std::fs::remove_dir_all(self.root.join(&self.bucket)).unwrap();
    }

    /// Creates the bucket again, empty.
    pub fn recreate(&self) {
        std::fs::create_dir(self.root.join(&self.bucket)).unwrap();
    }

    /// A client of the bucket with the right keys, to look at what baler stored.
    pub fn client(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(&self.bucket)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .build()
            .unwrap()
    }

    /// Every key in the bucket, sorted.
    pub async fn keys(&self) -> Vec<String> {
        use futures::TryStreamExt;
        let client = self.client();
        let mut keys: Vec<String> = object_store::ObjectStore::list(&client, None)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// The keys that start with `prefix`, sorted.
    pub async fn keys_under(&self, prefix: &str) -> Vec<String> {
        self.keys()
            .await
            .into_iter()
            .filter(|key| key.starts_with(prefix))
            .collect()
    }

    /// An object's bytes.
    pub async fn read(&self, key: &str) -> Vec<u8> {
        let client = self.client();
        client
            .get(&Path::from(key))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    /// Makes an object two hours old, as the server sees it (s3s-fs dates an object by its
    /// file's modification time).
    pub fn backdate(&self, key: &str) {
        super::git::run(
            Command::new("touch")
                .args(["-d", "2 hours ago"])
                .arg(self.root.join(&self.bucket).join(key)),
        );
    }

    /// Puts an object, as another process (or a killed worker) would have.
    pub async fn put(&self, key: &str, bytes: &[u8]) {
        let client = self.client();
        client
            .put(&Path::from(key), bytes.to_vec().into())
            .await
            .unwrap();
    }
}

/// Starts s3s-fs on a free port with the test keys, and returns its URL once it listens.
fn start_s3s_fs() -> (String, S3Server) {
    let root = tempfile::tempdir().unwrap();
    let mut process = Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "s3s-fs runs: `.ci/run` installs it (cargo install s3s-fs --version 0.14.1 \
             --features binary --locked), or set BALER_TEST_S3 and BALER_TEST_S3_ROOT",
        );
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("s3s-fs says where it listens").unwrap();
        if let Some(at) = line.find("server is running at ") {
            break line[at + "server is running at ".len()..]
                .trim()
                .to_string();
        }
    };
    // Keep reading its output, so a full pipe never blocks it.
    std::thread::spawn(move || for _ in lines {});
    (
        url,
        S3Server {
            process,
            _root: root,
        },
    )
}
