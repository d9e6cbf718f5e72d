//! Prices the data path's kernels on this machine, once per bench: each
//! runs over [`CALIBRATION_BYTES`] on the calling thread, timed by the
//! thread's CPU clock (so neither the devnet's nodes nor this process's
//! other threads count), in about a second or two altogether.
//!
//! TLS is real rustls, not its AEAD alone: a `ClientConnection` and a
//! `ServerConnection` built from two [`TlsIdentity`]s exactly as the bulk
//! transport builds them, handshaking and then passing records through
//! in-memory buffers, no sockets. So the cipher suite is the one the
//! transport negotiates (AES-128-GCM where the CPU has AES instructions)
//! and the record layer's own copies are counted.

use std::io::{ErrorKind, Read, Write};
use std::path::Path;

use cairn_client::net::bulk::{TlsError, TlsIdentity};
use cairn_protocol::cipher::{BlockCipher, DecryptError};
use cairn_protocol::encoder::{EncodeError, EncoderConfig};
use cairn_protocol::params::{DEFAULT_BLOCK_SIZE, TAG_LEN};
use cairn_protocol::shard::Outboard;
use cairn_protocol::{FileKey, ReadEncoder};
use libp2p::identity::Keypair;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, Connection, ServerConnection};

use super::minimum::KernelCosts;
use crate::cpu;

/// Bytes each kernel runs over: enough for the thread clock to be exact to
/// well under 1 %, little enough to stay a second or two in all.
pub const CALIBRATION_BYTES: usize = 64 << 20;

const GIB: f64 = (1u64 << 30) as f64;

/// Why a kernel could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("this platform has no per-thread CPU clock")]
    NoClock,
    #[error("encoding: {0}")]
    Encode(#[from] EncodeError),
    #[error("decrypting: {0}")]
    Decrypt(#[from] DecryptError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS in memory: {0}")]
    TlsIo(String),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: std::io::Error,
    },
}

/// What this process spends producing and checking the bench's own bytes:
/// counted in the client's CPU, but no part of the data path.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct HarnessCosts {
    /// ChaCha8 generation and BLAKE3 hashing of the upload's input, per GiB.
    pub generate: f64,
    /// BLAKE3 hashing of what the download returns, per GiB.
    pub check: f64,
}

/// Measures every kernel; `dir` holds the disk kernel's files for the
/// moment (it should be on the file system the nodes store on).
pub fn measure(
    dir: &Path,
    config: EncoderConfig,
) -> Result<(KernelCosts, HarnessCosts), CalibrationError> {
    let data = random(CALIBRATION_BYTES, 7);
    let shard = (config.shard_size as usize).max(1);
    let (tls_seal, tls_open) = tls(&data)?;
    let (disk_write, disk_read) = disk(dir, &data, shard)?;
    let kernels = KernelCosts {
        encode: encode(&data, config)?,
        tls_seal,
        tls_open,
        tree_hash: per_gib(data.len(), || {
            for chunk in data.chunks(shard) {
                std::hint::black_box(Outboard::compute(chunk));
            }
            Ok(())
        })?,
        disk_write,
        disk_read,
        decrypt: decrypt(&data)?,
    };
    let harness = HarnessCosts {
        generate: per_gib(data.len(), || {
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; 256 << 10];
            let mut rng = rng(8);
            for _ in 0..data.len() / buf.len() {
                rand::RngCore::fill_bytes(&mut rng, &mut buf);
                hasher.update(&buf);
            }
            std::hint::black_box(hasher.finalize());
            Ok(())
        })?,
        check: per_gib(data.len(), || {
            std::hint::black_box(blake3::Hasher::new().update(&data).finalize());
            Ok(())
        })?,
    };
    Ok((kernels, harness))
}

fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand::SeedableRng::seed_from_u64(seed)
}

/// Incompressible bytes: nothing on the path may get them cheaper.
fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::RngCore::fill_bytes(&mut rng(seed), &mut v);
    v
}

fn thread_now() -> Result<f64, CalibrationError> {
    cpu::thread_seconds().ok_or(CalibrationError::NoClock)
}

/// Thread CPU seconds `work` takes, per GiB of its `bytes`.
fn per_gib(
    bytes: usize,
    work: impl FnOnce() -> Result<(), CalibrationError>,
) -> Result<f64, CalibrationError> {
    let start = thread_now()?;
    work()?;
    Ok((thread_now()? - start) * GIB / bytes.max(1) as f64)
}

/// The client's whole encoder, as the upload drives it (one segment
/// buffer recycled), so encrypt + Reed–Solomon + shard ids together.
fn encode(data: &[u8], config: EncoderConfig) -> Result<f64, CalibrationError> {
    let key = FileKey::generate();
    per_gib(data.len(), || {
        let mut encoder = ReadEncoder::new(data, &key, config)?;
        while let Some(segment) = encoder.next_segment()? {
            encoder.recycle(segment);
        }
        Ok(())
    })
}

/// Opening the file's 64 KiB blocks in place, as the decoder does.
fn decrypt(data: &[u8]) -> Result<f64, CalibrationError> {
    let cipher = BlockCipher::new(&FileKey::generate());
    let block = DEFAULT_BLOCK_SIZE as usize;
    let sealed_len = block + TAG_LEN as usize;
    let mut sealed = Vec::with_capacity(data.len() / block * sealed_len + sealed_len);
    let mut buf = Vec::with_capacity(sealed_len);
    for (i, chunk) in data.chunks(block).enumerate() {
        buf.clear();
        buf.extend_from_slice(chunk);
        cipher.seal(i as u64, false, &mut buf)?;
        sealed.extend_from_slice(&buf);
    }
    // The last chunk may be short; its sealed length then differs, so only
    // whole blocks are opened (64 MiB is a whole number of them anyway).
    let whole = data.len() / block;
    per_gib(whole * block, || {
        for (i, b) in sealed.chunks_exact_mut(sealed_len).take(whole).enumerate() {
            cipher.open_slice(i as u64, false, b)?;
        }
        Ok(())
    })
}

/// `(write, read)`: shard-sized files written and fsynced one by one, as a
/// node stores shards, then read back. Only the CPU of this thread counts:
/// the device's time is not CPU, and the kernel's writeback threads are
/// nobody's in `/proc` either, so they are outside the bench's sums too.
fn disk(dir: &Path, data: &[u8], shard: usize) -> Result<(f64, f64), CalibrationError> {
    let dir = dir.join("calibration");
    std::fs::create_dir_all(&dir).map_err(io("creating the calibration directory"))?;
    let paths: Vec<_> = (0..data.len().div_ceil(shard))
        .map(|i| dir.join(format!("shard-{i}")))
        .collect();
    let result = write_and_read(&paths, data, shard);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn write_and_read(
    paths: &[std::path::PathBuf],
    data: &[u8],
    shard: usize,
) -> Result<(f64, f64), CalibrationError> {
    let write = per_gib(data.len(), || {
        for (path, chunk) in paths.iter().zip(data.chunks(shard)) {
            let mut file = std::fs::File::create(path).map_err(io("creating a file"))?;
            file.write_all(chunk).map_err(io("writing a file"))?;
            file.sync_all().map_err(io("syncing a file"))?;
        }
        Ok(())
    })?;
    let mut buf = vec![0u8; shard];
    let read = per_gib(data.len(), || {
        for (path, chunk) in paths.iter().zip(data.chunks(shard)) {
            let mut file = std::fs::File::open(path).map_err(io("opening a file"))?;
            file.read_exact(&mut buf[..chunk.len()])
                .map_err(io("reading a file"))?;
        }
        Ok(())
    })?;
    Ok((write, read))
}

fn io(context: &'static str) -> impl Fn(std::io::Error) -> CalibrationError {
    move |source| CalibrationError::Io { context, source }
}

/// `(seal, open)`: `data` sent from a client to a server connection.
fn tls(data: &[u8]) -> Result<(f64, f64), CalibrationError> {
    let server_key = Keypair::generate_ed25519();
    let server_identity = TlsIdentity::new(&server_key)?;
    let client_identity = TlsIdentity::new(&Keypair::generate_ed25519())?;
    let expected = server_key.public().to_peer_id();
    let name = ServerName::IpAddress(std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST).into());
    let mut client = Connection::from(ClientConnection::new(
        client_identity.client_config(expected)?,
        name,
    )?);
    let mut server = Connection::from(ServerConnection::new(server_identity.server_config()?)?);
    // Records are drained after every megabyte; no need to cap what queues.
    client.set_buffer_limit(None);
    let mut wire = Vec::new();
    let mut sink = vec![0u8; 64 << 10];
    for _ in 0..16 {
        let settled = !client.is_handshaking()
            && !server.is_handshaking()
            && !client.wants_write()
            && !server.wants_write();
        if settled {
            break;
        }
        flush(&mut client, &mut wire)?;
        feed(&mut server, &mut wire, &mut sink)?;
        flush(&mut server, &mut wire)?;
        feed(&mut client, &mut wire, &mut sink)?;
    }
    if client.is_handshaking() || server.is_handshaking() {
        return Err(CalibrationError::TlsIo(
            "the handshake did not finish".into(),
        ));
    }
    let (mut seal, mut open, mut received) = (0.0, 0.0, 0);
    for chunk in data.chunks(1 << 20) {
        let start = thread_now()?;
        client.writer().write_all(chunk).map_err(tls_io)?;
        flush(&mut client, &mut wire)?;
        let sealed = thread_now()?;
        received += feed(&mut server, &mut wire, &mut sink)?;
        open += thread_now()? - sealed;
        seal += sealed - start;
    }
    if received != data.len() {
        return Err(CalibrationError::TlsIo(format!(
            "{received} bytes arrived of {}",
            data.len()
        )));
    }
    let per = GIB / data.len().max(1) as f64;
    Ok((seal * per, open * per))
}

fn tls_io(e: std::io::Error) -> CalibrationError {
    CalibrationError::TlsIo(e.to_string())
}

/// Moves every record `conn` has ready into `wire`.
fn flush(conn: &mut Connection, wire: &mut Vec<u8>) -> Result<(), CalibrationError> {
    while conn.wants_write() {
        conn.write_tls(wire).map_err(tls_io)?;
    }
    Ok(())
}

/// Gives `conn` every record in `wire` (emptied) and reads out the
/// plaintext into `sink`; returns its length.
fn feed(
    conn: &mut Connection,
    wire: &mut Vec<u8>,
    sink: &mut [u8],
) -> Result<usize, CalibrationError> {
    let mut rest = &wire[..];
    let mut got = 0;
    while !rest.is_empty() {
        if conn.read_tls(&mut rest).map_err(tls_io)? == 0 {
            return Err(CalibrationError::TlsIo("records not accepted".into()));
        }
        conn.process_new_packets()?;
        loop {
            match conn.reader().read(sink) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(tls_io(e)),
            }
        }
    }
    wire.clear();
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_in_memory_carries_every_byte() {
        let data = random((3 << 20) + 12345, 1);
        let (seal, open) = tls(&data).unwrap();
        assert!(seal.is_finite() && seal > 0.0, "{seal}");
        assert!(open.is_finite() && open > 0.0, "{open}");
    }
}
