//! Deal leaf lists: for every receipt the node signed, the shards (ids and
//! sizes, in order) its commitment covers, so that its proof worker can
//! answer challenges long after the upload.
//!
//! The chain keeps only a commitment's root, leaf count and byte total; the
//! node alone knows which shard is leaf `i`. A list is written, synced,
//! before the receipt leaves the node: a node that signed cannot have
//! forgotten what it signed for. Lists of deals that never opened (or have
//! ended) are dropped by the proof worker ([`ShardStore::forget_leaves`]).

use cairn_protocol::chain::DealId;
use cairn_protocol::ContentId;
use rocksdb::{IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use super::{synced, ShardStore, StoreError, CF_DEALS};

/// A kept leaf list's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptDeal {
    pub deal: DealId,
    /// Unix seconds when the receipt was signed.
    pub signed_at: u64,
    pub shards: Vec<(ContentId, u64)>,
}

impl ShardStore {
    /// Keeps the leaf list of `deal` (durably) before its receipt is sent.
    pub fn keep_leaves(
        &self,
        deal: &DealId,
        shards: &[(ContentId, u64)],
        signed_at: u64,
    ) -> Result<(), StoreError> {
        let record = KeptDeal {
            deal: *deal,
            signed_at,
            shards: shards.to_vec(),
        };
        let bytes = postcard::to_stdvec(&record)
            .map_err(|e| StoreError::LeafList(format!("encoding: {e}")))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(&self.cf(CF_DEALS), deal.0, bytes);
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    /// The leaf list kept for `deal`, if any.
    pub fn leaves(&self, deal: &DealId) -> Result<Option<KeptDeal>, StoreError> {
        match self.db.get_pinned_cf(&self.cf(CF_DEALS), deal.0)? {
            None => Ok(None),
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| StoreError::LeafList(format!("{deal}: {e}"))),
        }
    }

    /// Drops the leaf list of a deal that ended or never opened; on a node
    /// of a chain, the shards it named that no other list names are
    /// unpaid again from now ([`super::unpaid`]).
    pub fn forget_leaves(&self, deal: &DealId) -> Result<(), StoreError> {
        let dropped = self.leaves(deal)?;
        self.db.delete_cf(&self.cf(CF_DEALS), deal.0)?;
        if let Some(dropped) = dropped {
            self.unsettle(&dropped, super::now())?;
        }
        Ok(())
    }

    /// Every kept list's deal and signing time.
    pub fn kept_deals(&self) -> Result<Vec<(DealId, u64)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(&self.cf(CF_DEALS), IteratorMode::Start) {
            let (_, value) = item?;
            if let Ok(k) = postcard::from_bytes::<KeptDeal>(&value) {
                out.push((k.deal, k.signed_at));
            }
        }
        Ok(out)
    }

    /// All of shard `id`'s bytes, unverified (the caller hashes them), or
    /// `None` if the node does not have it.
    pub fn read_all(&self, id: &ContentId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(meta) = self.meta(id)? else {
            return Ok(None);
        };
        let mut data = vec![0u8; meta.size as usize];
        match self.read_shard_at(id, &meta, &mut data, 0) {
            Ok(()) => Ok(Some(data)),
            Err(StoreError::NotFound(_) | StoreError::Corrupt { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn leaf_lists_survive_a_reopen_and_can_be_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let deal = DealId([3; 32]);
        let shards = vec![(ContentId::of(b"a"), 1), (ContentId::of(b"bb"), 2)];
        {
            let store = ShardStore::open(dir.path(), 1 << 20).unwrap();
            store.keep_leaves(&deal, &shards, 77).unwrap();
        }
        let store = ShardStore::open(dir.path(), 1 << 20).unwrap();
        let kept = store.leaves(&deal).unwrap().unwrap();
        assert_eq!((kept.shards, kept.signed_at), (shards, 77));
        assert_eq!(store.kept_deals().unwrap(), vec![(deal, 77)]);
        assert_eq!(store.leaves(&DealId([4; 32])).unwrap(), None);
        store.forget_leaves(&deal).unwrap();
        assert!(store.kept_deals().unwrap().is_empty());
    }

    #[test]
    fn read_all_returns_the_bytes_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), 1 << 20).unwrap();
        let data = vec![9u8; 5000];
        let id = ContentId::of(&data);
        store.put(id, &data, Default::default()).unwrap();
        assert_eq!(store.read_all(&id).unwrap(), Some(data));
        std::fs::remove_file(store.shard_path(&id)).unwrap();
        assert_eq!(store.read_all(&id).unwrap(), None);
        assert_eq!(store.read_all(&ContentId::of(b"x")).unwrap(), None);
    }
}
