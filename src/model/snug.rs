//! Vectors that grow by an eighth, not by doubling: for the many small-to-middling lists a
//! server keeps one of per (watcher, resource) pair (the members of a shared subscription,
//! the list dialogs holding a resource). Doubling leaves a quarter of such a vector empty on
//! average, and up to half; an eighth costs at most an eighth, for a few more copies while
//! it grows (each growth still copies at least four elements' worth, so pushing n elements
//! costs O(n) copies per eighth of growth: O(n) amortized per push at worst for huge lists,
//! which these are not).
#![forbid(unsafe_code)]

/// Pushes `item`, growing `v` by an eighth of its length (at least 4) when it is full.
pub(crate) fn push_snug<T>(v: &mut Vec<T>, item: T) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(4));
    }
    v.push(item);
}

/// Gives back what `v` holds beyond an eighth more than its length (after removals).
pub(crate) fn trim_snug<T>(v: &mut Vec<T>) {
    if v.capacity() > v.len() + v.len() / 8 + 4 {
        v.shrink_to(v.len() + v.len() / 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_an_eighth_and_gives_back_what_removals_leave() {
        let mut v = Vec::new();
        for i in 0..1000 {
            push_snug(&mut v, i);
            assert!(
                v.capacity() <= v.len() + v.len() / 8 + 4,
                "{} {}",
                v.len(),
                v.capacity()
            );
        }
        v.truncate(100);
        trim_snug(&mut v);
        assert!(v.capacity() <= 100 + 100 / 8 + 4);
        assert_eq!(v[99], 99);
    }
}
