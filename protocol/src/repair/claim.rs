//! Building a `ClaimRepair` body: every moved shard with its path in the
//! deal's repair tree and in the commitment it is moved from.

use crate::chain::{merkle, ChainState, Deal, DealId, MovedShard, NewHolder, RepairClaim, Sig};
use crate::chain::{Address, DealRepair};
use crate::id::ContentId;

use super::data::RepairData;
use super::plan::RepairError;

/// The leaf list of commitment `ci` of a deal: from the repair data for a
/// commitment the deal opened with, from the chain's moved records (in
/// leaf order) for one repair added.
pub fn leaves_of(
    deal: &Deal,
    repair: &DealRepair,
    data: &RepairData,
    ci: u32,
) -> Option<Vec<(ContentId, u64)>> {
    if let Some(leaves) = data.commitments.get(ci as usize) {
        return Some(leaves.clone());
    }
    deal.commitments.get(ci as usize)?;
    let mut moved: Vec<_> = repair.moved.iter().filter(|m| m.commitment == ci).collect();
    moved.sort_by_key(|m| m.leaf);
    moved
        .iter()
        .map(|m| data.shard(m.segment, m.index))
        .collect()
}

/// The claim that moves the shards of `columns` (see
/// [`super::plan::columns`]): column `h` goes to `holders[h]`. Receipts are
/// left zero: each holder signs
/// [`crate::chain::repair_receipt_message`] over
/// `claim.commitment(h)` once it stored its shards (`claim.leaves_of(h)`),
/// and the repairer puts the signatures in.
pub fn prepare(
    state: &ChainState,
    deal: &DealId,
    data: &RepairData,
    columns: &[Vec<(u32, u16)>],
    holders: &[Address],
) -> Result<RepairClaim, RepairError> {
    let d = state.deal(deal).ok_or(RepairError::UnknownDeal(*deal))?;
    data.check_against(&d)?;
    let repair = d.repair.as_ref().ok_or(RepairError::NoRepairData(*deal))?;
    let tree = data.tree_leaves();
    let mut shards = Vec::new();
    for (h, column) in columns.iter().enumerate().take(holders.len()) {
        for &(segment, index) in column {
            let missing = RepairError::NoSuchShard { segment, index };
            let (id, size) = data.shard(segment, index).ok_or(missing.clone())?;
            let (from, leaf) = match repair.moved_to(segment, index) {
                Some(m) => (m.commitment, m.leaf),
                None => data.holder(segment, index).ok_or(missing.clone())?,
            };
            let leaves = leaves_of(&d, repair, data, from).ok_or(missing.clone())?;
            let from_path = merkle::prove(&leaves, leaf as usize).ok_or(missing.clone())?;
            let at = segment as usize * data.n() + usize::from(index);
            let repair_path = merkle::prove(&tree, at).ok_or(missing)?;
            shards.push(MovedShard {
                segment,
                index,
                id,
                size,
                repair_path,
                from,
                leaf,
                from_path,
                to: h as u16,
            });
        }
    }
    Ok(RepairClaim {
        deal: *deal,
        shards,
        holders: holders
            .iter()
            .take(columns.len())
            .map(|node| NewHolder {
                node: *node,
                receipt: Sig([0; 64]),
            })
            .collect(),
    })
}
