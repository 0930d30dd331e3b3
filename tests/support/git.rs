//! Real git repositories for tests, made with the git command line.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct GitRepo {
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    clock: i64,
}

fn git_in(dir: &Path, args: &[&str], time: i64) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.org")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.org")
        .env("GIT_AUTHOR_DATE", format!("@{time} +0000"))
        .env("GIT_COMMITTER_DATE", format!("@{time} +0000"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl GitRepo {
    /// An empty repository on branch `main`.
    pub fn new() -> GitRepo {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("work");
        std::fs::create_dir(&dir).unwrap();
        let repo = GitRepo {
            dir,
            _temp: Some(temp),
            clock: 1_700_000_000,
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "core.autocrlf", "false"]);
        repo
    }

    /// The repository every release-path test uses: nested directories, an executable, a
    /// symlink, a binary file; a `1.x` branch; an annotated and a lightweight tag.
    pub fn standard() -> GitRepo {
        let mut repo = GitRepo::new();
        repo.write("README.md", b"# Widget\n\nA test project.\n");
        repo.write("src/lib/deep/nested/module.txt", b"nested content\n");
        repo.write("bin/run.sh", b"#!/bin/sh\necho run\n");
        repo.make_executable("bin/run.sh");
        let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        repo.write("assets/blob.bin", &binary);
        repo.symlink("docs-link", "src/lib");
        repo.symlink("run", "bin/run.sh");
        repo.commit("First commit");
        repo.git(&["tag", "-a", "v1.0.0", "-m", "Release 1.0.0"]);
        repo.write("CHANGELOG.txt", b"1.1.0: more\n");
        repo.commit("Second commit");
        repo.git(&["tag", "1.1.0"]);
        repo.git(&["branch", "1.x"]);
        repo
    }

    /// A repository whose one tag holds `megabytes` of incompressible data, so that packaging
    /// it takes long enough to act while it runs.
    pub fn heavy(megabytes: usize) -> GitRepo {
        let mut repo = GitRepo::new();
        let mut seed = 0x9E3779B97F4A7C15u64;
        let mut data = Vec::with_capacity(megabytes << 20);
        while data.len() < megabytes << 20 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            data.extend_from_slice(&seed.to_le_bytes());
        }
        repo.write("data/noise.bin", &data);
        repo.write("README.md", b"heavy\n");
        repo.commit("Heavy content");
        repo.git(&["tag", "v1.0.0"]);
        repo
    }

    pub fn git(&self, args: &[&str]) -> String {
        git_in(&self.dir, args, self.clock)
    }

    pub fn write(&self, path: &str, content: &[u8]) {
        let full = self.dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }

    pub fn make_executable(&self, path: &str) {
        use std::os::unix::fs::PermissionsExt;
        let full = self.dir.join(path);
        std::fs::set_permissions(full, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn symlink(&self, path: &str, target: &str) {
        std::os::unix::fs::symlink(target, self.dir.join(path)).unwrap();
    }

    /// Commits everything; each commit is one minute after the last.
    pub fn commit(&mut self, message: &str) -> String {
        self.clock += 60;
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn rev(&self, name: &str) -> String {
        self.git(&["rev-parse", &format!("{name}^{{commit}}")])
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    /// `git archive` of `rev` with `prefix`, unpacked into `into`.
    pub fn archive_into(&self, rev: &str, prefix: &str, into: &Path) {
        let tar = into.with_extension("git-archive.tar");
        self.git(&[
            "archive",
            "--format=tar",
            &format!("--prefix={prefix}/"),
            "-o",
            tar.to_str().unwrap(),
            rev,
        ]);
        std::fs::create_dir_all(into).unwrap();
        run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(into));
    }
}

pub fn run(command: &mut Command) {
    let out = command.output().expect("command runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
