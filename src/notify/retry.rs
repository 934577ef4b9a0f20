//! When a delivery attempt counts as delivered, is tried again (and after how long), or is
//! given up (pure).

use std::time::{Duration, SystemTime};

/// How one attempt went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered with `status`; `retry_after` from its `Retry-After` header.
    Answered {
        /// HTTP status code.
        status: u16,
        /// How long the receiver asked to wait (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// No answer within the attempt's deadline.
    TimedOut,
    /// No connection, or the connection broke (DNS, refused, reset, TLS).
    Unreachable,
}

impl Outcome {
    /// Whether the receiver took it (2xx).
    fn delivered(&self) -> bool {
        matches!(self, Self::Answered { status: 200..=299, .. })
    }

    /// Whether another attempt may go differently: the receiver was not reached, was
    /// overloaded or failed (408, 429, 5xx). Other answers (3xx, 4xx: a wrong URL, a revoked
    /// token, a payload refused) would be refused again.
    fn retryable(&self) -> bool {
        match self {
            Self::Answered { status, .. } => matches!(status, 408 | 429 | 500..=599),
            Self::TimedOut | Self::Unreachable => true,
        }
    }
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Done: the receiver took it.
    Delivered,
    /// Try again after this long.
    RetryAfter(Duration),
    /// Done: it failed for good, or too many attempts failed.
    GiveUp,
}

/// Attempts per notification and the waits between them: exponential, capped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait after the first failed attempt; it doubles after each further one.
    pub first_delay: Duration,
    /// The longest wait (also caps a receiver's `Retry-After`).
    pub max_delay: Duration,
}

impl Default for Policy {
    /// 5 attempts, waiting 1 s, 2 s, 4 s, 8 s between them: a receiver restarting (a rollout,
    /// a blip) is given about 15 s, and a dead one holds its queue no longer than that per
    /// notification (plus the attempts' deadlines).
    fn default() -> Self {
        Self { attempts: 5, first_delay: Duration::from_secs(1), max_delay: Duration::from_secs(30) }
    }
}

impl Policy {
    /// What follows attempt number `attempt` (1 for the first) that ended with `outcome`.
    pub fn next(&self, attempt: u32, outcome: &Outcome) -> Next {
        if outcome.delivered() {
            return Next::Delivered;
        }
        if !outcome.retryable() || attempt >= self.attempts {
            return Next::GiveUp;
        }
        let doublings = attempt.saturating_sub(1).min(31);
        let backoff = self.first_delay.saturating_mul(1 << doublings);
        // A receiver that says how long to wait is heeded, within the cap.
        let asked = match outcome {
            Outcome::Answered { retry_after: Some(after), .. } => *after,
            _ => Duration::ZERO,
        };
        Next::RetryAfter(backoff.max(asked).min(self.max_delay))
    }
}

/// How long a `Retry-After` header asks to wait at `now`: seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`; a date already past asks for no wait).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> Outcome {
        Outcome::Answered { status, retry_after: None }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_2xx_is_delivered_whatever_the_attempt() {
        let p = Policy::default();
        for code in [200, 201, 202, 204] {
            assert_eq!(p.next(1, &status(code)), Next::Delivered);
            assert_eq!(p.next(5, &status(code)), Next::Delivered);
        }
    }

    #[test]
    fn failures_a_retry_can_cure_back_off_exponentially_then_give_up() {
        let p = Policy::default();
        for outcome in [Outcome::Unreachable, Outcome::TimedOut, status(500), status(503), status(429), status(408)] {
            let waits: Vec<Next> = (1..=5).map(|attempt| p.next(attempt, &outcome)).collect();
            assert_eq!(
                waits,
                [
                    Next::RetryAfter(S(1)),
                    Next::RetryAfter(S(2)),
                    Next::RetryAfter(S(4)),
                    Next::RetryAfter(S(8)),
                    Next::GiveUp
                ],
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn answers_a_retry_cannot_cure_are_given_up_at_once() {
        let p = Policy::default();
        for code in [301, 302, 400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(p.next(1, &status(code)), Next::GiveUp, "{code}");
        }
    }

    #[test]
    fn waits_are_capped_and_retry_after_is_heeded_within_the_cap() {
        let p = Policy { attempts: 20, ..Policy::default() };
        assert_eq!(p.next(6, &Outcome::Unreachable), Next::RetryAfter(S(30)));
        assert_eq!(p.next(19, &Outcome::Unreachable), Next::RetryAfter(S(30)));
        let asked = |secs| Outcome::Answered { status: 429, retry_after: Some(S(secs)) };
        assert_eq!(p.next(1, &asked(7)), Next::RetryAfter(S(7)));
        // Never shorter than the backoff, never longer than the cap.
        assert_eq!(p.next(4, &asked(1)), Next::RetryAfter(S(8)));
        assert_eq!(p.next(1, &asked(3600)), Next::RetryAfter(S(30)));
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_as_a_date() {
        // Wed, 21 Oct 2015 07:28:00 GMT
        let now = SystemTime::UNIX_EPOCH + S(1_445_412_480);
        assert_eq!(parse_retry_after(" 12 ", now), Some(S(12)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:45 GMT", now), Some(S(45)));
        // The two obsolete forms HTTP still asks recipients to read.
        assert_eq!(parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now), Some(S(60)));
        assert_eq!(parse_retry_after("Wed Oct 21 07:28:10 2015", now), Some(S(10)));
        // A date already past asks for no wait; nonsense asks for nothing.
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
