//! Counting a payload's transform overruns in a row ([`MAX_OVERRUNS`]).

/// How many times in a row one payload's transform may run past its time
/// limit before the payload is rejected (dead-lettered): once may be a busy
/// machine (a debug build on 2 cores during a broker restart took a 62,664-
/// cell CSV past 10 s, and the file, rejected at once, was lost for the
/// night); three times is the payload.
pub const MAX_OVERRUNS: u32 = 3;

/// The payload whose transform last ran past its limit, and how many times
/// in a row.
#[derive(Debug, Default)]
pub(super) struct Overruns {
    sha256: Option<String>,
    in_a_row: u32,
}

impl Overruns {
    /// Counts one more overrun of the payload `sha256` (a new payload starts
    /// at one) and returns the count.
    pub(super) fn count(&mut self, sha256: &str) -> u32 {
        if self.sha256.as_deref() == Some(sha256) {
            self.in_a_row += 1;
        } else {
            self.sha256 = Some(sha256.to_string());
            self.in_a_row = 1;
        }
        self.in_a_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overruns_count_in_a_row_per_payload_and_start_over_for_another() {
        let mut o = Overruns::default();
        assert_eq!((o.count("a"), o.count("a"), o.count("a")), (1, 2, 3));
        assert_eq!(o.count("b"), 1, "another payload starts over");
        assert_eq!(o.count("a"), 1);
    }
}
