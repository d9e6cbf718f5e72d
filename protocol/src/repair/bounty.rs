//! What a repair is paid: the two shares of a claim's bounty, as the chain
//! computes them (and a simulator or a repairer estimating its reward).
//!
//! * From the deal: its withheld pay (what missed and lost periods did not
//!   pay), pro rata to the bytes the claim moves among the deal's lost bytes
//!   not yet moved, so the claim that moves the last of them takes the rest.
//! * From the repair pool: the stake earmarked for the commitment the bytes
//!   are moved from (its node's slashed stake pro rata to the commitment's
//!   bytes, plus the pool's part of failed repairs onto it), pro rata to the
//!   bytes moved among its bytes not yet moved.
//!
//! Both round down; both are capped by what they share.

/// The deal's part: `withheld × moved / unrepaired`, at most `withheld`.
pub fn from_deal(withheld: u64, moved: u64, unrepaired: u64) -> u64 {
    let share = u128::from(withheld) * u128::from(moved) / u128::from(unrepaired.max(1));
    share.min(u128::from(withheld)) as u64
}

/// The pool's part for one source commitment: `earmark × moved / left`
/// (`left`: its bytes not yet moved), at most `earmark`.
pub fn from_pool(earmark: u64, moved: u64, left: u64) -> u64 {
    let share = u128::from(earmark) * u128::from(moved) / u128::from(left.max(1));
    share.min(u128::from(earmark)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_pro_rata_round_down_and_the_last_takes_the_rest() {
        assert_eq!(from_deal(1200, 3048, 3048), 1200);
        assert_eq!(from_deal(1000, 1, 3), 333);
        // Two claims over the same lost bytes never take more than there is.
        let first = from_deal(1000, 1, 3);
        assert_eq!(from_deal(1000 - first, 2, 2), 667);
        assert_eq!(from_pool(5000, 2048, 3048), 3359);
        assert_eq!(from_pool(5000 - 3359, 1000, 1000), 1641);
        assert_eq!(from_deal(u64::MAX, u64::MAX, 1), u64::MAX);
        assert_eq!(from_pool(7, 5, 0), 7);
        assert_eq!(from_deal(0, 10, 10), 0);
    }
}
