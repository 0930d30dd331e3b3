//! Archives read back entry by entry, paths as raw bytes, for comparing baler's archives with
//! `git archive`'s where unpacking would lose something (names that are not UTF-8, the zip's
//! UTF-8 flag), and peak memory of a child process.

use std::io::Read;
use std::path::Path;
use std::process::Command;

/// One tar entry: path bytes, type, mode, content (a symlink's target for links).
#[derive(PartialEq, Eq)]
pub struct TarItem {
    pub path: Vec<u8>,
    pub kind: u8,
    pub mode: u32,
    pub content: Vec<u8>,
}

/// The entries of an uncompressed tar, pax global headers (git's commit comment) left out.
pub fn tar_listing(tar: &[u8]) -> Vec<TarItem> {
    let mut archive = tar::Archive::new(tar);
    let mut items = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        let path = entry.path_bytes().into_owned();
        let mode = entry.header().mode().unwrap();
        let content = if kind == tar::EntryType::Symlink {
            entry.link_name_bytes().unwrap().into_owned()
        } else {
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            content
        };
        items.push(TarItem {
            path,
            kind: kind.as_byte(),
            mode,
            content,
        });
    }
    items
}

/// One zip entry: name bytes, whether the UTF-8 flag (bit 11) is set, the Unix mode, content.
#[derive(PartialEq, Eq)]
pub struct ZipItem {
    pub name: Vec<u8>,
    pub utf8_flag: bool,
    pub mode: u32,
    pub content: Vec<u8>,
}

/// The entries of a zip, flags read from the central directory itself.
pub fn zip_listing(zip: &[u8]) -> Vec<ZipItem> {
    let flags = central_flags(zip);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    assert_eq!(archive.len(), flags.len());
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            ZipItem {
                name: entry.name_raw().to_vec(),
                utf8_flag: flags[i] & (1 << 11) != 0,
                mode: entry.unix_mode().unwrap_or(0),
                content,
            }
        })
        .collect()
}

/// The general-purpose flags of every central directory entry, in order.
fn central_flags(zip: &[u8]) -> Vec<u16> {
    let u16_at = |at: usize| u16::from_le_bytes([zip[at], zip[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(zip[at..at + 4].try_into().unwrap());
    let end = (0..=zip.len() - 22)
        .rev()
        .find(|&at| u32_at(at) == 0x0605_4b50)
        .expect("an end of central directory record");
    let count = u16_at(end + 10) as usize;
    let mut at = u32_at(end + 16) as usize;
    let mut flags = Vec::with_capacity(count);
    for _ in 0..count {
        assert_eq!(u32_at(at), 0x0201_4b50, "a central directory header");
        flags.push(u16_at(at + 8));
        at += 46 + u16_at(at + 28) as usize + u16_at(at + 30) as usize + u16_at(at + 32) as usize;
    }
    flags
}

/// Runs `command` and returns its output and its peak resident memory in bytes: from GNU time
/// when `/usr/bin/time` is there (exact), else the highest `VmHWM` seen in `/proc` while it
/// runs (sampled every millisecond).
pub fn run_measuring_peak(command: &mut Command) -> (std::process::Output, u64) {
    let time = Path::new("/usr/bin/time");
    if time.exists() {
        let report = tempfile::NamedTempFile::new().unwrap();
        let program = command.get_program().to_owned();
        let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
        let mut timed = Command::new(time);
        timed
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(report.path())
            .arg(program)
            .args(args);
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => timed.env(key, value),
                None => timed.env_remove(key),
            };
        }
        let output = timed.output().expect("the command runs");
        let kib: u64 = std::fs::read_to_string(report.path())
            .unwrap()
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .expect("GNU time reports the peak in KiB");
        return (output, kib * 1024);
    }
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the command runs");
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib * 1024);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    (waiter.join().unwrap(), peak)
}

/// Content shown short: its length and a sha256 prefix, or the bytes when they are few.
fn short(content: &[u8]) -> String {
    if content.len() <= 64 {
        content.escape_ascii().to_string()
    } else {
        let sha = baler::package::sha256_hex(content);
        format!("{} bytes, sha256 {}", content.len(), &sha[..12])
    }
}

impl std::fmt::Debug for TarItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\n{} type {} mode {:o} [{}]",
            self.path.escape_ascii(),
            self.kind as char,
            self.mode,
            short(&self.content)
        )
    }
}

impl std::fmt::Debug for ZipItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\n{} utf8 {} mode {:o} [{}]",
            self.name.escape_ascii(),
            self.utf8_flag,
            self.mode,
            short(&self.content)
        )
    }
}
