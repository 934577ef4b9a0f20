//! Per-object exponential backoff for transient errors; reset when a reconcile succeeds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// First retry delay.
const BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
const MAX: Duration = Duration::from_secs(300);

/// Consecutive failures per object key.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut map = self.failures.lock().expect("backoff lock is never poisoned: no panics while held");
        let n = map.entry(key.to_owned()).or_insert(0);
        let delay = BASE.saturating_mul(2u32.saturating_pow(*n)).min(MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset(&self, key: &str) {
        self.failures.lock().expect("backoff lock is never poisoned: no panics while held").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let b = Backoff::default();
        let delays: Vec<_> = (0..12).map(|_| b.next_delay("ns/a").as_secs()).collect();
        assert_eq!(&delays[..5], &[1, 2, 4, 8, 16]);
        assert_eq!(*delays.last().unwrap(), 300);
        assert_eq!(b.next_delay("ns/b").as_secs(), 1, "keys are independent");
        b.reset("ns/a");
        assert_eq!(b.next_delay("ns/a").as_secs(), 1);
    }
}
