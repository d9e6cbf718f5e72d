//! Peak memory of encoding a stream does not grow with the stream.
//!
//! Encodes generated plaintext of 100 MiB and of 1 GiB, each in a fresh
//! child process, and prints each child's peak resident set (VmHWM) and
//! throughput. The bar: the 1 GiB peak within 10 % of the 100 MiB one.
//! Run: `cargo bench -p cairn-protocol --bench encode_memory`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Read;
use std::process::Command;
use std::time::Instant;

use cairn_protocol::encoder::EncoderConfig;
use cairn_protocol::{FileKey, ReadEncoder};

const CHILD_ENV: &str = "CAIRN_ENCODE_MEMORY_BYTES";

/// Endless pseudo-random plaintext, never held whole in memory.
struct Generated {
    left: u64,
    pattern: Vec<u8>,
    pos: usize,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64)
            .min(self.left)
            .min((self.pattern.len() - self.pos) as u64) as usize;
        buf[..n].copy_from_slice(&self.pattern[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.pattern.len();
        // Perturb so no two segments are equal.
        if n > 0 {
            buf[0] ^= (self.left & 0xff) as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// CPU seconds this process has used (user + system), from /proc: robust to
/// other work sharing the machine, unlike wall time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of those, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn child(bytes: u64) {
    let pattern: Vec<u8> = (0..1_048_573u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let reader = Generated {
        left: bytes,
        pattern,
        pos: 0,
    };
    let start = Instant::now();
    let mut enc = ReadEncoder::new(reader, &FileKey::generate(), EncoderConfig::default()).unwrap();
    while let Some(s) = enc.next_segment().unwrap() {
        enc.recycle(s);
    }
    let manifest = enc.manifest().unwrap();
    assert_eq!(manifest.plaintext_len(), bytes);
    let secs = start.elapsed().as_secs_f64();
    let mib = bytes as f64 / 1048576.0;
    println!(
        "{} {} {:.1} {:.1}",
        bytes,
        peak_rss_kib(),
        mib / secs,
        mib / cpu_seconds()
    );
}

fn main() {
    if let Ok(v) = std::env::var(CHILD_ENV) {
        child(v.parse().unwrap());
        return;
    }
    let me = std::env::current_exe().unwrap();
    let mut peaks = Vec::new();
    println!(
        "{:>12} {:>14} {:>10} {:>16}",
        "plaintext", "peak RSS MiB", "MiB/s", "MiB per CPU-s"
    );
    for mib in [100u64, 1024] {
        let out = Command::new(&me)
            .env(CHILD_ENV, (mib << 20).to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let rss_mib = fields[1].parse::<f64>().unwrap() / 1024.0;
        println!(
            "{:>9} MiB {:>14.1} {:>10} {:>16}",
            mib, rss_mib, fields[2], fields[3]
        );
        peaks.push(rss_mib);
    }
    let ratio = peaks[1] / peaks[0];
    println!("peak(1 GiB) / peak(100 MiB) = {ratio:.3} (bar: ≤ 1.10)");
}
