//! A share of a run: `--shard I/N` makes one of N load generators send the I-th
//! share (counted from 0) of what the options describe, so that N pods of an Indexed
//! Job, each given the same total, send that total between them.
//!
//! ## What a share is
//!
//! - An open loop's rate: `rate / N` each.
//! - A closed loop's concurrency and a run's request count: split so the shares add
//!   up to the total exactly, the first `total % N` shards taking one more.
//! - A traffic file's requests: every N-th, starting at the I-th, in the file's order
//!   (for recorded files, the order of their time offsets), each keeping its own
//!   offset, and the file's period when it cycles.
//!
//! ## Why every N-th request and not contiguous chunks
//!
//! A recorded replay plays each request at its offset in the file. Interleaved, the N
//! shards together send every request at its recorded time, and each shard's load is
//! spread over the whole recording, as thin as the total is divided. Contiguous chunks
//! would either keep the offsets, and then the shards take turns (one sends while the
//! others wait for their chunk's time, so the total never runs in parallel), or start
//! every chunk at zero, and then the recording plays N times compressed. At a fixed
//! rate, interleaving is also what one generator would do: its request `i` goes to
//! shard `i % N` at nearly the same time.
//!
//! The built-in mix is not split: every shard sends the whole round robin at its share
//! of the rate, so each shard's per-route report (and a per-route gate) means what it
//! means for the whole run.

use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count` (counted from 0); [`Shard::WHOLE`] is the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// What is wrong with a shard's `I/N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("expected I/N (shard I of N, counted from 0, like 0/4), got {0:?}")]
    Form(String),
    #[error("{0:?} is not a whole number")]
    Number(String),
    #[error("N must be at least 1")]
    NoShards,
    #[error("I must be below N (shards are counted from 0: 0/{count} to {last}/{count}), got {index}/{count}", last = count - 1)]
    Beyond { index: u32, count: u32 },
}

// === impl Shard ===

impl Shard {
    /// The whole run, unsplit.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::NoShards);
        }
        if index >= count {
            return Err(ShardError::Beyond { index, count });
        }
        Ok(Shard { index, count })
    }

    /// `I`, counted from 0.
    pub fn index(self) -> u32 {
        self.index
    }

    /// `N`.
    pub fn count(self) -> u32 {
        self.count
    }

    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// This shard's share of an open loop's rate.
    pub fn rate(self, total: f64) -> f64 {
        total / f64::from(self.count)
    }

    /// This shard's share of `total` (clients, requests): the shares of the N shards
    /// add up to `total`, the first `total % N` taking one more.
    pub fn share(self, total: u64) -> u64 {
        let (count, index) = (u64::from(self.count), u64::from(self.index));
        total / count + u64::from(index < total % count)
    }

    /// Whether the request at `position` in a file's order is this shard's.
    pub fn takes(self, position: u64) -> bool {
        position % u64::from(self.count) == u64::from(self.index)
    }

    /// This shard's requests of a file: every N-th from the I-th, in order.
    pub fn pick<T: Clone>(self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .zip(0u64..)
            .filter(|&(_, position)| self.takes(position))
            .map(|(item, _)| item.clone())
            .collect()
    }
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::WHOLE
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| ShardError::Form(text.to_owned()))?;
        let number = |part: &str| {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ShardError::Number(part.to_owned()));
            }
            part.parse::<u32>()
                .map_err(|_| ShardError::Number(part.to_owned()))
        };
        Shard::new(number(index)?, number(count)?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_as_index_over_count_from_zero() {
        assert_eq!("0/4".parse(), Ok(Shard { index: 0, count: 4 }));
        assert_eq!(" 3 / 4 ".parse(), Ok(Shard { index: 3, count: 4 }));
        assert_eq!("0/1".parse(), Ok(Shard::WHOLE));
        assert_eq!(
            "4/4".parse::<Shard>(),
            Err(ShardError::Beyond { index: 4, count: 4 })
        );
        assert_eq!("0/0".parse::<Shard>(), Err(ShardError::NoShards));
        assert_eq!("3".parse::<Shard>(), Err(ShardError::Form("3".into())));
        assert_eq!(
            "-1/4".parse::<Shard>(),
            Err(ShardError::Number("-1".into()))
        );
        assert_eq!("a/4".parse::<Shard>(), Err(ShardError::Number("a".into())));
        assert_eq!(
            "1/".parse::<Shard>(),
            Err(ShardError::Number(String::new()))
        );
        assert_eq!(
            "1/99999999999".parse::<Shard>(),
            Err(ShardError::Number("99999999999".into()))
        );
        assert_eq!(Shard { index: 2, count: 8 }.to_string(), "2/8");
        let message = "4/4".parse::<Shard>().err().map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some("I must be below N (shards are counted from 0: 0/4 to 3/4), got 4/4")
        );
    }

    fn all(count: u32) -> Vec<Shard> {
        (0..count)
            .map(|index| Shard::new(index, count).expect("shard"))
            .collect()
    }

    #[test]
    fn rates_are_divided_evenly() {
        for shard in all(4) {
            assert_eq!(shard.rate(1000.0), 250.0);
        }
        assert_eq!(Shard::WHOLE.rate(333.0), 333.0);
        let total: f64 = all(3).iter().map(|s| s.rate(100.0)).sum();
        assert!((total - 100.0).abs() < 1e-9, "{total}");
    }

    #[test]
    fn counts_split_with_the_remainder_on_the_first_shards() {
        let shares =
            |total, count| -> Vec<u64> { all(count).iter().map(|s| s.share(total)).collect() };
        assert_eq!(shares(10, 4), [3, 3, 2, 2]);
        assert_eq!(shares(8, 4), [2, 2, 2, 2]);
        assert_eq!(shares(3, 4), [1, 1, 1, 0]);
        assert_eq!(shares(7, 1), [7]);
        for (total, count) in [(1000, 7), (1, 3), (0, 2), (65_535, 16)] {
            assert_eq!(shares(total, count).iter().sum::<u64>(), total);
        }
    }

    #[test]
    fn files_are_dealt_every_nth_line_keeping_their_order() {
        let lines: Vec<u32> = (0..10).collect();
        let dealt: Vec<Vec<u32>> = all(4).iter().map(|s| s.pick(&lines)).collect();
        assert_eq!(
            dealt,
            [vec![0, 4, 8], vec![1, 5, 9], vec![2, 6], vec![3, 7]]
        );
        assert_eq!(Shard::WHOLE.pick(&lines), lines);
        // Every line once, over all shards.
        let mut union: Vec<u32> = dealt.concat();
        union.sort_unstable();
        assert_eq!(union, lines);
        assert!(Shard::new(3, 4).expect("shard").pick(&[1, 2]).is_empty());
    }
}
