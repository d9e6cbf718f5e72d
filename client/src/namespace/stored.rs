//! What a commit stored: where every shard and copy went (the deal's
//! placement), and each file object's code and segments (the deal's
//! public repair data, so strangers repair a namespace's objects as they
//! do a single file's: docs/repair.md).

use cairn_protocol::ContentId;

use crate::upload::{PlacedShard, PutReport};

/// A code and segments: one stored file object's, or all of a commit's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segments {
    pub k: u16,
    pub m: u16,
    /// Each segment's shards `(id, size)` in index order.
    pub shards: Vec<Vec<(ContentId, u64)>>,
}

/// Objects stored for one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Every shard and replicated copy, with its node.
    pub placement: Vec<PlacedShard>,
    objects: Vec<Segments>,
}

impl Stored {
    /// Records an uploaded object.
    pub fn add(&mut self, report: &PutReport) {
        self.placement.extend(report.placement.iter().copied());
        self.objects.push(Segments {
            k: report.k as u16,
            m: report.n.saturating_sub(report.k) as u16,
            shards: report.segment_shards.clone(),
        });
    }

    /// Records replicated copies (commit records): no segments.
    pub fn add_copies(&mut self, copies: impl IntoIterator<Item = PlacedShard>) {
        self.placement.extend(copies);
    }

    pub fn extend(&mut self, other: Stored) {
        self.placement.extend(other.placement);
        self.objects.extend(other.objects);
    }

    /// The repair data's code and segments for a deal over all of this:
    /// every object's segments, object after object in the order they were
    /// stored. `None` without a file object, or if the objects do not share
    /// one code (repair data has one `k` and `m`).
    pub fn segments(&self) -> Option<Segments> {
        let first = self.objects.first()?;
        if self
            .objects
            .iter()
            .any(|o| (o.k, o.m) != (first.k, first.m))
        {
            return None;
        }
        let shards = self
            .objects
            .iter()
            .flat_map(|o| o.shards.iter().cloned())
            .collect();
        Some(Segments {
            k: first.k,
            m: first.m,
            shards,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(k: usize, n: usize, seed: u8, segments: usize) -> PutReport {
        let shards: Vec<Vec<(ContentId, u64)>> = (0..segments)
            .map(|g| {
                (0..n)
                    .map(|j| (ContentId::of(&[seed, g as u8, j as u8]), 100))
                    .collect()
            })
            .collect();
        PutReport {
            capability: cairn_protocol::Capability::new(
                ContentId::of(&[seed]),
                cairn_protocol::FileKey::from_bytes([seed; 32]),
            ),
            size_bytes: 0,
            k,
            n,
            segments: segments as u64,
            shards_stored: 0,
            shards_resumed: 0,
            bytes_sent: 0,
            hedged: 0,
            replaced: 0,
            manifest_copies: 0,
            seconds: 0.0,
            placement: Vec::new(),
            segment_shards: shards,
        }
    }

    #[test]
    fn objects_of_one_code_give_their_segments_in_order() {
        let mut stored = Stored::default();
        assert_eq!(stored.segments(), None);
        stored.add_copies([]);
        assert_eq!(stored.segments(), None);
        let (a, b) = (report(2, 4, 1, 2), report(2, 4, 2, 3));
        stored.add(&a);
        let mut later = Stored::default();
        later.add(&b);
        stored.extend(later);
        let Segments { k, m, shards } = stored.segments().unwrap();
        assert_eq!((k, m), (2, 2));
        assert_eq!(shards.len(), 5);
        assert_eq!(shards[..2], a.segment_shards[..]);
        assert_eq!(shards[2..], b.segment_shards[..]);
        // Another code in the same commit: no repair data.
        stored.add(&report(3, 5, 3, 1));
        assert_eq!(stored.segments(), None);
    }
}
