//! Op-timeout budgeting: every wait loop of an action asks the [`Deadline`] how long it
//! may still take, so that the action returns, with a reason, before Pacemaker's
//! timeout SIGKILLs it.

use std::time::{Duration, Instant};

/// The point by which an action must have finished: its start plus the operation timeout
/// minus a safety margin (for process exit and Pacemaker's own bookkeeping).
#[derive(Copy, Clone, Debug)]
pub struct Deadline {
    started: Instant,
    end: Instant,
    timeout: Duration,
}

/// The smallest safety margin kept before the operation timeout.
pub const MIN_MARGIN: Duration = Duration::from_millis(500);
/// The largest safety margin kept before the operation timeout.
pub const MAX_MARGIN: Duration = Duration::from_secs(5);

/// The margin kept for a timeout: a tenth of it, between 0.5 s and 5 s, and never more
/// than half the timeout.
pub fn margin_for(timeout: Duration) -> Duration {
    (timeout / 10)
        .clamp(MIN_MARGIN, MAX_MARGIN)
        .min(timeout / 2)
}

impl Deadline {
    /// A deadline for an action that started at `started` with operation timeout `timeout`.
    pub fn new(started: Instant, timeout: Duration) -> Deadline {
        Deadline {
            started,
            end: started + timeout.saturating_sub(margin_for(timeout)),
            timeout,
        }
    }

    /// The instant by which the action must be done.
    pub fn end(&self) -> Instant {
        self.end
    }

    /// The operation timeout this deadline was made from.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The whole time this deadline gives, from the action's start to its end: what a
    /// reserve for a later phase is a share of.
    pub fn span(&self) -> Duration {
        self.end.saturating_duration_since(self.started)
    }

    /// Time since the action started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.end
    }

    /// An earlier deadline that leaves `reserve` for what comes after it (for example a
    /// forced stop after a graceful one). The reserve never takes more than the whole
    /// budget: an already tight deadline gives a sub-deadline that has expired.
    pub fn reserving(&self, reserve: Duration) -> Deadline {
        Deadline {
            started: self.started,
            end: self
                .end
                .checked_sub(reserve)
                .unwrap_or(self.started)
                .max(self.started),
            timeout: self.timeout,
        }
    }

    /// A deadline that ends after at most `limit` from now, and no later than this one.
    pub fn at_most(&self, limit: Duration) -> Deadline {
        Deadline {
            started: self.started,
            end: self.end.min(Instant::now() + limit),
            timeout: self.timeout,
        }
    }

    /// Sleeps for `step`, or less if the deadline comes first. Returns false once the
    /// deadline has passed.
    pub fn sleep(&self, step: Duration) -> bool {
        let left = self.remaining();
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(step.min(left));
        !self.expired()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins() {
        assert_eq!(margin_for(Duration::from_secs(20)), Duration::from_secs(2));
        assert_eq!(margin_for(Duration::from_secs(90)), Duration::from_secs(5));
        assert_eq!(
            margin_for(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            margin_for(Duration::from_millis(600)),
            Duration::from_millis(300)
        );
        assert_eq!(margin_for(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn end_is_start_plus_timeout_minus_margin() {
        let t0 = Instant::now();
        let d = Deadline::new(t0, Duration::from_secs(20));
        assert_eq!(d.end(), t0 + Duration::from_secs(18));
        assert!(d.remaining() <= Duration::from_secs(18));
        assert!(d.remaining() > Duration::from_secs(17));
        assert!(!d.expired());
    }

    #[test]
    fn a_reserve_moves_the_end_earlier_but_not_before_the_start() {
        let t0 = Instant::now();
        let d = Deadline::new(t0, Duration::from_secs(90));
        assert_eq!(
            d.reserving(Duration::from_secs(15)).end(),
            t0 + Duration::from_secs(70)
        );
        let tight = Deadline::new(t0, Duration::from_secs(2));
        let sub = tight.reserving(Duration::from_secs(10));
        assert_eq!(sub.end(), t0);
        assert!(sub.expired());
    }

    #[test]
    fn span_is_what_the_deadline_gives() {
        let t0 = Instant::now();
        assert_eq!(
            Deadline::new(t0, Duration::from_secs(20)).span(),
            Duration::from_secs(18)
        );
        let d = Deadline::new(t0, Duration::from_secs(90));
        assert_eq!(
            d.reserving(Duration::from_secs(30)).span(),
            Duration::from_secs(55)
        );
        assert_eq!(d.reserving(Duration::from_secs(999)).span(), Duration::ZERO);
    }

    #[test]
    fn at_most_caps_but_never_extends() {
        let t0 = Instant::now();
        let d = Deadline::new(t0, Duration::from_secs(20));
        assert!(d.at_most(Duration::from_secs(1)).remaining() <= Duration::from_secs(1));
        assert_eq!(d.at_most(Duration::from_secs(100)).end(), d.end());
    }

    #[test]
    fn sleep_stops_at_the_deadline() {
        let d = Deadline::new(Instant::now(), Duration::from_millis(200)); // ends after 100 ms
        let t = Instant::now();
        while d.sleep(Duration::from_secs(10)) {}
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(90), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(!d.sleep(Duration::from_millis(1)));
    }
}
