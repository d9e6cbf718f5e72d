//! Progress bars for the library's [`Progress`] reports.

use cairn_client::progress::Progress;
use indicatif::ProgressBar;

/// An indicatif bar that a transfer advances.
#[derive(Debug, Clone)]
pub struct Bar(pub ProgressBar);

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}
