//! Progress reports from long operations, for a bar or a log.

/// Told how far a transfer got. Implementations must be cheap: they are
/// called once per segment.
pub trait Progress: Send + Sync {
    /// The operation will cover `total` bytes.
    fn start(&self, total: u64);
    /// `bytes` more are done.
    fn advance(&self, bytes: u64);
}

/// Reports nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _total: u64) {}
    fn advance(&self, _bytes: u64) {}
}
