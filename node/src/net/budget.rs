//! The node-wide budget for response bodies.
//!
//! Request bodies are bounded by the codec's budget
//! ([`cairn_client::net::codec`]); what a node sends back is bounded here.
//! A fetch reserves the most its answer can take
//! ([`cairn_protocol::shard::encoded_len_bound`]) before a byte is read, and
//! the reservation travels inside the answer's [`Bytes`], so it is given back
//! only when the connection has written the body and dropped it. However
//! many peers ask at once, bodies read and not yet sent never exceed the
//! budget: a request that finds no room within [`BUDGET_WAIT`] is answered
//! `busy`. One peer may hold at most its share of the budget, so a peer
//! that asks for much and reads slowly cannot take all of it from others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// How long a request waits for room before it is answered `busy`.
pub const BUDGET_WAIT: Duration = Duration::from_secs(2);

/// Bytes of response bodies the node may hold at once.
#[derive(Clone)]
pub struct ResponseBudget {
    room: Arc<Semaphore>,
    wait: Duration,
    /// Most one peer may hold at once.
    per_peer: u64,
    held: Arc<Mutex<HashMap<PeerId, u64>>>,
    metrics: Arc<Metrics>,
}

impl ResponseBudget {
    /// `bytes` over all peers, at most `per_peer` of it for one peer.
    pub fn new(bytes: u64, per_peer: u64, metrics: Arc<Metrics>) -> Self {
        let permits = bytes.min(Semaphore::MAX_PERMITS as u64) as usize;
        Self {
            room: Arc::new(Semaphore::new(permits)),
            wait: BUDGET_WAIT,
            per_peer,
            held: Default::default(),
            metrics,
        }
    }

    /// The same budget with another wait for room than [`BUDGET_WAIT`].
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Reserves `bytes` for `peer`, waiting at most the budget's wait for
    /// room; `None` (counted as a busy refusal) if none came, or at once if
    /// the peer would hold more than its share.
    pub async fn reserve(&self, peer: PeerId, bytes: u64) -> Option<Reservation> {
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let mine = held.entry(peer).or_default();
            if mine.saturating_add(bytes) > self.per_peer {
                if *mine == 0 {
                    held.remove(&peer);
                }
                self.metrics.refused_busy("response_buffer_per_peer");
                return None;
            }
            *mine += bytes;
        }
        let share = PeerShare {
            peer,
            bytes,
            held: self.held.clone(),
        };
        // Every reservation is at most one whole-shard answer, well in u32.
        let permits = u32::try_from(bytes).unwrap_or(u32::MAX);
        let acquire = self.room.clone().acquire_many_owned(permits);
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permit)) => {
                self.metrics
                    .response_bytes_in_flight
                    .inc_by(i64::from(permits));
                Some(Reservation {
                    _permit: permit,
                    _share: share,
                    bytes: i64::from(permits),
                    metrics: self.metrics.clone(),
                })
            }
            _ => {
                self.metrics.refused_busy("response_buffer");
                None
            }
        }
    }

    /// Bytes free now (for tests and the status page).
    pub fn available(&self) -> usize {
        self.room.available_permits()
    }
}

/// Room held in the budget until dropped.
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
    _share: PeerShare,
    bytes: i64,
    metrics: Arc<Metrics>,
}

impl Reservation {
    /// `body` as [`Bytes`] that hold this reservation until their last
    /// clone is dropped (after the body is written to the peer).
    pub fn hold(self, body: Vec<u8>) -> Bytes {
        Bytes::from_owner(Held {
            body,
            _reservation: self,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.metrics.response_bytes_in_flight.dec_by(self.bytes);
    }
}

/// A peer's part of the budget, given back when dropped.
struct PeerShare {
    peer: PeerId,
    bytes: u64,
    held: Arc<Mutex<HashMap<PeerId, u64>>>,
}

impl Drop for PeerShare {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mine) = held.get_mut(&self.peer) {
            *mine = mine.saturating_sub(self.bytes);
            if *mine == 0 {
                held.remove(&self.peer);
            }
        }
    }
}

struct Held {
    body: Vec<u8>,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl std::fmt::Debug for ResponseBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBudget")
            .field("available", &self.available())
            .finish()
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn room_is_given_back_when_the_last_body_clone_drops() {
        let metrics = Metrics::new();
        let budget =
            ResponseBudget::new(1000, 1000, metrics.clone()).with_wait(Duration::from_millis(50));
        let (a, b) = (PeerId::random(), PeerId::random());
        let r = budget.reserve(a, 600).await.expect("room");
        assert_eq!(budget.available(), 400);
        assert_eq!(metrics.response_bytes_in_flight.get(), 600);
        // No room for a second 600: busy after the wait.
        assert!(budget.reserve(b, 600).await.is_none());
        assert!(budget.held.lock().unwrap().get(&b).is_none());
        let body = r.hold(vec![1; 500]);
        let clone = body.clone();
        drop(body);
        assert_eq!(budget.available(), 400, "a clone still holds it");
        assert_eq!(&clone[..3], &[1, 1, 1]);
        drop(clone);
        assert_eq!(budget.available(), 1000);
        assert_eq!(metrics.response_bytes_in_flight.get(), 0);
        assert!(budget.held.lock().unwrap().is_empty());
        assert!(budget.reserve(b, 600).await.is_some());
    }

    #[tokio::test]
    async fn one_peer_holds_at_most_its_share_and_others_still_get_room() {
        let metrics = Metrics::new();
        let budget =
            ResponseBudget::new(1000, 400, metrics.clone()).with_wait(Duration::from_millis(50));
        let (greedy, other) = (PeerId::random(), PeerId::random());
        let first = budget.reserve(greedy, 300).await.expect("within its share");
        assert!(
            budget.reserve(greedy, 300).await.is_none(),
            "past its share"
        );
        let second = budget
            .reserve(other, 400)
            .await
            .expect("another peer's share");
        assert_eq!(budget.available(), 300);
        drop(first);
        assert!(budget.reserve(greedy, 400).await.is_some());
        drop(second);
        assert_eq!(
            metrics
                .busy
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: "response_buffer_per_peer".into()
                })
                .get(),
            1
        );
    }
}
