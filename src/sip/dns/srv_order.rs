//! The order in which SRV targets are tried (RFC 2782, "Usage rules"): lowest priority
//! first; among equal priorities, a weighted random draw, repeated over what is left, so a
//! target of weight 30 is first three times as often as one of weight 10. Zero-weight
//! records come first in the list the draw runs over, so they are picked only when the draw
//! lands on zero (rarely, when others weigh something). The randomness is injected: tests
//! and the unit tests below fix it.
#![forbid(unsafe_code)]

/// One SRV record's place in the order.
pub trait Weighted {
    /// The record's priority (lower first).
    fn priority(&self) -> u16;
    /// The record's weight among records of its priority.
    fn weight(&self) -> u16;
}

/// `records` in the order to try them; `random` gives uniformly distributed 64-bit values.
pub fn order<T: Weighted + Clone>(records: &[T], random: &mut dyn FnMut() -> u64) -> Vec<T> {
    let mut sorted: Vec<&T> = records.iter().collect();
    // Stable: records of one priority keep the answer's order, zero weights moved first.
    sorted.sort_by_key(|r| (r.priority(), r.weight() != 0));
    let mut out = Vec::with_capacity(records.len());
    let mut start = 0;
    while start < sorted.len() {
        let priority = sorted[start].priority();
        let end = start
            + sorted[start..]
                .iter()
                .take_while(|r| r.priority() == priority)
                .count();
        let mut group: Vec<&T> = sorted[start..end].to_vec();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|r| u64::from(r.weight())).sum();
            // A number in [0, total], each value as likely (RFC 2782 draws 0..=sum).
            let pick = if total == 0 {
                0
            } else {
                random() % (total + 1)
            };
            let mut running = 0u64;
            let index = group
                .iter()
                .position(|r| {
                    running += u64::from(r.weight());
                    running >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(index).clone());
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Srv(u16, u16, &'static str);

    impl Weighted for Srv {
        fn priority(&self) -> u16 {
            self.0
        }
        fn weight(&self) -> u16 {
            self.1
        }
    }

    fn names(v: &[Srv]) -> Vec<&'static str> {
        v.iter().map(|s| s.2).collect()
    }

    #[test]
    fn priorities_first_then_weights() {
        let records = [
            Srv(20, 0, "c"),
            Srv(10, 60, "a"),
            Srv(10, 20, "b"),
            Srv(30, 0, "d"),
        ];
        // A draw of 0 takes the first non-zero weight of the group: a, then b.
        let mut zero = || 0u64;
        assert_eq!(names(&order(&records, &mut zero)), ["a", "b", "c", "d"]);
        // A draw of 61 (of 0..=80) passes a's 60: b first.
        let mut draws = [61u64, 0].into_iter();
        let mut fixed = move || draws.next().unwrap_or(0);
        assert_eq!(names(&order(&records, &mut fixed)), ["b", "a", "c", "d"]);
    }

    #[test]
    fn weights_share_the_first_place() {
        let records = [Srv(1, 30, "heavy"), Srv(1, 10, "light")];
        let mut state = 0x1234_5678_u64;
        let mut random = move || {
            // SplitMix64, as the engine's generator.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let heavy_first = (0..4000)
            .filter(|_| order(&records, &mut random)[0].2 == "heavy")
            .count();
        // Expected 3000 (31 of the 41 values 0..=40 land on heavy: 3024); far off means a
        // broken draw.
        assert!((2850..3200).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn zero_weights_come_first_within_their_priority() {
        let records = [Srv(5, 10, "w"), Srv(5, 0, "z")];
        let mut zero = || 0u64;
        assert_eq!(names(&order(&records, &mut zero)), ["z", "w"]);
    }
}
