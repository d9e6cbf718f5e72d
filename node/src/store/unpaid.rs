//! Unpaid shards: stored, but named by no deal the chain has opened with
//! this node.
//!
//! A node of a chain accepts a signed store before any deal exists (the
//! client uploads first, then collects receipts and opens the deal), so for
//! a while every shard is held for free. That while is bounded three ways:
//!
//! * **in time**: an unpaid shard that no kept leaf list names goes once
//!   [`UnpaidLimits::grace_secs`] have passed since it became unpaid (stored,
//!   or its last paying deal ended); one a signed receipt names waits for
//!   the deal, and goes too once the proof worker drops a list whose deal
//!   never opened;
//! * **per owner**: the unpaid bytes charged to one account (the signer of
//!   the first store) are capped;
//! * **in total**: all unpaid bytes together are capped, so strangers
//!   cannot crowd out paid data.
//!
//! A shard is *paid* once the proof worker has seen a deal on the chain
//! whose commitment for this node is a kept leaf list naming it
//! ([`ShardStore::settle`]); when that list is dropped (the deal ended) its
//! shards are unpaid again, from then ([`ShardStore::forget_leaves`]), so
//! a paid shard is kept no longer than its deal plus the grace, whatever
//! expiry its store asked for.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `unpaid` | digest | [`UnpaidRecord`], postcard |
//! | `unpaid_due` | due-from (u64 BE) ‖ digest | empty |
//!
//! The per-owner and total counts are derived from `unpaid` when the store
//! opens, like its usage, so they cannot drift from what is recorded.
//! A node with no chain tracks nothing: every shard is kept as asked.

use std::collections::{HashMap, HashSet};

use cairn_protocol::chain::{Address, DealId};
use cairn_protocol::ContentId;
use rocksdb::{IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use super::leaves::KeptDeal;
use super::{expiry_key, parse_expiry_key, synced, ShardStore, StoreError, CF_DEALS};

pub(super) const CF_UNPAID: &str = "unpaid";
pub(super) const CF_UNPAID_DUE: &str = "unpaid_due";

/// The bounds on unpaid shards (`store.unpaid_grace_secs`,
/// `limits.unpaid_bytes_per_owner`, `limits.unpaid_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpaidLimits {
    pub grace_secs: u64,
    pub per_owner: u64,
    pub total: u64,
}

/// Why an unpaid store was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnpaidRefusal {
    #[error("owner {owner} already holds {held} unpaid bytes here; {needed} more would pass the {limit} byte limit until a deal pays for them")]
    Owner {
        owner: Address,
        held: u64,
        needed: u64,
        limit: u64,
    },
    #[error("this node already holds {held} unpaid bytes; {needed} more would pass its {limit} byte limit")]
    Node { held: u64, needed: u64, limit: u64 },
}

/// Whether `needed` more unpaid bytes of `owner` fit, given what is held.
pub fn admit(
    limits: &UnpaidLimits,
    owner: Address,
    owner_held: u64,
    node_held: u64,
    needed: u64,
) -> Result<(), UnpaidRefusal> {
    if owner_held.saturating_add(needed) > limits.per_owner {
        return Err(UnpaidRefusal::Owner {
            owner,
            held: owner_held,
            needed,
            limit: limits.per_owner,
        });
    }
    if node_held.saturating_add(needed) > limits.total {
        return Err(UnpaidRefusal::Node {
            held: node_held,
            needed,
            limit: limits.total,
        });
    }
    Ok(())
}

/// Whether a shard unpaid since `since` has outlived its grace at `now`.
pub fn overdue(since: u64, grace_secs: u64, now: u64) -> bool {
    now >= since.saturating_add(grace_secs)
}

/// What the store records about an unpaid shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct UnpaidRecord {
    /// When its grace started (its `unpaid_due` key's time).
    pub since: u64,
    /// The account its bytes are charged to.
    pub owner: Address,
    pub bytes: u64,
}

/// Unpaid bytes, in total and per owner.
#[derive(Debug, Default)]
pub(super) struct UnpaidBook {
    pub total: u64,
    pub by_owner: HashMap<Address, u64>,
}

impl UnpaidBook {
    fn add(&mut self, owner: Address, bytes: u64) {
        self.total = self.total.saturating_add(bytes);
        *self.by_owner.entry(owner).or_default() += bytes;
    }

    fn sub(&mut self, owner: &Address, bytes: u64) {
        self.total = self.total.saturating_sub(bytes);
        if let Some(held) = self.by_owner.get_mut(owner) {
            *held = held.saturating_sub(bytes);
            if *held == 0 {
                self.by_owner.remove(owner);
            }
        }
    }
}

/// Unpaid bytes held now, for `/status` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnpaidUsage {
    pub bytes: u64,
    pub owners: u64,
}

impl ShardStore {
    /// Turns on the accounting of unpaid shards (a node of a chain) and
    /// reads what is recorded.
    pub fn track_unpaid(&mut self, limits: UnpaidLimits) -> Result<(), StoreError> {
        let mut book = UnpaidBook::default();
        let mut stale = WriteBatch::default();
        for item in self
            .db
            .iterator_cf(&self.cf(CF_UNPAID), IteratorMode::Start)
        {
            let (key, value) = item?;
            let Ok(digest) = <[u8; 32]>::try_from(&key[..]) else {
                continue;
            };
            let id = ContentId::from_digest(digest);
            match postcard::from_bytes::<UnpaidRecord>(&value) {
                // A shard dropped as lost when the store opened leaves its
                // record behind.
                Ok(r) if self.meta(&id)?.is_none() => {
                    stale.delete_cf(&self.cf(CF_UNPAID), key);
                    stale.delete_cf(&self.cf(CF_UNPAID_DUE), expiry_key(r.since, &id));
                }
                Ok(r) => book.add(r.owner, r.bytes),
                Err(_) => stale.delete_cf(&self.cf(CF_UNPAID), key),
            }
        }
        self.db.write_opt(stale, &synced())?;
        *self.lock_book() = book;
        self.unpaid = Some(limits);
        Ok(())
    }

    /// The unpaid limits, when the node tracks them.
    pub fn unpaid_limits(&self) -> Option<UnpaidLimits> {
        self.unpaid
    }

    pub(super) fn lock_book(&self) -> std::sync::MutexGuard<'_, UnpaidBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn unpaid_usage(&self) -> UnpaidUsage {
        let book = self.lock_book();
        UnpaidUsage {
            bytes: book.total,
            owners: book.by_owner.len() as u64,
        }
    }

    /// Charges a new shard of `bytes` to `owner` if the limits allow;
    /// the caller writes [`Self::unpaid_entries`] with the shard, or
    /// [`Self::uncharge`]s on failure.
    pub(super) fn charge(&self, owner: Address, bytes: u64) -> Result<(), StoreError> {
        let Some(limits) = &self.unpaid else {
            return Ok(());
        };
        let mut book = self.lock_book();
        let held = book.by_owner.get(&owner).copied().unwrap_or(0);
        admit(limits, owner, held, book.total, bytes).map_err(StoreError::Unpaid)?;
        book.add(owner, bytes);
        Ok(())
    }

    pub(super) fn uncharge(&self, owner: &Address, bytes: u64) {
        if self.unpaid.is_some() {
            self.lock_book().sub(owner, bytes);
        }
    }

    /// Adds shard `id`'s unpaid record and due entry to `batch`.
    pub(super) fn unpaid_entries(&self, batch: &mut WriteBatch, id: &ContentId, r: &UnpaidRecord) {
        if self.unpaid.is_none() {
            return;
        }
        let value = postcard::to_allocvec(r).unwrap_or_default();
        batch.put_cf(&self.cf(CF_UNPAID), id.digest(), value);
        batch.put_cf(&self.cf(CF_UNPAID_DUE), expiry_key(r.since, id), []);
    }

    pub(super) fn unpaid_record(&self, id: &ContentId) -> Result<Option<UnpaidRecord>, StoreError> {
        Ok(self
            .db
            .get_pinned_cf(&self.cf(CF_UNPAID), id.digest())?
            .and_then(|v| postcard::from_bytes(&v).ok()))
    }

    /// Deletes shard `id`'s unpaid record (if any) in `batch`; returns it
    /// so the caller can uncharge it once the batch is written.
    pub(super) fn drop_unpaid(
        &self,
        batch: &mut WriteBatch,
        id: &ContentId,
    ) -> Result<Option<UnpaidRecord>, StoreError> {
        let record = self.unpaid_record(id)?;
        if let Some(r) = &record {
            batch.delete_cf(&self.cf(CF_UNPAID), id.digest());
            batch.delete_cf(&self.cf(CF_UNPAID_DUE), expiry_key(r.since, id));
        }
        Ok(record)
    }

    /// Deal `deal`, whose leaf list is kept, is open on the chain with this
    /// node's commitment: its shards are paid. Returns how many were unpaid.
    pub fn settle(&self, deal: &DealId) -> Result<usize, StoreError> {
        let Some(kept) = self.leaves(deal)? else {
            return Ok(0);
        };
        self.settle_shards(kept.shards.iter().map(|(id, _)| id))
    }

    /// Shards a deal on the chain pays for outside its leaf lists (its
    /// repair data object) are paid. Returns how many were unpaid.
    pub fn settle_shards<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a ContentId>,
    ) -> Result<usize, StoreError> {
        let mut settled = 0;
        for id in ids {
            let _guard = self.lock_id(id);
            let mut batch = WriteBatch::default();
            if let Some(r) = self.drop_unpaid(&mut batch, id)? {
                self.db.write_opt(batch, &synced())?;
                self.uncharge(&r.owner, r.bytes);
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// After the leaf list `dropped` is gone: its shards that are still
    /// here, recorded as paid and named by no other kept list, are unpaid
    /// again from `now` (charged to their first owner, past any limit: the
    /// node took them when a deal paid).
    pub(super) fn unsettle(&self, dropped: &KeptDeal, now: u64) -> Result<(), StoreError> {
        if self.unpaid.is_none() {
            return Ok(());
        }
        let named = self.named_by_kept_lists()?;
        for (id, _) in &dropped.shards {
            if named.contains(id) {
                continue;
            }
            let _guard = self.lock_id(id);
            let Some(meta) = self.meta(id)? else {
                continue;
            };
            if self.unpaid_record(id)?.is_some() {
                continue;
            }
            let r = UnpaidRecord {
                since: now,
                owner: meta.owners.first().copied().unwrap_or(Address([0; 32])),
                bytes: meta.footprint(),
            };
            let mut batch = WriteBatch::default();
            self.unpaid_entries(&mut batch, id, &r);
            self.db.write_opt(batch, &synced())?;
            self.lock_book().add(r.owner, r.bytes);
        }
        Ok(())
    }

    /// Every shard some kept leaf list names. (Its memory is one id per
    /// leaf the node signed for; it is built only when a GC round or a
    /// dropped list needs it.)
    fn named_by_kept_lists(&self) -> Result<HashSet<ContentId>, StoreError> {
        let mut named = HashSet::new();
        for item in self.db.iterator_cf(&self.cf(CF_DEALS), IteratorMode::Start) {
            let (_, value) = item?;
            if let Ok(k) = postcard::from_bytes::<KeptDeal>(&value) {
                named.extend(k.shards.into_iter().map(|(id, _)| id));
            }
        }
        Ok(named)
    }

    /// Removes up to `limit` unpaid shards whose grace ended by `now` and
    /// that no kept leaf list names; one a list names (a receipt was signed
    /// for it, the deal may still open) starts a new grace instead. Returns
    /// how many shards went and how many bytes they freed.
    pub fn collect_unpaid(&self, now: u64, limit: usize) -> Result<(usize, u64), StoreError> {
        let Some(limits) = self.unpaid else {
            return Ok((0, 0));
        };
        let mut due = Vec::new();
        for item in self
            .db
            .iterator_cf(&self.cf(CF_UNPAID_DUE), IteratorMode::Start)
        {
            let (key, _) = item?;
            let Some((since, id)) = parse_expiry_key(&key) else {
                continue;
            };
            if !overdue(since, limits.grace_secs, now) || due.len() >= limit {
                break;
            }
            due.push((since, id));
        }
        if due.is_empty() {
            return Ok((0, 0));
        }
        let named = self.named_by_kept_lists()?;
        let (mut removed, mut freed) = (0, 0);
        for (due_from, id) in due {
            let _guard = self.lock_id(&id);
            let record = self.unpaid_record(&id)?.filter(|r| r.since == due_from);
            let Some(r) = record else {
                // An entry its record no longer names: nothing to collect.
                self.db
                    .delete_cf(&self.cf(CF_UNPAID_DUE), expiry_key(due_from, &id))?;
                continue;
            };
            if named.contains(&id) {
                let mut batch = WriteBatch::default();
                batch.delete_cf(&self.cf(CF_UNPAID_DUE), expiry_key(r.since, &id));
                self.unpaid_entries(&mut batch, &id, &UnpaidRecord { since: now, ..r });
                self.db.write_opt(batch, &synced())?;
                continue;
            }
            if self.remove_locked(&id)? {
                removed += 1;
                freed += r.bytes;
            }
        }
        Ok((removed, freed))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{now, PutOptions};

    const GRACE: u64 = 600;

    fn tracked(dir: &std::path::Path, per_owner: u64, total: u64) -> ShardStore {
        let mut store = ShardStore::open(dir, 1 << 30).unwrap();
        store
            .track_unpaid(UnpaidLimits {
                grace_secs: GRACE,
                per_owner,
                total,
            })
            .unwrap();
        store
    }

    fn put(
        store: &ShardStore,
        seed: u8,
        len: usize,
        owner: Address,
    ) -> Result<ContentId, StoreError> {
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(seed) ^ seed)
            .collect();
        let id = ContentId::of(&data);
        let options = PutOptions {
            expires_at: None,
            owner: Some(owner),
        };
        store.put(id, &data, options).map(|_| id)
    }

    #[test]
    fn unpaid_shards_go_after_their_grace_and_paid_or_named_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = tracked(dir.path(), 1 << 20, 1 << 20);
        let owner = Address([1; 32]);
        let lone = put(&store, 1, 5000, owner).unwrap();
        let named = put(&store, 2, 6000, owner).unwrap();
        let paid = put(&store, 3, 7000, owner).unwrap();
        let held = store.unpaid_usage().bytes;
        assert!(held >= 18_000, "{held}");
        let (named_deal, paid_deal) = (DealId([1; 32]), DealId([2; 32]));
        store
            .keep_leaves(&named_deal, &[(named, 6000)], now())
            .unwrap();
        store
            .keep_leaves(&paid_deal, &[(paid, 7000)], now())
            .unwrap();
        assert_eq!(store.settle(&paid_deal).unwrap(), 1);
        assert_eq!(store.settle(&paid_deal).unwrap(), 0, "settling twice");
        let paid_bytes = store.meta(&paid).unwrap().unwrap().footprint();
        assert_eq!(store.unpaid_usage().bytes, held - paid_bytes);

        // Within the grace nothing goes.
        assert_eq!(store.collect_unpaid(now() + GRACE - 5, 100).unwrap().0, 0);
        let later = now() + GRACE + 1;
        let lone_bytes = store.meta(&lone).unwrap().unwrap().footprint();
        assert_eq!(store.collect_unpaid(later, 100).unwrap(), (1, lone_bytes));
        assert!(store.meta(&lone).unwrap().is_none());
        assert!(
            store.meta(&named).unwrap().is_some(),
            "a signed receipt names it"
        );
        assert!(store.meta(&paid).unwrap().is_some(), "a deal pays for it");

        // The receipt's deal never opened: once its list is dropped the
        // shard goes after a grace from when it was last spared.
        store.forget_leaves(&named_deal).unwrap();
        assert_eq!(store.collect_unpaid(later + 1, 100).unwrap().0, 0);
        assert_eq!(store.collect_unpaid(later + GRACE, 100).unwrap().0, 1);
        assert!(store.meta(&named).unwrap().is_none());

        // The paying deal ended: its shard is unpaid again, from now.
        store.forget_leaves(&paid_deal).unwrap();
        assert_eq!(store.unpaid_usage().bytes, paid_bytes);
        assert_eq!(store.collect_unpaid(now() + GRACE - 5, 100).unwrap().0, 0);
        assert_eq!(store.collect_unpaid(now() + GRACE + 1, 100).unwrap().0, 1);
        assert!(store.meta(&paid).unwrap().is_none());
        assert_eq!(store.unpaid_usage(), UnpaidUsage::default());
        assert_eq!(store.usage().used, 0);
    }

    #[test]
    fn unpaid_bytes_are_capped_per_owner_and_per_node_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, bob, carol) = (Address([1; 32]), Address([2; 32]), Address([3; 32]));
        {
            let store = tracked(dir.path(), 25_000, 35_000);
            put(&store, 1, 10_000, alice).unwrap();
            put(&store, 2, 10_000, alice).unwrap();
            let e = put(&store, 3, 10_000, alice).unwrap_err();
            assert!(
                matches!(e, StoreError::Unpaid(UnpaidRefusal::Owner { owner, .. }) if owner == alice),
                "{e}"
            );
            // Nothing of the refused shard is kept.
            assert_eq!(store.usage().shards, 2);
            put(&store, 4, 10_000, bob).unwrap();
            let e = put(&store, 5, 10_000, carol).unwrap_err();
            assert!(
                matches!(e, StoreError::Unpaid(UnpaidRefusal::Node { .. })),
                "{e}"
            );
            // Another owner of a shard already here takes no new bytes.
            let data: Vec<u8> = (0..10_000usize)
                .map(|i| (i as u8).wrapping_mul(4) ^ 4)
                .collect();
            let o = PutOptions {
                expires_at: None,
                owner: Some(carol),
            };
            assert!(store.put(ContentId::of(&data), &data, o).unwrap().existed);
        }
        let store = tracked(dir.path(), 25_000, 35_000);
        assert_eq!(store.unpaid_usage().owners, 2);
        assert!(store.unpaid_usage().bytes >= 30_000);
        assert!(put(&store, 6, 10_000, alice).is_err());
        // Removing a shard gives its owner room again.
        let id = put(&store, 7, 1, bob).unwrap();
        assert!(store.remove(&id).unwrap());
        assert_eq!(store.collect_unpaid(now() + GRACE, 100).unwrap().0, 3);
        put(&store, 6, 10_000, alice).unwrap();
    }

    #[test]
    fn a_private_store_tracks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 1 << 30).unwrap();
        for seed in 0..5 {
            put(&store, seed, 10_000, Address([1; 32])).unwrap();
        }
        assert_eq!(store.unpaid_usage(), UnpaidUsage::default());
        assert_eq!(store.collect_unpaid(u64::MAX, 100).unwrap(), (0, 0));
        assert_eq!(store.usage().shards, 5);
    }

    #[test]
    fn admission_caps_each_owner_and_the_node() {
        let l = UnpaidLimits {
            grace_secs: 10,
            per_owner: 100,
            total: 150,
        };
        let a = Address([1; 32]);
        assert!(admit(&l, a, 0, 0, 100).is_ok());
        assert!(matches!(
            admit(&l, a, 1, 1, 100),
            Err(UnpaidRefusal::Owner { .. })
        ));
        assert!(matches!(
            admit(&l, a, 0, 100, 51),
            Err(UnpaidRefusal::Node { .. })
        ));
        assert!(admit(&l, a, u64::MAX, 0, 1).is_err());
        assert!(!overdue(100, 10, 109));
        assert!(overdue(100, 10, 110));
        assert!(overdue(u64::MAX, 10, u64::MAX));
    }
}
