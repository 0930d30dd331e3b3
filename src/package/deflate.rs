//! Deflate in pieces that can be compressed on any core and joined afterwards (the way pigz
//! works). A piece is raw deflate ending with a sync flush: it stops on a byte boundary and
//! says "not the last block", so pieces concatenate into one valid stream. [`FINAL_BLOCK`]
//! ends such a stream.
//!
//! This is what lets a file be compressed once for both formats: the same pieces are the
//! file's data in the zip (plus the final block) and its part of the tar.gz stream.

use flate2::{Compress, Compression, FlushCompress};

/// An empty final block with fixed codes: ends a stream of pieces.
pub const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// Files larger than this are cut into pieces of this size, compressed in parallel; each
/// piece starts with the previous one's last 32 KiB as its dictionary, so the cut costs
/// almost nothing in size.
pub const PIECE: usize = 1 << 20;

/// The CRC-32 of `bytes` (gzip's and zip's checksum).
pub fn crc32(bytes: &[u8]) -> u32 {
    zlib_rs::crc32::crc32(0, bytes)
}

/// The CRC-32 of `a` followed by `b`, from their CRCs and `b`'s length: how the CRCs of
/// pieces compressed apart are joined.
pub fn crc32_combine(a: u32, b: u32, b_len: u64) -> u32 {
    zlib_rs::crc32::crc32_combine(a, b, b_len)
}

/// deflate's window: the most a dictionary can hold.
pub const WINDOW: usize = 32 * 1024;

/// zlib level 6, git's and gzip's default: within a few percent of `-9` in size on source
/// trees at a fraction of its time. Changing it changes every archive's bytes (the golden
/// test says so).
pub fn level() -> Compression {
    Compression::new(6)
}

/// Compresses `input` into one piece, primed with `dictionary` (at most its last 32 KiB).
pub fn piece(input: &[u8], dictionary: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(level(), false);
    if !dictionary.is_empty() {
        let start = dictionary.len().saturating_sub(WINDOW);
        compress
            .set_dictionary(&dictionary[start..])
            .expect("a raw deflate stream takes a dictionary before any input");
    }
    let mut out = Vec::with_capacity(input.len() / 2 + 64);
    loop {
        let consumed = compress.total_in() as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        compress
            .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
            .expect("deflate into memory cannot fail");
        // Done when all input is in and the flush had room to finish.
        if compress.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
    }
}

/// One piece compressed on some core, with the CRC-32 and length of the input it holds: what
/// a writer needs to join it into a stream whose checksum covers the input.
pub struct DeflatedPiece {
    pub bytes: Vec<u8>,
    pub crc: u32,
    pub input_len: u64,
}

impl DeflatedPiece {
    /// Compresses `input` as [`piece`] does, and notes its CRC and length.
    pub fn of(input: &[u8], dictionary: &[u8]) -> DeflatedPiece {
        DeflatedPiece {
            bytes: piece(input, dictionary),
            crc: crc32(input),
            input_len: input.len() as u64,
        }
    }
}

/// Where `input`'s pieces start: one piece for small inputs, [`PIECE`]-sized ones above.
pub fn cuts(len: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let count = len.div_ceil(PIECE).max(1);
    (0..count).map(move |i| i * PIECE..((i + 1) * PIECE).min(len))
}

/// The dictionary for the piece of `input` at `range`: what precedes it, up to the window.
pub fn dictionary_for<'a>(input: &'a [u8], range: &std::ops::Range<usize>) -> &'a [u8] {
    &input[range.start.saturating_sub(WINDOW)..range.start]
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(stream)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn pieces_join_into_one_stream() {
        let text: Vec<u8> = (0..3 * PIECE + 1234)
            .map(|i| b"baler packs releases "[i % 21] ^ (i / 7919) as u8)
            .collect();
        let mut stream = Vec::new();
        for range in cuts(text.len()) {
            stream.extend(piece(&text[range.clone()], dictionary_for(&text, &range)));
        }
        stream.extend(piece(b"", b""));
        stream.extend(piece(b"tail", &text));
        stream.extend(FINAL_BLOCK);
        let mut expected = text.clone();
        expected.extend(b"tail");
        assert_eq!(inflate(&stream), expected);

        let (head, tail) = expected.split_at(PIECE + 17);
        assert_eq!(
            crc32_combine(crc32(head), crc32(tail), tail.len() as u64),
            crc32(&expected)
        );
    }

    #[test]
    fn an_empty_input_is_one_empty_piece() {
        assert_eq!(cuts(0).collect::<Vec<_>>(), vec![0..0]);
        let mut stream = piece(b"", b"");
        stream.extend(FINAL_BLOCK);
        assert!(inflate(&stream).is_empty());
    }
}
