//! Redundancy parameters and the byte geometry of an encoded file.
//!
//! A file of `L` plaintext bytes becomes a ciphertext of `L + 16·B` bytes,
//! where `B = max(1, ⌈L / block⌉)` is the number of AEAD blocks (every block,
//! including the empty last block of an empty file, carries a 16-byte tag).
//! The ciphertext is cut into segments of `k·S` bytes, `S` being the shard
//! size. The last segment is shorter: its shard size is `⌈rest / k⌉` and its
//! data shards are zero-padded to that size, so a small file costs small
//! shards rather than a full segment of padding.
//!
//! [`Layout`] is the single place that computes these numbers; the encoder,
//! the decoder, the range planner and the manifest validator all call it.

use std::ops::Range;

/// Plaintext bytes per AEAD block.
pub const DEFAULT_BLOCK_SIZE: u32 = 64 * 1024;
/// Authentication tag added to every block.
pub const TAG_LEN: u32 = 16;
/// Smallest accepted block size.
pub const MIN_BLOCK_SIZE: u32 = 1024;
/// Largest accepted block size.
pub const MAX_BLOCK_SIZE: u32 = 1024 * 1024;
/// Ciphertext bytes a default segment aims at.
pub const DEFAULT_SEGMENT_TARGET: u64 = 8 * 1024 * 1024;
/// Largest shard: bounds every buffer sized from a manifest and every shard
/// message on the network.
pub const MAX_SHARD_SIZE: u32 = 32 * 1024 * 1024;
/// Most shards one segment may have (GF(2^8) Reed–Solomon).
pub const MAX_SHARDS: usize = 256;
/// Data shards by default (Walrus- and Storj-like expansion of 3×).
pub const DEFAULT_DATA_SHARDS: u16 = 10;
/// Parity shards by default.
pub const DEFAULT_PARITY_SHARDS: u16 = 20;

/// Why parameters or a geometry are refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ParamsError {
    #[error("need at least 1 data shard (k), got 0")]
    NoDataShards,
    #[error("need at least 1 parity shard (m), got 0")]
    NoParityShards,
    #[error("k + m = {0} shards; Reed–Solomon over GF(2^8) allows at most 256")]
    TooManyShards(usize),
    #[error("block size {0} must be a power of two between 1 KiB and 1 MiB")]
    BlockSize(u32),
    #[error("shard size {0} must be between 1 byte and 32 MiB")]
    ShardSize(u64),
    #[error("file of {0} bytes is larger than the 2^32 blocks one key may seal")]
    FileTooLarge(u64),
    #[error("{nodes} storage nodes are too few for the {k} data + {m} parity shards asked: they need {min} nodes, one shard on each (leave the shard counts out to use the strongest code the network allows)")]
    NotEnoughNodes {
        nodes: usize,
        min: usize,
        k: usize,
        m: usize,
    },
    #[error("{nodes} storage nodes are too few to store a file safely: at least {min} are needed (2 data + 1 parity shards, each on its own node)")]
    NetworkTooSmall { nodes: usize, min: usize },
}

/// Fewest data shards a scaled-down code may keep.
pub const MIN_SCALED_DATA_SHARDS: usize = 2;
/// Fewest parity shards a scaled-down code may keep.
pub const MIN_SCALED_PARITY_SHARDS: usize = 1;

/// How many data (`k`) and parity (`m`) shards each segment has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CodingParams {
    k: u16,
    m: u16,
}

impl CodingParams {
    /// Validated parameters: `k ≥ 1`, `m ≥ 1`, `k + m ≤ 256`.
    pub fn new(k: u16, m: u16) -> Result<Self, ParamsError> {
        if k == 0 {
            return Err(ParamsError::NoDataShards);
        }
        if m == 0 {
            return Err(ParamsError::NoParityShards);
        }
        let n = k as usize + m as usize;
        if n > MAX_SHARDS {
            return Err(ParamsError::TooManyShards(n));
        }
        Ok(Self { k, m })
    }

    /// Data shards per segment.
    pub fn k(&self) -> usize {
        self.k as usize
    }

    /// Parity shards per segment.
    pub fn m(&self) -> usize {
        self.m as usize
    }

    /// Shards per segment.
    pub fn n(&self) -> usize {
        self.k() + self.m()
    }

    /// These parameters fitted to a network of `nodes` storage nodes, every
    /// shard of a segment on a distinct node: the strongest code the
    /// network allows.
    ///
    /// With enough nodes nothing changes. With fewer, `n` shrinks to the
    /// node count and `k` to `n·k/n₀`, so the expansion `n / k` stays at
    /// least what was asked; when that would leave fewer than 2 data shards,
    /// `k` stays at 2 and every other node holds parity, so the expansion is
    /// as close to the asked one as the network allows (5 nodes: 2 + 3,
    /// 2.5× instead of 3×; [`Self::expansion`] says which). Below a floor of
    /// `k ≥ 2`, `m ≥ 1` (3 nodes) the answer is an error, not a weaker code.
    pub fn fit_to(&self, nodes: usize) -> Result<Self, ParamsError> {
        if nodes >= self.n() {
            return Ok(*self);
        }
        let k = (nodes * self.k() / self.n()).max(MIN_SCALED_DATA_SHARDS.min(self.k()));
        let m = nodes.saturating_sub(k);
        if m < MIN_SCALED_PARITY_SHARDS {
            return Err(ParamsError::NetworkTooSmall {
                nodes,
                min: self.min_nodes_to_fit(),
            });
        }
        Self::new(k as u16, m as u16)
    }

    /// Fewest nodes [`Self::fit_to`] accepts.
    pub fn min_nodes_to_fit(&self) -> usize {
        MIN_SCALED_DATA_SHARDS.min(self.k()) + MIN_SCALED_PARITY_SHARDS
    }

    /// Stored bytes per ciphertext byte: `n / k`.
    pub fn expansion(&self) -> f64 {
        self.n() as f64 / self.k() as f64
    }

    /// Explicit parameters must fit as they are.
    pub fn check_fits(&self, nodes: usize) -> Result<(), ParamsError> {
        if nodes < self.n() {
            return Err(ParamsError::NotEnoughNodes {
                nodes,
                min: self.n(),
                k: self.k(),
                m: self.m(),
            });
        }
        Ok(())
    }

    /// The shard size that makes a full segment about `target` bytes,
    /// rounded up to 4 KiB (a page, and a multiple of the SIMD width).
    pub fn shard_size_for_segment(&self, target: u64) -> u32 {
        let raw = target.div_ceil(self.k as u64).max(1);
        let rounded = raw.div_ceil(4096) * 4096;
        rounded.min(MAX_SHARD_SIZE as u64) as u32
    }
}

impl Default for CodingParams {
    fn default() -> Self {
        Self {
            k: DEFAULT_DATA_SHARDS,
            m: DEFAULT_PARITY_SHARDS,
        }
    }
}

/// The geometry of one encoded file: where every plaintext, ciphertext and
/// shard byte is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    params: CodingParams,
    block_size: u32,
    shard_size: u32,
    plaintext_len: u64,
}

/// One segment's place in the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentGeometry {
    /// Index of the segment in the file.
    pub index: u64,
    /// The ciphertext bytes the segment holds.
    pub ciphertext: Range<u64>,
    /// Size of each of its shards (data shards are zero-padded to it).
    pub shard_size: u32,
}

impl Layout {
    /// Checks block and shard sizes; does not need the file length yet.
    pub fn validate_sizes(block_size: u32, shard_size: u32) -> Result<(), ParamsError> {
        if !block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size)
        {
            return Err(ParamsError::BlockSize(block_size));
        }
        if shard_size == 0 || shard_size > MAX_SHARD_SIZE {
            return Err(ParamsError::ShardSize(shard_size as u64));
        }
        Ok(())
    }

    /// Most plaintext bytes one file may have with this block size (the
    /// STREAM counter is 32 bits).
    pub fn max_plaintext_len(block_size: u32) -> u64 {
        block_size as u64 * u32::MAX as u64
    }

    /// A validated layout.
    pub fn new(
        params: CodingParams,
        block_size: u32,
        shard_size: u32,
        plaintext_len: u64,
    ) -> Result<Self, ParamsError> {
        Self::validate_sizes(block_size, shard_size)?;
        if plaintext_len > Self::max_plaintext_len(block_size) {
            return Err(ParamsError::FileTooLarge(plaintext_len));
        }
        Ok(Self {
            params,
            block_size,
            shard_size,
            plaintext_len,
        })
    }

    pub fn params(&self) -> CodingParams {
        self.params
    }

    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Shard size of every segment but the last.
    pub fn shard_size(&self) -> u32 {
        self.shard_size
    }

    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Ciphertext bytes per full block.
    pub fn sealed_block_size(&self) -> u64 {
        self.block_size as u64 + TAG_LEN as u64
    }

    /// Number of AEAD blocks (at least one: an empty file has one empty block).
    pub fn block_count(&self) -> u64 {
        self.plaintext_len.div_ceil(self.block_size as u64).max(1)
    }

    /// Ciphertext length.
    pub fn ciphertext_len(&self) -> u64 {
        self.plaintext_len + TAG_LEN as u64 * self.block_count()
    }

    /// Ciphertext bytes in a full segment.
    pub fn segment_len(&self) -> u64 {
        self.params.k() as u64 * self.shard_size as u64
    }

    /// Number of segments (at least one).
    pub fn segment_count(&self) -> u64 {
        self.ciphertext_len().div_ceil(self.segment_len())
    }

    /// Where segment `index` is, or `None` past the end.
    pub fn segment(&self, index: u64) -> Option<SegmentGeometry> {
        if index >= self.segment_count() {
            return None;
        }
        let start = index * self.segment_len();
        let end = (start + self.segment_len()).min(self.ciphertext_len());
        let shard_size = (end - start).div_ceil(self.params.k() as u64) as u32;
        Some(SegmentGeometry {
            index,
            ciphertext: start..end,
            shard_size,
        })
    }

    /// Ciphertext range of block `index` (plaintext bytes plus tag).
    pub fn block_ciphertext(&self, index: u64) -> Range<u64> {
        let start = index * self.sealed_block_size();
        let plain_start = index * self.block_size as u64;
        let plain_len =
            (self.plaintext_len - plain_start.min(self.plaintext_len)).min(self.block_size as u64);
        start..start + plain_len + TAG_LEN as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_params() {
        assert_eq!(CodingParams::new(0, 1), Err(ParamsError::NoDataShards));
        assert_eq!(CodingParams::new(1, 0), Err(ParamsError::NoParityShards));
        assert_eq!(
            CodingParams::new(200, 57),
            Err(ParamsError::TooManyShards(257))
        );
        assert!(CodingParams::new(200, 56).is_ok());
        let p = CodingParams::default();
        assert_eq!(
            Layout::new(p, 1000, 4096, 1),
            Err(ParamsError::BlockSize(1000))
        );
        assert_eq!(Layout::new(p, 65536, 0, 1), Err(ParamsError::ShardSize(0)));
        assert_eq!(
            Layout::new(p, 65536, MAX_SHARD_SIZE + 1, 1),
            Err(ParamsError::ShardSize(MAX_SHARD_SIZE as u64 + 1))
        );
        let max = Layout::max_plaintext_len(65536);
        assert!(Layout::new(p, 65536, 4096, max).is_ok());
        assert_eq!(
            Layout::new(p, 65536, 4096, max + 1),
            Err(ParamsError::FileTooLarge(max + 1))
        );
    }

    #[test]
    fn geometry_of_small_and_exact_files() {
        let p = CodingParams::new(3, 2).unwrap();
        let empty = Layout::new(p, 65536, 4096, 0).unwrap();
        assert_eq!(empty.block_count(), 1);
        assert_eq!(empty.ciphertext_len(), 16);
        assert_eq!(empty.segment_count(), 1);
        assert_eq!(empty.segment(0).unwrap().shard_size, 6);
        assert_eq!(empty.segment(1), None);

        let exact = Layout::new(p, 65536, 4096, 65536).unwrap();
        assert_eq!(exact.block_count(), 1);
        assert_eq!(exact.block_ciphertext(0), 0..65552);

        let two = Layout::new(p, 65536, 4096, 65537).unwrap();
        assert_eq!(two.block_count(), 2);
        assert_eq!(two.ciphertext_len(), 65537 + 32);
        assert_eq!(two.block_ciphertext(1), 65552..65552 + 17);
        assert_eq!(two.segment_len(), 3 * 4096);
        assert_eq!(two.segment_count(), (65569u64).div_ceil(12288));
        let last = two.segment(two.segment_count() - 1).unwrap();
        assert_eq!(last.ciphertext.end, two.ciphertext_len());
    }

    #[test]
    fn fitting_to_small_networks_keeps_the_expansion_while_it_can() {
        let p = CodingParams::default();
        assert_eq!(p.fit_to(100).unwrap(), p);
        assert_eq!(p.fit_to(30).unwrap(), p);
        let f = p.fit_to(10).unwrap();
        assert_eq!((f.k(), f.m()), (3, 7));
        let f = p.fit_to(7).unwrap();
        assert_eq!((f.k(), f.m()), (2, 5));
        assert_eq!(p.fit_to(6).unwrap().k(), 2);
        for nodes in 6..=30 {
            let f = p.fit_to(nodes).unwrap();
            assert_eq!(f.n(), nodes);
            assert!(
                f.n() * p.k() >= p.n() * f.k(),
                "expansion never drops below 3 at {nodes} nodes"
            );
        }
        // Fewer than 6 nodes cannot keep 3×: 2 data shards, the rest parity.
        let f = p.fit_to(5).unwrap();
        assert_eq!((f.k(), f.m()), (2, 3));
        assert_eq!(f.expansion(), 2.5);
        assert_eq!(p.fit_to(4).unwrap(), CodingParams::new(2, 2).unwrap());
        assert_eq!(p.fit_to(3).unwrap(), CodingParams::new(2, 1).unwrap());
        assert_eq!(p.min_nodes_to_fit(), 3);
        assert_eq!(
            p.fit_to(2),
            Err(ParamsError::NetworkTooSmall { nodes: 2, min: 3 })
        );
        assert!(p.fit_to(0).is_err());
        // Replication (k = 1) stays replication.
        let copies = CodingParams::new(1, 4).unwrap();
        assert_eq!(copies.fit_to(3).unwrap(), CodingParams::new(1, 2).unwrap());
        assert_eq!(copies.min_nodes_to_fit(), 2);
        let tahoe = CodingParams::new(3, 7).unwrap();
        assert_eq!(tahoe.fit_to(5).unwrap(), CodingParams::new(2, 3).unwrap());
        assert!(tahoe.check_fits(9).is_err());
        assert!(tahoe.check_fits(10).is_ok());
    }

    proptest::proptest! {
        /// A fitted code always fits, never has more data shards than asked,
        /// and keeps the asked expansion whenever it has more than the
        /// floor of data shards.
        #[test]
        fn fitted_codes_fit_and_keep_what_they_can(k in 1u16..=40, m in 1u16..=80, nodes in 0usize..=130) {
            let p = CodingParams::new(k, m).unwrap();
            match p.fit_to(nodes) {
                Ok(f) => {
                    proptest::prop_assert!(f.check_fits(nodes).is_ok());
                    proptest::prop_assert!(f.k() <= p.k());
                    if f.k() > MIN_SCALED_DATA_SHARDS || f == p {
                        proptest::prop_assert!(f.n() * p.k() >= p.n() * f.k());
                    }
                    if nodes < p.n() {
                        proptest::prop_assert_eq!(f.n(), nodes);
                    }
                }
                Err(_) => proptest::prop_assert!(nodes < p.min_nodes_to_fit()),
            }
        }
    }

    #[test]
    fn default_shard_size_makes_8_mib_segments() {
        let p = CodingParams::default();
        let s = p.shard_size_for_segment(DEFAULT_SEGMENT_TARGET);
        assert_eq!(s % 4096, 0);
        assert!(p.k() as u64 * s as u64 >= DEFAULT_SEGMENT_TARGET);
        assert!((p.k() as u64 * s as u64) < DEFAULT_SEGMENT_TARGET + 10 * 4096);
    }
}
