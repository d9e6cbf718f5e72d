//! Systematic Reed–Solomon over GF(2^8).
//!
//! The `k` data shards are the ciphertext itself; `m` parity shards are
//! computed from them, and any `k` of the `n = k + m` rebuild the rest.
//! The arithmetic is `reed-solomon-erasure` with its SIMD kernels.
//!
//! Work is done in column slices of [`SLICE`] bytes: every shard's bytes
//! `[o, o + SLICE)` are coded together before moving on. Reed–Solomon is
//! byte-wise, so the result is identical to coding whole shards. Coding alone
//! is no faster this way (on this project's machine whole shards measured
//! 1.62 GiB/s, slices 1.51 GiB/s), but [`ErasureCoder::encode_with`] lets the
//! caller hash each slice while it is still in cache, which took the whole
//! encode pipeline from 397 to 504 MiB per CPU-second (docs/performance.md).
//! Slices of 16 to 256 KiB measured the same.

use std::ops::Range;

use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::params::CodingParams;

/// Bytes of each shard coded together.
pub const SLICE: usize = 64 * 1024;

/// Why coding failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ErasureError {
    #[error("need {need} shards to rebuild, have {have}")]
    TooFewShards { have: usize, need: usize },
    #[error("shards have unequal sizes")]
    SizeMismatch,
    #[error("expected {expected} shard slots, got {got}")]
    WrongSlotCount { expected: usize, got: usize },
    #[error("reed-solomon: {0}")]
    Codec(String),
}

/// A Reed–Solomon coder for one `(k, m)`.
#[derive(Debug)]
pub struct ErasureCoder {
    params: CodingParams,
    rs: ReedSolomon,
}

impl ErasureCoder {
    pub fn new(params: CodingParams) -> Self {
        // CodingParams already enforces 1 ≤ k, 1 ≤ m, k + m ≤ 256, the
        // library's own conditions.
        let rs = ReedSolomon::new(params.k(), params.m())
            .unwrap_or_else(|e| unreachable!("validated params refused: {e:?}"));
        Self { params, rs }
    }

    pub fn params(&self) -> CodingParams {
        self.params
    }

    /// Computes parity: `data` holds `k` shards of `size` bytes back to back,
    /// `parity` receives `m` shards of `size` bytes back to back.
    pub fn encode(&self, data: &[u8], parity: &mut [u8], size: usize) -> Result<(), ErasureError> {
        self.encode_with(data, parity, size, |_, _, _| {})
    }

    /// As [`Self::encode`], calling `slice_done(range, data, parity)` after
    /// each column slice `range` of every shard is final, while those bytes
    /// are still in cache (the encoder hashes shards this way).
    pub fn encode_with(
        &self,
        data: &[u8],
        parity: &mut [u8],
        size: usize,
        mut slice_done: impl FnMut(Range<usize>, &[u8], &[u8]),
    ) -> Result<(), ErasureError> {
        let (k, m) = (self.params.k(), self.params.m());
        if data.len() != k * size || parity.len() != m * size {
            return Err(ErasureError::SizeMismatch);
        }
        let mut inputs: Vec<&[u8]> = Vec::with_capacity(k);
        let mut offset = 0;
        while offset < size {
            let len = SLICE.min(size - offset);
            inputs.clear();
            inputs.extend((0..k).map(|i| &data[i * size + offset..i * size + offset + len]));
            let mut outputs: Vec<&mut [u8]> = parity
                .chunks_exact_mut(size)
                .map(|shard| &mut shard[offset..offset + len])
                .collect();
            self.rs
                .encode_sep(&inputs, &mut outputs)
                .map_err(|e| ErasureError::Codec(format!("{e:?}")))?;
            slice_done(offset..offset + len, data, parity);
            offset += len;
        }
        Ok(())
    }

    /// Rebuilds missing data shards in place. `shards` has `n` slots; a
    /// present shard has `size` bytes. Missing data slots are filled;
    /// missing parity slots are left empty (nobody needs them to read).
    pub fn reconstruct_data(
        &self,
        shards: &mut [Option<Vec<u8>>],
        size: usize,
    ) -> Result<(), ErasureError> {
        self.reconstruct(shards, size, false)
    }

    /// Rebuilds every missing shard, parity included (what repair needs).
    pub fn reconstruct_all(
        &self,
        shards: &mut [Option<Vec<u8>>],
        size: usize,
    ) -> Result<(), ErasureError> {
        self.reconstruct(shards, size, true)
    }

    fn reconstruct(
        &self,
        shards: &mut [Option<Vec<u8>>],
        size: usize,
        parity_too: bool,
    ) -> Result<(), ErasureError> {
        let (k, n) = (self.params.k(), self.params.n());
        if shards.len() != n {
            return Err(ErasureError::WrongSlotCount {
                expected: n,
                got: shards.len(),
            });
        }
        let have = shards.iter().filter(|s| s.is_some()).count();
        if have < k {
            return Err(ErasureError::TooFewShards { have, need: k });
        }
        if shards.iter().flatten().any(|s| s.len() != size) {
            return Err(ErasureError::SizeMismatch);
        }
        let wanted = if parity_too { n } else { k };
        let present: Vec<bool> = shards.iter().map(Option::is_some).collect();
        if present[..wanted].iter().all(|p| *p) {
            return Ok(());
        }
        for slot in shards.iter_mut().take(wanted) {
            slot.get_or_insert_with(|| vec![0u8; size]);
        }
        let mut offset = 0;
        while offset < size {
            let len = SLICE.min(size - offset);
            // Slots that stay absent (parity during a data-only rebuild) are
            // passed as empty, not-present slices.
            let mut window: Vec<(&mut [u8], bool)> = shards
                .iter_mut()
                .zip(&present)
                .map(|(slot, &p)| match slot {
                    Some(buf) => (&mut buf[offset..offset + len], p),
                    None => (&mut [][..], false),
                })
                .collect();
            let result = if parity_too {
                self.rs.reconstruct(&mut window)
            } else {
                self.rs.reconstruct_data(&mut window)
            };
            result.map_err(|e| ErasureError::Codec(format!("{e:?}")))?;
            offset += len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coded(k: u16, m: u16, size: usize) -> (ErasureCoder, Vec<Vec<u8>>) {
        let coder = ErasureCoder::new(CodingParams::new(k, m).unwrap());
        let data: Vec<u8> = (0..k as usize * size)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        let mut parity = vec![0u8; m as usize * size];
        coder.encode(&data, &mut parity, size).unwrap();
        let shards = data
            .chunks(size)
            .chain(parity.chunks(size))
            .map(<[u8]>::to_vec)
            .collect();
        (coder, shards)
    }

    #[test]
    fn any_k_rebuild_data_and_parity() {
        let size = SLICE + 1000;
        let (coder, shards) = coded(4, 3, size);
        for missing in [[0usize, 1, 2], [0, 4, 6], [3, 5, 6], [1, 2, 3]] {
            let mut slots: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
            for i in missing {
                slots[i] = None;
            }
            coder.reconstruct_all(&mut slots, size).unwrap();
            let rebuilt: Vec<Vec<u8>> = slots.into_iter().map(Option::unwrap).collect();
            assert_eq!(rebuilt, shards);
        }
    }

    #[test]
    fn data_only_rebuild_leaves_parity_absent() {
        let (coder, shards) = coded(3, 2, 100);
        let mut slots: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
        slots[0] = None;
        slots[4] = None;
        coder.reconstruct_data(&mut slots, 100).unwrap();
        assert_eq!(slots[0].as_deref(), Some(&shards[0][..]));
        assert!(slots[4].is_none());
    }

    #[test]
    fn too_few_or_mismatched_shards_are_refused() {
        let (coder, shards) = coded(3, 2, 10);
        let mut slots: Vec<Option<Vec<u8>>> = vec![
            None,
            None,
            None,
            Some(shards[3].clone()),
            Some(shards[4].clone()),
        ];
        assert_eq!(
            coder.reconstruct_data(&mut slots, 10),
            Err(ErasureError::TooFewShards { have: 2, need: 3 })
        );
        let mut slots: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
        slots[0] = Some(vec![0; 9]);
        assert_eq!(
            coder.reconstruct_data(&mut slots, 10),
            Err(ErasureError::SizeMismatch)
        );
        let mut slots = vec![None; 4];
        assert_eq!(
            coder.reconstruct_data(&mut slots, 10),
            Err(ErasureError::WrongSlotCount {
                expected: 5,
                got: 4
            })
        );
        assert_eq!(
            coder.encode(&[0; 29], &mut [0; 20], 10),
            Err(ErasureError::SizeMismatch)
        );
    }
}
