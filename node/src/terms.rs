//! Which deal terms this node signs a receipt for.
//!
//! A receipt makes the node answerable on the chain (it must prove the
//! shards every period, and is slashed if it cannot), so it signs only terms
//! it accepts: its own chain, a share of the price at or above its ask, a
//! start that is near (a receipt for a deal starting in a year would bind
//! the node to bytes it is not paid for until then) and a duration it is
//! willing to commit to. The chain's facts (id, current epoch, how far ahead
//! a deal may start) come from the node's proof worker, which reads the
//! chain every few seconds; a node with a `[chain]` section refuses receipts
//! until it knows them. A node without a chain signs on the request's terms
//! alone (nothing can be opened with such a receipt but on a chain it never
//! heard of, which is the client's problem, not the node's).

use std::sync::RwLock;

use cairn_protocol::chain::GenesisHash;
use cairn_protocol::wire::{ErrorKind, ReceiptRequest, WireError};

/// What the node knows of its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFacts {
    /// The chain's genesis hash: receipts are signed for it alone.
    pub genesis: GenesisHash,
    pub epoch: u64,
    /// How far ahead of `epoch` the chain lets a deal start.
    pub max_start_ahead: u64,
}

/// The node's terms, from `[chain]` in its config.
#[derive(Debug)]
pub struct TermsPolicy {
    /// Least pay per GiB the node holds and per epoch.
    pub ask_per_gib_epoch: u64,
    /// Longest deal it signs for, in epochs.
    pub max_deal_epochs: u64,
    /// `true` when the node belongs to a chain: then receipts wait for
    /// [`ChainFacts`].
    on_chain: bool,
    facts: RwLock<Option<ChainFacts>>,
}

impl TermsPolicy {
    pub fn new(ask_per_gib_epoch: u64, max_deal_epochs: u64, on_chain: bool) -> Self {
        Self {
            ask_per_gib_epoch,
            max_deal_epochs,
            on_chain,
            facts: RwLock::new(None),
        }
    }

    /// A node on no chain: no terms beyond the request's own consistency.
    pub fn off_chain() -> Self {
        Self::new(0, u64::MAX, false)
    }

    /// Records what the chain says now.
    pub fn learn(&self, facts: ChainFacts) {
        if let Ok(mut f) = self.facts.write() {
            *f = Some(facts);
        }
    }

    pub fn facts(&self) -> Option<ChainFacts> {
        self.facts.read().ok().and_then(|f| f.clone())
    }

    /// The chain's facts if the node is on one and `genesis` is its chain;
    /// `None` for a node on no chain (any genesis passes: no chain of its
    /// own can hold it to a receipt). A node on a chain refuses every
    /// receipt, deal or repair, until it knows its chain, and refuses
    /// other chains' receipts always.
    pub fn chain(&self, genesis: &GenesisHash) -> Result<Option<ChainFacts>, WireError> {
        if !self.on_chain {
            return Ok(None);
        }
        let Some(facts) = self.facts() else {
            return Err(WireError::new(
                ErrorKind::Internal,
                "this node does not know its chain yet; try again shortly".to_string(),
            ));
        };
        if *genesis != facts.genesis {
            return Err(WireError::new(
                ErrorKind::Unauthorized,
                format!(
                    "this node serves the chain with genesis {}, not {}",
                    facts.genesis, genesis
                ),
            ));
        }
        Ok(Some(facts))
    }

    /// Whether the node signs a receipt for `request`.
    pub fn check(&self, request: &ReceiptRequest) -> Result<(), WireError> {
        let refuse = |message: String| Err(WireError::new(ErrorKind::Unauthorized, message));
        let duration = request.end_epoch.saturating_sub(request.start_epoch);
        if duration > self.max_deal_epochs {
            return refuse(format!(
                "a deal of {duration} epochs is longer than this node's {}",
                self.max_deal_epochs
            ));
        }
        let share = u128::from(request.price_per_epoch) * u128::from(request.bytes)
            / u128::from(request.size.max(1));
        let ask =
            (u128::from(self.ask_per_gib_epoch) * u128::from(request.bytes)).div_ceil(1 << 30);
        if share < ask {
            return refuse(format!(
                "this node's share of the price is {share} per epoch, its ask is {ask} ({} per GiB per epoch)",
                self.ask_per_gib_epoch
            ));
        }
        let Some(facts) = self.chain(&request.genesis)? else {
            return Ok(());
        };
        if request.start_epoch <= facts.epoch
            || request.start_epoch > facts.epoch.saturating_add(facts.max_start_ahead)
        {
            return refuse(format!(
                "a deal starting at epoch {} is not in this node's window {}..={} (the chain is at epoch {})",
                request.start_epoch,
                facts.epoch + 1,
                facts.epoch.saturating_add(facts.max_start_ahead),
                facts.epoch
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_protocol::chain::Address;

    fn request() -> ReceiptRequest {
        ReceiptRequest {
            genesis: GenesisHash([1; 32]),
            owner: Address([1; 32]),
            owner_nonce: 0,
            size: 4 << 30,
            price_per_epoch: 4_000,
            start_epoch: 11,
            end_epoch: 20,
            root: [0; 32],
            shards: 1,
            bytes: 1 << 30,
        }
    }

    #[test]
    fn terms_are_checked_against_the_ask_the_chain_and_the_window() {
        let policy = TermsPolicy::new(1_000, 100, true);
        // Unknown chain: not yet.
        assert_eq!(
            policy.check(&request()).unwrap_err().kind,
            ErrorKind::Internal
        );
        policy.learn(ChainFacts {
            genesis: GenesisHash([1; 32]),
            epoch: 10,
            max_start_ahead: 4,
        });
        assert!(policy.check(&request()).is_ok());
        let mut cheap = request();
        cheap.price_per_epoch = 3_999;
        assert!(policy.check(&cheap).unwrap_err().message.contains("ask"));
        let mut other = request();
        other.genesis = GenesisHash([2; 32]);
        assert!(policy
            .check(&other)
            .unwrap_err()
            .message
            .contains("serves the chain"));
        for start in [10, 15] {
            let mut r = request();
            r.start_epoch = start;
            r.end_epoch = start + 5;
            assert!(policy.check(&r).is_err(), "start {start}");
        }
        let mut long = request();
        long.end_epoch = 112;
        assert!(policy.check(&long).unwrap_err().message.contains("longer"));
        // Off chain: only the node's own terms.
        let mut r = request();
        r.genesis = GenesisHash([9; 32]);
        assert!(TermsPolicy::off_chain().check(&r).is_ok());
    }

    #[test]
    fn repair_receipts_wait_for_the_chain_and_name_only_this_one() {
        let policy = TermsPolicy::new(1_000, 100, true);
        let ours = GenesisHash([1; 32]);
        let theirs = GenesisHash([2; 32]);
        assert_eq!(policy.chain(&ours).unwrap_err().kind, ErrorKind::Internal);
        policy.learn(ChainFacts {
            genesis: ours,
            epoch: 10,
            max_start_ahead: 4,
        });
        assert_eq!(policy.chain(&ours).unwrap().map(|f| f.epoch), Some(10));
        assert_eq!(
            policy.chain(&theirs).unwrap_err().kind,
            ErrorKind::Unauthorized
        );
        assert_eq!(TermsPolicy::off_chain().chain(&theirs).unwrap(), None);
    }
}
