//! The estimate of the least CPU a transfer can cost: the work the data
//! path must do, priced by single-thread measurements on this machine
//! ([`super::calibrate`]). Kept apart from the measurement so the rule can
//! be read and tested on its own.
//!
//! Left out (not cheap to measure apart, or not per byte): the kernel's
//! TCP copies over loopback, memory copies between the stages, framing,
//! the libp2p control plane, RocksDB commits of metadata and outboards,
//! and the 16-byte tag per 64 KiB block (the ciphertext is 0.02 % larger
//! than the file). So the real cost is always above this, and the gap is
//! what the implementation could still win.

use cairn_protocol::CodingParams;

/// Single-thread CPU seconds per GiB of each kernel's input.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct KernelCosts {
    /// The client's encoder at the bench's coding parameters: encrypt the
    /// file (XChaCha20-Poly1305), Reed–Solomon k → n, BLAKE3 every shard
    /// (its id). Per GiB of *file*, so the n/k of shard hashing and parity
    /// is already in it.
    pub encode: f64,
    /// TLS 1.3 seal of record payload (rustls, the bulk transport's suite).
    pub tls_seal: f64,
    /// TLS 1.3 open of record payload.
    pub tls_open: f64,
    /// BLAKE3 tree of a shard with its bao outboard (`Outboard::compute`),
    /// as a node hashes on ingest and when it validates what it serves,
    /// and as the client verifies chunk groups.
    pub tree_hash: f64,
    /// Writing shard files and fsyncing each, CPU of the writing thread.
    pub disk_write: f64,
    /// Reading shard files back (from the page cache).
    pub disk_read: f64,
    /// The client's decryption of the file's blocks.
    pub decrypt: f64,
}

/// The minimum CPU seconds per GiB of file, `(upload, download)`, for the
/// whole system (client and nodes together).
///
/// Upload: the client encodes the file and seals `n/k` GiB of shards into
/// TLS records; the nodes open them, hash them, and write them to disk.
/// Download (every data shard present, so no Reed–Solomon): the nodes read
/// `k` shards per segment, 1 GiB in all, validate them against their
/// outboards and seal them; the client opens, verifies and decrypts.
pub fn minimum(costs: &KernelCosts, params: CodingParams) -> (f64, f64) {
    let expansion = params.n() as f64 / params.k() as f64;
    let upload = costs.encode
        + expansion * (costs.tls_seal + costs.tls_open + costs.tree_hash + costs.disk_write);
    let download = costs.disk_read
        + costs.tree_hash
        + costs.tls_seal
        + costs.tls_open
        + costs.tree_hash
        + costs.decrypt;
    (upload, download)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs() -> KernelCosts {
        KernelCosts {
            encode: 2.0,
            tls_seal: 0.5,
            tls_open: 0.25,
            tree_hash: 1.0,
            disk_write: 0.125,
            disk_read: 0.0625,
            decrypt: 1.5,
        }
    }

    #[test]
    fn upload_pays_the_expansion_download_one_gib() {
        // k = 3, n = 10: 10/3 GiB of shards per GiB of file.
        let (up, down) = minimum(&costs(), CodingParams::new(3, 7).unwrap());
        assert!((up - (2.0 + 10.0 / 3.0 * 1.875)).abs() < 1e-12, "{up}");
        assert!(
            (down - (0.0625 + 1.0 + 0.75 + 1.0 + 1.5)).abs() < 1e-12,
            "{down}"
        );

        // More parity costs the upload more, never the download.
        let (up2, down2) = minimum(&costs(), CodingParams::new(3, 17).unwrap());
        assert!(up2 > up);
        assert_eq!(down2, down);
    }

    #[test]
    fn a_free_machine_costs_nothing() {
        let zero = KernelCosts {
            encode: 0.0,
            tls_seal: 0.0,
            tls_open: 0.0,
            tree_hash: 0.0,
            disk_write: 0.0,
            disk_read: 0.0,
            decrypt: 0.0,
        };
        assert_eq!(
            minimum(&zero, CodingParams::new(10, 20).unwrap()),
            (0.0, 0.0)
        );
    }
}
