//! Following truncated answers (AP's `isTruncated`) at once, within a cap.

/// Truncated answers followed at once in a row (AP's `isTruncated`),
/// capped at [`MAX_TRUNCATED_FOLLOWS`]; once capped, none is followed
/// until a whole answer comes.
#[derive(Debug, Default)]
pub(super) struct TruncatedFollows {
    in_a_row: u32,
    capped: bool,
}

impl TruncatedFollows {
    /// Whether to poll again at once after an accepted answer that was (or
    /// was not) truncated: yes for a truncated one, up to
    /// [`MAX_TRUNCATED_FOLLOWS`] in a row; after that, no until an answer
    /// is whole, so a source that always says "more" is polled at the
    /// feed's cadence.
    pub(super) fn follow(&mut self, feed_id: &str, truncated: bool) -> bool {
        if !truncated {
            *self = TruncatedFollows::default();
            return false;
        }
        if self.capped {
            return false;
        }
        if self.in_a_row < MAX_TRUNCATED_FOLLOWS {
            self.in_a_row += 1;
            return true;
        }
        self.capped = true;
        tracing::warn!(
            "feed {feed_id}: {} truncated answers in a row; the rest waits for the feed's cadence until an answer is whole",
            self.in_a_row
        );
        false
    }
}

/// How many truncated answers in a row a feed follows at once before it
/// waits for its cadence again: a source that always says "more" must not
/// hold the feed's task in a tight loop.
pub const MAX_TRUNCATED_FOLLOWS: u32 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_answers_are_followed_at_once_up_to_the_cap_then_wait_until_one_is_whole() {
        let mut follows = TruncatedFollows::default();
        assert!(!follows.follow("f", false), "a whole answer waits");
        for n in 1..=MAX_TRUNCATED_FOLLOWS {
            assert!(follows.follow("f", true), "truncated answer {n}");
        }
        for n in 0..3 {
            assert!(
                !follows.follow("f", true),
                "past the cap, truncated answers wait for the cadence ({n})"
            );
        }
        assert!(!follows.follow("f", false), "a whole answer");
        for n in 1..=MAX_TRUNCATED_FOLLOWS {
            assert!(
                follows.follow("f", true),
                "after it, the full count again: {n}"
            );
        }
        assert!(!follows.follow("f", true));
    }
}
