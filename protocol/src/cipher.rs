//! File keys and the STREAM construction over fixed-size blocks.
//!
//! Each file has its own random 256-bit key. From it, BLAKE3 `derive_key`
//! makes independent subkeys for the content stream and for the manifest, so
//! no key ever encrypts two different things.
//!
//! The plaintext is cut into blocks (64 KiB by default). Block `i` is sealed
//! with XChaCha20-Poly1305 under the nonce `prefix ‖ i (u32 BE) ‖ last`, the
//! STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár as
//! implemented by RustCrypto's `aead-stream` crate (`StreamBE32`, formerly
//! the `aead` crate's `stream` module). The block index in the
//! nonce defeats reordering and splicing, the last-block flag defeats
//! truncation at a block boundary, and each block stays independently
//! decryptable, which is what makes random reads cheap.
//!
//! The nonce prefix is all zeros: the content subkey is used for exactly one
//! stream, because the file key is fresh for every upload.

use std::io::Write;

use aead_stream::aead::Buffer;
use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::params::Layout;

/// Length of a file key.
pub const KEY_LEN: usize = 32;

const CONTENT_CONTEXT: &str = "cairn 2026-11 v1 content stream key";
const MANIFEST_CONTEXT: &str = "cairn 2026-11 v1 manifest key";
const MANIFEST_NONCE_CONTEXT: &str = "cairn 2026-11 v1 manifest nonce key";

/// STREAM nonce prefix: 24-byte XChaCha nonce minus 4 counter bytes and 1 flag byte.
const NONCE_PREFIX: [u8; 19] = [0u8; 19];

/// A file's secret key. Whoever holds it can read the file.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct FileKey([u8; KEY_LEN]);

impl FileKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// A key from its bytes (for capabilities and test vectors).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn content_key(&self) -> [u8; 32] {
        blake3::derive_key(CONTENT_CONTEXT, &self.0)
    }

    pub(crate) fn manifest_key(&self) -> [u8; 32] {
        blake3::derive_key(MANIFEST_CONTEXT, &self.0)
    }

    pub(crate) fn manifest_nonce_key(&self) -> [u8; 32] {
        blake3::derive_key(MANIFEST_NONCE_CONTEXT, &self.0)
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(<secret>)")
    }
}

/// Why ciphertext did not decrypt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecryptError {
    /// The block's tag does not verify at its position: the bytes were
    /// altered, moved from another position or file, or the key is wrong.
    #[error("block {block} failed authentication (altered, reordered, spliced, or wrong key)")]
    Corrupt { block: u64 },
    /// The stream ends at a block boundary before the block sealed as last.
    #[error("ciphertext truncated: block {block} is not the last block of the stream")]
    Truncated { block: u64 },
    /// The stream is shorter than its layout says.
    #[error("ciphertext truncated: expected {expected} bytes, got {got}")]
    TooShort { expected: u64, got: u64 },
    /// Bytes follow the block sealed as last.
    #[error("ciphertext has {extra} bytes after its last block")]
    TrailingData { extra: u64 },
    /// A block index past what one key may seal.
    #[error("block index {0} exceeds the STREAM counter")]
    BlockIndex(u64),
}

/// Seals and opens single blocks of one file's content stream.
pub struct BlockCipher {
    stream: StreamBE32<XChaCha20Poly1305>,
}

impl std::fmt::Debug for BlockCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockCipher")
    }
}

impl BlockCipher {
    pub fn new(key: &FileKey) -> Self {
        let mut content = key.content_key();
        let aead = XChaCha20Poly1305::new(&content.into());
        content.zeroize();
        Self {
            stream: StreamBE32::from_aead(aead, &NONCE_PREFIX.into()),
        }
    }

    fn position(index: u64) -> Result<u32, DecryptError> {
        u32::try_from(index).map_err(|_| DecryptError::BlockIndex(index))
    }

    /// Encrypts `buf` (one block of plaintext) in place and appends the tag.
    pub fn seal(&self, index: u64, last: bool, buf: &mut Vec<u8>) -> Result<(), DecryptError> {
        self.seal_tail(index, last, buf, 0)
    }

    /// Encrypts `buf[start..]` (one block of plaintext) in place and appends
    /// the tag, so a block can be sealed where it already lies in a larger
    /// buffer.
    pub fn seal_tail(
        &self,
        index: u64,
        last: bool,
        buf: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), DecryptError> {
        let position = Self::position(index)?;
        self.stream
            .encrypt_in_place(position, last, &[], &mut TailBuffer { vec: buf, start })
            // Encryption into a Vec only fails on allocation, which aborts anyway.
            .map_err(|_| DecryptError::Corrupt { block: index })
    }

    /// Decrypts one sealed block in place, leaving the plaintext in `buf`.
    ///
    /// When the block does not open as the last block but does open as an
    /// inner one, the stream was cut at a block boundary: that is reported as
    /// [`DecryptError::Truncated`], not as corruption.
    pub fn open(&self, index: u64, last: bool, buf: &mut Vec<u8>) -> Result<(), DecryptError> {
        let len = self.open_slice(index, last, buf)?;
        buf.truncate(len);
        Ok(())
    }

    /// Decrypts the sealed block that fills `sealed` in place; returns the
    /// plaintext length (the plaintext is `sealed[..len]`).
    pub fn open_slice(
        &self,
        index: u64,
        last: bool,
        sealed: &mut [u8],
    ) -> Result<usize, DecryptError> {
        let position = Self::position(index)?;
        // Keep a copy only on the rare path where the first attempt fails;
        // decryption leaves the buffer unspecified on failure.
        let copy = if last { Some(sealed.to_vec()) } else { None };
        let mut buf = SliceBuffer {
            slice: sealed,
            len: 0,
        };
        buf.len = buf.slice.len();
        match self.stream.decrypt_in_place(position, last, &[], &mut buf) {
            Ok(()) => Ok(buf.len),
            Err(_) => {
                if let Some(mut inner) = copy {
                    if self
                        .stream
                        .decrypt_in_place(position, false, &[], &mut inner)
                        .is_ok()
                    {
                        return Err(DecryptError::Truncated { block: index });
                    }
                }
                Err(DecryptError::Corrupt { block: index })
            }
        }
    }
}

/// The tail `vec[start..]` of a vector, as an AEAD buffer.
struct TailBuffer<'a> {
    vec: &'a mut Vec<u8>,
    start: usize,
}

impl AsRef<[u8]> for TailBuffer<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.start..]
    }
}

impl AsMut<[u8]> for TailBuffer<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..]
    }
}

impl Buffer for TailBuffer<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> aead_stream::aead::Result<()> {
        self.vec.extend_from_slice(other);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.vec.truncate(self.start + len);
    }
}

/// A fixed slice as an AEAD buffer that can only shrink (enough to decrypt,
/// which drops the tag).
struct SliceBuffer<'a> {
    slice: &'a mut [u8],
    len: usize,
}

impl AsRef<[u8]> for SliceBuffer<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.slice[..self.len]
    }
}

impl AsMut<[u8]> for SliceBuffer<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.slice[..self.len]
    }
}

impl Buffer for SliceBuffer<'_> {
    fn extend_from_slice(&mut self, _: &[u8]) -> aead_stream::aead::Result<()> {
        Err(aead_stream::aead::Error)
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// Decrypts a content stream fed in arbitrary pieces, writing plaintext as
/// soon as each block verifies. Holds at most one block.
#[derive(Debug)]
pub struct StreamDecryptor {
    cipher: BlockCipher,
    layout: Layout,
    next_block: u64,
    buf: Vec<u8>,
    seen: u64,
}

impl StreamDecryptor {
    pub fn new(key: &FileKey, layout: Layout) -> Self {
        Self {
            cipher: BlockCipher::new(key),
            layout,
            next_block: 0,
            buf: Vec::with_capacity(layout.sealed_block_size() as usize),
            seen: 0,
        }
    }

    /// A decryptor that starts at block `block` (its ciphertext must be fed
    /// from that block's first byte), for resuming a stream part way.
    pub fn starting_at(key: &FileKey, layout: Layout, block: u64) -> Self {
        let mut d = Self::new(key, layout);
        let block = block.min(layout.block_count());
        d.next_block = block;
        d.seen = block * layout.sealed_block_size();
        d
    }

    /// Index of the next block to be completed.
    pub fn next_block(&self) -> u64 {
        self.next_block
    }

    /// Ciphertext bytes taken so far.
    pub fn position(&self) -> u64 {
        self.seen
    }

    /// Feeds ciphertext; writes the plaintext of every block it completes.
    /// Blocks that lie whole in `ciphertext` are decrypted in place, so its
    /// contents are unspecified afterwards; only blocks cut by the edges of
    /// `ciphertext` are copied aside.
    pub fn feed(
        &mut self,
        mut ciphertext: &mut [u8],
        out: &mut impl Write,
    ) -> Result<(), StreamError> {
        let blocks = self.layout.block_count();
        while !ciphertext.is_empty() {
            if self.next_block >= blocks {
                return Err(DecryptError::TrailingData {
                    extra: ciphertext.len() as u64,
                }
                .into());
            }
            let range = self.layout.block_ciphertext(self.next_block);
            let sealed_len = (range.end - range.start) as usize;
            let last = self.next_block + 1 == blocks;
            if self.buf.is_empty() && ciphertext.len() >= sealed_len {
                let (block, rest) = std::mem::take(&mut ciphertext).split_at_mut(sealed_len);
                let len = self.cipher.open_slice(self.next_block, last, block)?;
                out.write_all(&block[..len])?;
                ciphertext = rest;
                self.seen += sealed_len as u64;
                self.next_block += 1;
                continue;
            }
            let take = (sealed_len - self.buf.len()).min(ciphertext.len());
            self.buf.extend_from_slice(&ciphertext[..take]);
            ciphertext = &mut std::mem::take(&mut ciphertext)[take..];
            self.seen += take as u64;
            if self.buf.len() == sealed_len {
                self.cipher.open(self.next_block, last, &mut self.buf)?;
                out.write_all(&self.buf)?;
                self.buf.clear();
                self.next_block += 1;
            }
        }
        Ok(())
    }

    /// Checks that the whole stream arrived.
    pub fn finish(&self) -> Result<(), DecryptError> {
        if self.next_block < self.layout.block_count() {
            return Err(DecryptError::TooShort {
                expected: self.layout.ciphertext_len(),
                got: self.seen,
            });
        }
        Ok(())
    }
}

/// A decryption failure or a failure to write the plaintext out.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    #[error("writing plaintext: {0}")]
    Io(#[from] std::io::Error),
}
