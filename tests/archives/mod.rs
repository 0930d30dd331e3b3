//! Archives as `git archive` defines them, byte-reproducible, pinned by a golden checksum;
//! `baler package`; private repositories over smart HTTP (the real `git http-backend`,
//! basic auth on) and incremental fetches.
//!
//! By what is checked: the fixture with every case and the golden checksum (`git_archive`),
//! remote and private repositories (`remote`), names git stores as bytes and names that would
//! escape (`names`), export-subst's cap (`export_subst`), files streamed in pieces
//! (`large_files`).

mod export_subst;
mod git_archive;
mod large_files;
mod names;
mod remote;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::archive_listing::{ZipItem, zip_listing};
use crate::support::git::{GitRepo, run};

fn baler_package(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baler"))
        .arg("package")
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("baler runs")
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "baler package failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn unpack(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    if archive.extension().is_some_and(|e| e == "zip") {
        run(Command::new("unzip")
            .arg("-q")
            .arg(archive)
            .arg("-d")
            .arg(into));
    } else {
        run(Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(into));
    }
}

/// `git archive` of `rev` in `format` with the top directory `prefix`.
fn git_archive(repo: &GitRepo, format: &str, prefix: &str, rev: &str) -> Vec<u8> {
    // tar.umask 022: baler's modes are 0644 and 0755 whatever the umask (git's default is 002).
    let out = Command::new("git")
        .args([
            "-c",
            "tar.umask=0022",
            "archive",
            &format!("--format={format}"),
            &format!("--prefix={prefix}/"),
            rev,
        ])
        .current_dir(&repo.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A zip's entries without their modes: git's zip marks regular files as made by DOS (no Unix
/// mode) and applies its umask to directories, while baler writes its fixed Unix modes
/// (checked by `archives_hold_exactly_what_git_archive_holds`).
fn zip_without_modes(zip: &[u8]) -> Vec<ZipItem> {
    let mut items = zip_listing(zip);
    for item in &mut items {
        item.mode = 0;
    }
    items
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn package_tag(repo: &GitRepo, name: &str, tag: &str, out: &Path) -> Output {
    baler_package(
        &[
            repo.dir.to_str().unwrap(),
            "--ref",
            tag,
            "--name",
            name,
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    )
}
