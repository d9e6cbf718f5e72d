//! Reading a paged `/chain/...` listing to its end.
//!
//! The registry, the open deals and the deals wanting repair are answered a
//! page at a time ([`MAX_LIST`](super::api::MAX_LIST) entries), each page
//! naming where the next one starts. A validator is as hostile as any peer,
//! so a client checks every page continues strictly after the last (keys in
//! increasing order, `next` equal to the page's last key): a validator can
//! then neither loop the client nor show it one entry twice, and at most
//! [`MAX_PAGES`] pages are read.

use cairn_protocol::chain::Address;

use super::api::{DealList, NodeList, RepairList};

/// Most pages one listing is read for: a million entries.
pub const MAX_PAGES: usize = 1000;

/// A listing answered in pages, keyed in increasing order.
pub trait Paged: serde::de::DeserializeOwned {
    type Key: Ord + Clone + std::fmt::Display;
    /// The keys of this page's entries, in the order given.
    fn keys(&self) -> Vec<Self::Key>;
    /// Where the next page starts; `None` on the last.
    fn next(&self) -> Option<Self::Key>;
    /// Adds `page`'s entries (and its totals) to these.
    fn extend(&mut self, page: Self);
    /// The listing as one page: no `next`.
    fn finish(self) -> Self;
}

/// Why a page broke the rules above.
pub fn check_page<P: Paged>(page: &P, after: Option<&P::Key>) -> Result<(), &'static str> {
    let mut last = after.cloned();
    for key in page.keys() {
        if last.as_ref().is_some_and(|l| key <= *l) {
            return Err("page out of order");
        }
        last = Some(key);
    }
    match page.next() {
        None => Ok(()),
        Some(next) if last.as_ref() != after && Some(&next) == last.as_ref() => Ok(()),
        Some(_) => Err("page's next is not its last entry"),
    }
}

impl Paged for NodeList {
    type Key = Address;
    fn keys(&self) -> Vec<Address> {
        self.nodes.iter().map(|n| n.address).collect()
    }
    fn next(&self) -> Option<Address> {
        self.next
    }
    fn extend(&mut self, page: Self) {
        self.total = page.total;
        self.nodes.extend(page.nodes);
    }
    fn finish(mut self) -> Self {
        self.next = None;
        self
    }
}

impl Paged for DealList {
    type Key = String;
    fn keys(&self) -> Vec<String> {
        self.deals.iter().map(|d| d.id.clone()).collect()
    }
    fn next(&self) -> Option<String> {
        self.next.clone()
    }
    fn extend(&mut self, page: Self) {
        self.total = page.total;
        self.deals.extend(page.deals);
    }
    fn finish(mut self) -> Self {
        self.next = None;
        self
    }
}

impl Paged for RepairList {
    type Key = String;
    fn keys(&self) -> Vec<String> {
        self.deals.clone()
    }
    fn next(&self) -> Option<String> {
        self.next.clone()
    }
    fn extend(&mut self, page: Self) {
        self.total = page.total;
        self.height = page.height;
        self.deals.extend(page.deals);
    }
    fn finish(mut self) -> Self {
        self.next = None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(deals: &[&str], next: Option<&str>) -> RepairList {
        RepairList {
            height: 1,
            total: 9,
            deals: deals.iter().map(|s| s.to_string()).collect(),
            next: next.map(str::to_string),
        }
    }

    #[test]
    fn pages_must_move_forward_in_order() {
        let b = "b".to_string();
        assert_eq!(check_page(&list(&["a", "b"], Some("b")), None), Ok(()));
        assert_eq!(check_page(&list(&["c"], None), Some(&b)), Ok(()));
        assert_eq!(check_page(&list(&[], None), Some(&b)), Ok(()));
        // Out of order, repeating the last page, a next that skips ahead,
        // and an empty page that claims more.
        assert!(check_page(&list(&["b", "a"], None), None).is_err());
        assert!(check_page(&list(&["b"], None), Some(&b)).is_err());
        assert!(check_page(&list(&["c"], Some("z")), Some(&b)).is_err());
        assert!(check_page(&list(&[], Some("b")), Some(&b)).is_err());
    }
}
