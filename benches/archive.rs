//! `baler package` against `git archive` on a large generated repository, in the same run:
//! wall time of both formats, sizes, and baler's peak memory; then what a fetch of one new
//! commit into an existing mirror costs next to a fresh clone. Prints figures; asserts only
//! that the outputs are valid, never a speed.
//!
//!     cargo bench --bench archive
//!
//! The repository is generated deterministically (a seeded generator fed to
//! `git fast-import`) under `target/bench-archive/`, once: 21,000 text files in trees up to
//! eight levels deep (sizes from 200 bytes to 40 KiB, drawn from a source-like vocabulary),
//! 600 binary files (incompressible, 4 KiB to 256 KiB), and two large files (a 6 MiB log and
//! a 4 MiB binary). `BALER_BENCH_RUNS` sets the number of timed runs (default 3; medians are
//! printed). Peak memory comes from GNU time (`/usr/bin/time`).
//!
//! Then two memory cases, one run each, with their targets and PASS/FAIL: a repository with
//! one 200 MB incompressible blob (peak RSS <= 2 x the largest blob + 100 MB), and one shaped
//! like Drupal core 11 (about 16,000 files, 100 MB of mostly small PHP/JS/YAML/Twig in deep
//! trees, `.info.yml` files, 300 images; `--layout drupal`; peak RSS <= 150 MB).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use baler::git::{Mirror, RemoteAuth};

/// Bump when the generator changes, so an old repository is not reused.
const GENERATOR: &str = "archive-bench-v1";

/// xorshift64*: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Log-uniform between `low` and `high`: many small files, some large, as in real trees.
    fn size(&mut self, low: f64, high: f64) -> usize {
        let t = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (low * (high / low).powf(t)) as usize
    }
}

const WORDS: &[&str] = &[
    "function",
    "return",
    "public",
    "private",
    "static",
    "class",
    "namespace",
    "use",
    "if",
    "else",
    "foreach",
    "array",
    "string",
    "int",
    "bool",
    "null",
    "true",
    "false",
    "this",
    "self",
    "new",
    "throw",
    "catch",
    "try",
    "module",
    "config",
    "render",
    "entity",
    "field",
    "value",
    "form",
    "state",
    "request",
    "response",
    "cache",
    "query",
    "database",
    "node",
    "user",
    "permission",
    "access",
    "route",
    "controller",
    "service",
    "plugin",
    "hook",
    "theme",
    "template",
    "variable",
    "settings",
    "$element",
    "$form_state",
    "->get(",
    "->set(",
    "=>",
    "(",
    ")",
    "{",
    "}",
    ";",
    "[",
    "]",
    "::",
    "=",
    "==",
    "!==",
    "&&",
    "||",
];

fn text(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 80);
    let mut indent = 0usize;
    while out.len() < size {
        out.extend(std::iter::repeat_n(b' ', indent * 2));
        let words = 3 + rng.below(9);
        for w in 0..words {
            if w > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
            if rng.below(20) == 0 {
                out.extend_from_slice(format!("{}", rng.below(10_000)).as_bytes());
            }
        }
        out.push(b'\n');
        indent = match rng.below(4) {
            0 if indent < 6 => indent + 1,
            1 if indent > 0 => indent - 1,
            _ => indent,
        };
    }
    out
}

fn binary(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(size);
    out
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A path up to eight directories deep, from a fixed set of names.
fn path(rng: &mut Rng, n: usize, ext: &str) -> String {
    const DIRS: &[&str] = &[
        "src",
        "lib",
        "modules",
        "core",
        "tests",
        "assets",
        "vendor",
        "Plugin",
        "Form",
        "Controller",
        "Entity",
        "config",
        "install",
        "schema",
        "templates",
        "js",
        "css",
        "docs",
    ];
    let depth = 1 + rng.below(8) as usize;
    let mut path = String::new();
    for _ in 0..depth {
        path.push_str(DIRS[rng.below(DIRS.len() as u64) as usize]);
        path.push('/');
    }
    format!("{path}file{n}.{ext}")
}

fn fast_import_file(stream: &mut Vec<u8>, path: &str, data: &[u8]) {
    write!(stream, "M 100644 inline {path}\ndata {}\n", data.len()).unwrap();
    stream.extend_from_slice(data);
    stream.push(b'\n');
}

fn commit_header(stream: &mut Vec<u8>, time: i64, message: &str) {
    write!(
        stream,
        "commit refs/heads/main\ncommitter Bench <bench@example.org> {time} +0000\ndata {}\n{message}\n",
        message.len()
    )
    .unwrap();
}

/// Builds the repository (once; reused while the generator is unchanged).
fn generate(repo: &Path) -> (usize, u64) {
    generate_with(repo, GENERATOR, |rng, add| {
        for n in 0..21_000 {
            let size = rng.size(200.0, 40_960.0);
            let data = text(rng, size);
            let ext = ["php", "js", "yml", "twig", "md"][n % 5];
            let p = path(rng, n, ext);
            add(&p, &data);
        }
        for n in 0..600 {
            let size = rng.size(4096.0, 262_144.0);
            let data = binary(rng, size);
            let p = path(rng, n, "bin");
            add(&p, &data);
        }
        let log = text(rng, 6 << 20);
        add("logs/build.log", &log);
        let blob = binary(rng, 4 << 20);
        add("assets/video.bin", &blob);
    })
}

/// Builds a repository with `fill` (once; reused while `generator` is unchanged) with
/// `git fast-import`, then packs it as a fetched mirror would be; returns its file count and
/// content size.
fn generate_with(
    repo: &Path,
    generator: &str,
    fill: impl FnOnce(&mut Rng, &mut dyn FnMut(&str, &[u8])),
) -> (usize, u64) {
    let marker = repo.join("baler-bench");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(generator) {
        let listing = run(Command::new("git")
            .args(["ls-tree", "-r", "-l", "main"])
            .current_dir(repo));
        let bytes = listing
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
            .sum();
        return (listing.lines().count(), bytes);
    }
    let _ = std::fs::remove_dir_all(repo);
    run(Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(repo));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut stream = Vec::new();
    commit_header(&mut stream, 1_700_000_000, "Generated tree");
    let (mut files, mut bytes) = (0usize, 0u64);
    fill(&mut rng, &mut |path: &str, data: &[u8]| {
        fast_import_file(&mut stream, path, data);
        files += 1;
        bytes += data.len() as u64;
    });
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(repo)
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import runs");
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(child.wait().unwrap().success(), "git fast-import failed");
    run(Command::new("git").args(["gc", "-q"]).current_dir(repo));
    std::fs::write(&marker, generator).unwrap();
    (files, bytes)
}

/// Runs `command` under GNU time; returns the wall time and the peak RSS in KiB.
fn timed(command: &[&str], dir: &Path) -> (Duration, u64) {
    let rss_file = dir.join("rss");
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .args(command)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .expect("/usr/bin/time runs (Debian package `time`)");
    let elapsed = started.elapsed();
    assert!(status.success(), "{command:?} failed");
    let rss = std::fs::read_to_string(&rss_file)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    (elapsed, rss)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-archive");
    std::fs::create_dir_all(&root).unwrap();
    let repo = root.join("repo.git");
    let started = Instant::now();
    let (files, bytes) = generate(&repo);
    println!(
        "repository: {files} files, {:.1} MB of content (ready in {:.1} s)",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let runs: usize = std::env::var("BALER_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);

    let work = root.join("out");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let baler = env!("CARGO_BIN_EXE_baler");
    let repo_arg = repo.to_str().unwrap();
    let (mut baler_times, mut git_times, mut peak_rss) = (Vec::new(), Vec::new(), 0);
    for _ in 0..runs {
        let (t, rss) = timed(
            &[
                baler, "package", repo_arg, "--ref", "main", "--name", "bench", "--out", ".",
                "--quiet",
            ],
            &work,
        );
        baler_times.push(t);
        peak_rss = peak_rss.max(rss);
        let (zip, _) = timed(
            &[
                "git",
                "--git-dir",
                repo_arg,
                "archive",
                "--format=zip",
                "-o",
                "git.zip",
                "main",
            ],
            &work,
        );
        let (tgz, _) = timed(
            &[
                "git",
                "--git-dir",
                repo_arg,
                "archive",
                "--format=tar.gz",
                "-o",
                "git.tar.gz",
                "main",
            ],
            &work,
        );
        git_times.push(zip + tgz);
    }
    // The outputs must be real archives, or the times mean nothing.
    run(Command::new("gzip")
        .args(["-t", "bench-main-dev.tar.gz"])
        .current_dir(&work));
    run(Command::new("unzip")
        .args(["-tqq", "bench-main-dev.zip"])
        .current_dir(&work));

    let (baler_time, git_time) = (median(baler_times), median(git_times));
    let ratio = |ours: u64, theirs: u64| 100.0 * (ours as f64 - theirs as f64) / theirs as f64;
    let (zip, git_zip) = (
        size(&work.join("bench-main-dev.zip")),
        size(&work.join("git.zip")),
    );
    let (tgz, git_tgz) = (
        size(&work.join("bench-main-dev.tar.gz")),
        size(&work.join("git.tar.gz")),
    );
    println!(
        "\nboth formats, median of {runs} runs on {} cores:",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  baler package          {:>7.2} s   peak RSS {:.0} MB",
        baler_time.as_secs_f64(),
        peak_rss as f64 / 1024.0
    );
    println!("  git archive zip+tar.gz {:>7.2} s", git_time.as_secs_f64());
    println!(
        "  baler / git            {:>7.2}x   (target <= 0.50x)",
        baler_time.as_secs_f64() / git_time.as_secs_f64()
    );
    println!(
        "  zip     baler {zip:>11} B   git {git_zip:>11} B   {:+.2}%",
        ratio(zip, git_zip)
    );
    println!(
        "  tar.gz  baler {tgz:>11} B   git {git_tgz:>11} B   {:+.2}%",
        ratio(tgz, git_tgz)
    );

    incremental_fetch(&root, &repo);
    large_blob(&root);
    drupal_core_shape(&root);
}

/// Peak RSS of one `baler package` of `repo`'s `main` into `work`, in bytes; the archives are
/// checked to be valid.
fn package_peak(repo: &Path, work: &Path, name: &str, layout: &str) -> (Duration, u64) {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).unwrap();
    let (time, kib) = timed(
        &[
            env!("CARGO_BIN_EXE_baler"),
            "package",
            repo.to_str().unwrap(),
            "--ref",
            "main",
            "--name",
            name,
            "--layout",
            layout,
            "--out",
            ".",
            "--quiet",
        ],
        work,
    );
    let stem = format!("{name}-main-dev");
    run(Command::new("gzip")
        .args(["-t", &format!("{stem}.tar.gz")])
        .current_dir(work));
    run(Command::new("unzip")
        .args(["-tqq", &format!("{stem}.zip")])
        .current_dir(work));
    (time, kib * 1024)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// One 200 MB incompressible blob (the worst case: the zip stores it, the pack holds it
/// uncompressed) among a few small files: the peak must stay within two blobs and 100 MB.
fn large_blob(root: &Path) {
    const BLOB: usize = 200 << 20;
    let repo = root.join("large.git");
    let started = Instant::now();
    let (files, bytes) = generate_with(&repo, "archive-bench-large-v1", |rng, add| {
        add("README.md", b"# One large file\n");
        add("src/small.php", &text(rng, 4096));
        add("assets/large.bin", &binary(rng, BLOB));
    });
    let (time, peak) = package_peak(&repo, &root.join("out-large"), "large", "plain");
    let target = 2 * BLOB as u64 + 100_000_000;
    println!(
        "\none large blob: {files} files, {:.1} MB (ready in {:.1} s)",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    println!(
        "  baler package          {:>7.2} s   peak RSS {:.0} MB   target <= 2 x {:.0} MB + 100 MB = {:.0} MB   {}",
        time.as_secs_f64(),
        peak as f64 / 1e6,
        BLOB as f64 / 1e6,
        target as f64 / 1e6,
        verdict(peak <= target)
    );
}

/// A repository shaped like Drupal core 11: about 16,000 files and 100 MB, mostly small
/// PHP, JS, YAML and Twig in deep trees, with `.info.yml` files and some images.
fn drupal_core_shape(root: &Path) {
    let repo = root.join("drupal.git");
    let started = Instant::now();
    let (files, bytes) = generate_with(&repo, "archive-bench-drupal-v1", |rng, add| {
        for n in 0..15_700 {
            let size = rng.size(150.0, 30_000.0);
            let data = text(rng, size);
            let ext = [
                "php", "js", "yml", "twig", "php", "css", "info.yml", "module",
            ][n % 8];
            let p = path(rng, n, ext);
            add(&p, &data);
        }
        for n in 0..300 {
            let size = rng.size(2048.0, 150_000.0);
            let data = binary(rng, size);
            let p = path(rng, n, ["png", "jpg", "gif"][n % 3]);
            add(&p, &data);
        }
    });
    let (time, peak) = package_peak(&repo, &root.join("out-drupal"), "drupal", "drupal");
    let target = 150_000_000;
    println!(
        "\nDrupal core 11 shape: {files} files, {:.1} MB (ready in {:.1} s)",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    println!(
        "  baler package          {:>7.2} s   peak RSS {:.0} MB   target <= {:.0} MB   {}",
        time.as_secs_f64(),
        peak as f64 / 1e6,
        target as f64 / 1e6,
        verdict(peak <= target)
    );
}

/// A fresh clone of the repository against a fetch of one new commit into that mirror.
fn incremental_fetch(root: &Path, repo: &Path) {
    let remote = root.join("remote.git");
    let mirror = root.join("mirror.git");
    for dir in [&remote, &mirror] {
        let _ = std::fs::remove_dir_all(dir);
    }
    run(Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(repo)
        .arg(&remote));
    let url = format!("file://{}", remote.display());
    let auth = RemoteAuth::default();

    let started = Instant::now();
    let (_, cloned) = Mirror::open_or_clone(&mirror, &url, &auth).expect("clone");
    let clone_time = started.elapsed();

    let mut stream = Vec::new();
    commit_header(&mut stream, 1_700_000_100, "One more change");
    stream.extend_from_slice(b"from refs/heads/main^0\n");
    fast_import_file(&mut stream, "src/changed.php", b"<?php\nreturn 42;\n");
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&remote)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(child.wait().unwrap().success());

    let started = Instant::now();
    let (_, fetched) = Mirror::open_or_clone(&mirror, &url, &auth).expect("fetch");
    let fetch_time = started.elapsed();
    println!("\nmirror over file://:");
    println!(
        "  fresh clone       {:>8.1} ms   {:>6} objects {:>11} B",
        clone_time.as_secs_f64() * 1e3,
        cloned.received_objects,
        cloned.received_bytes
    );
    println!(
        "  fetch one commit  {:>8.1} ms   {:>6} objects {:>11} B   ({:.1}% of the clone's time)",
        fetch_time.as_secs_f64() * 1e3,
        fetched.received_objects,
        fetched.received_bytes,
        100.0 * fetch_time.as_secs_f64() / clone_time.as_secs_f64()
    );
}
