//! Files larger than one compression piece, streamed in chunks, equal `git archive`.

use super::{git_archive, gunzip, package_tag, succeeded, zip_without_modes};
use crate::support::archive_listing::tar_listing;
use crate::support::git::GitRepo;

#[test]
fn large_files_streamed_in_chunks_equal_git_archive() {
    // Over the streaming threshold (8 MiB): one that deflates (the zip deflates it, in a second
    // pass) and one that does not (the zip stores it), each not a whole number of chunks.
    let mut repo = GitRepo::new();
    let text: Vec<u8> = (0..1_900_000u32)
        .flat_map(|i| format!("row {} {}\n", i % 7919, i / 13).into_bytes())
        .take(9 << 20 | 12_345)
        .collect();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..(9 << 20) / 8 + 3)
        .flat_map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()
        })
        .collect();
    repo.write("a-small.txt", b"before\n");
    repo.write("big/text.log", &text);
    repo.write("big/noise.bin", &noise);
    repo.write("z-small.txt", b"after\n");
    repo.commit("Large files");
    repo.git(&["tag", "v1.0.0"]);

    let work = tempfile::tempdir().unwrap();
    succeeded(&package_tag(&repo, "large", "v1.0.0", work.path()));
    let tgz = std::fs::read(work.path().join("large-1.0.0.tar.gz")).unwrap();
    let tar = tar_listing(&gunzip(&tgz));
    assert_eq!(
        tar,
        tar_listing(&git_archive(&repo, "tar", "large-1.0.0", "v1.0.0"))
    );
    let zip_bytes = std::fs::read(work.path().join("large-1.0.0.zip")).unwrap();
    let zip = zip_without_modes(&zip_bytes);
    assert_eq!(
        zip,
        zip_without_modes(&git_archive(&repo, "zip", "large-1.0.0", "v1.0.0"))
    );
    assert!(tar.iter().any(|i| i.content.len() == text.len()));
    // The zip deflated the text and stored the noise, as git decides.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let text_entry = archive.by_name("large-1.0.0/big/text.log").unwrap();
    assert_eq!(text_entry.compression(), zip::CompressionMethod::Deflated);
    drop(text_entry);
    let noise_entry = archive.by_name("large-1.0.0/big/noise.bin").unwrap();
    assert_eq!(noise_entry.compression(), zip::CompressionMethod::Stored);
}
