//! State time-to-live: Flink's `table.exec.state.ttl` and the `STATE_TTL` hint.
//!
//! As Flink configures it for SQL operators (`StateTtlConfig` with `OnCreateAndWrite` and
//! `NeverReturnExpired`): an entry's time is set when it is created or written, never when it is
//! only read, and an entry whose time is the TTL or more behind the clock is expired — it is
//! never returned, a write to it starts over from nothing, and a sweep reclaims it (on access,
//! and over the whole state every half TTL of the clock, at least a second apart). No row is
//! emitted when state expires, as in Flink: a group that expires and comes back starts again
//! with `+I`.
//!
//! The clock is the processing time, as in Flink (the job loop's ticks, every few thousand
//! records and whenever it idles), or with `'tillflow.state.ttl.clock' = 'watermark'` the
//! operator's watermark: expiry then follows event time, the same on every run, which is what
//! replaying history needs. An entry written before the clock has a value (before the first
//! tick or watermark) takes the clock's first value as its time.

/// What drives expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlClock {
    /// The wall clock (Flink's only choice).
    ProcessingTime,
    /// The operator's event-time watermark.
    Watermark,
}

/// A state time-to-live: how long (microseconds) an entry lives after its last write, by which
/// clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateTtl {
    /// The time-to-live in microseconds (> 0).
    pub micros: i64,
    /// The clock it is measured on.
    pub clock: TtlClock,
}

/// The time of an entry written before the clock had a value.
pub const UNKNOWN_TIME: i64 = i64::MIN;

/// An operator's TTL clock: the time now, and when the next sweep is due.
#[derive(Clone, Debug)]
pub struct TtlTimer {
    ttl: StateTtl,
    now: i64,
    next_sweep: i64,
    /// Entries (keys, or rows of a join) expired so far.
    pub expired: u64,
}

impl TtlTimer {
    /// A clock for `ttl`, without a time yet.
    pub fn new(ttl: StateTtl) -> Self {
        TtlTimer {
            ttl,
            now: UNKNOWN_TIME,
            next_sweep: UNKNOWN_TIME,
            expired: 0,
        }
    }

    /// The TTL.
    pub fn ttl(&self) -> StateTtl {
        self.ttl
    }

    /// The time an entry written now gets.
    #[inline]
    pub fn now(&self) -> i64 {
        self.now
    }

    /// A processing-time tick (microseconds); true when a sweep is due.
    pub fn on_processing_time(&mut self, now: i64) -> bool {
        self.ttl.clock == TtlClock::ProcessingTime && self.advance(now)
    }

    /// A watermark; true when a sweep is due.
    pub fn on_watermark(&mut self, wm: i64) -> bool {
        self.ttl.clock == TtlClock::Watermark && wm != i64::MAX && self.advance(wm)
    }

    fn advance(&mut self, now: i64) -> bool {
        if now <= self.now {
            return false;
        }
        self.now = now;
        if self.next_sweep == UNKNOWN_TIME {
            // the first time: entries written before it take it as theirs at this sweep
            self.next_sweep = now;
        }
        if now < self.next_sweep {
            return false;
        }
        self.next_sweep = now.saturating_add((self.ttl.micros / 2).max(1_000_000));
        true
    }

    /// Whether an entry written at `time` has expired.
    #[inline]
    pub fn is_expired(&self, time: i64) -> bool {
        time != UNKNOWN_TIME
            && self.now != UNKNOWN_TIME
            && self.now.saturating_sub(time) >= self.ttl.micros
    }

    /// The clock of a restored state: a processing-time clock reads the wall clock (time went on
    /// while the job was down, and what expired meanwhile must not be returned before the first
    /// tick); a watermark clock takes the least time `saved` by the snapshots it restores from
    /// (None: one from before the clock was saved).
    pub fn restored(&mut self, saved: Option<i64>) {
        match self.ttl.clock {
            TtlClock::ProcessingTime => {
                let wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(UNKNOWN_TIME, |d| d.as_micros() as i64);
                self.now = self.now.max(wall);
            }
            TtlClock::Watermark => {
                if let Some(t) = saved.filter(|t| *t != UNKNOWN_TIME) {
                    if self.now == UNKNOWN_TIME || t < self.now {
                        self.now = t;
                    }
                }
            }
        }
    }

    /// An entry's time as a sweep sees it: one written before the clock had a value takes the
    /// clock's time now.
    #[inline]
    pub fn settle(&self, time: &mut i64) {
        if *time == UNKNOWN_TIME {
            *time = self.now;
        }
    }
}

/// `1 h`, `90 s`, `250 ms`: a TTL as explain shows it.
pub fn format_ttl(ttl: &StateTtl) -> String {
    let ms = ttl.micros / 1000;
    let text = if ms % 86_400_000 == 0 {
        format!("{} d", ms / 86_400_000)
    } else if ms % 3_600_000 == 0 {
        format!("{} h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    };
    match ttl.clock {
        TtlClock::ProcessingTime => text,
        TtlClock::Watermark => format!("{text} of watermark"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_its_clock_and_sweeps_come_every_half_ttl() {
        let ttl = StateTtl {
            micros: 10_000_000,
            clock: TtlClock::Watermark,
        };
        let mut t = TtlTimer::new(ttl);
        assert!(!t.is_expired(UNKNOWN_TIME));
        // processing ticks do not move a watermark clock
        assert!(!t.on_processing_time(50_000_000));
        assert_eq!(t.now(), UNKNOWN_TIME);
        assert!(
            t.on_watermark(1_000_000),
            "the first time settles unknown entries"
        );
        let mut unknown = UNKNOWN_TIME;
        t.settle(&mut unknown);
        assert_eq!(unknown, 1_000_000);
        assert!(!t.on_watermark(3_000_000));
        assert!(!t.is_expired(1_000_000));
        assert!(t.on_watermark(6_000_000), "half the TTL later");
        assert!(!t.on_watermark(5_000_000), "a watermark never goes back");
        assert!(t.on_watermark(11_000_000));
        assert!(t.is_expired(1_000_000));
        assert!(!t.is_expired(1_000_001));
        assert!(!t.on_watermark(i64::MAX), "the end of input is not a time");
    }

    #[test]
    fn ttls_read_as_written() {
        let p = |micros| StateTtl {
            micros,
            clock: TtlClock::ProcessingTime,
        };
        assert_eq!(format_ttl(&p(86_400_000_000)), "1 d");
        assert_eq!(format_ttl(&p(5_400_000_000)), "90 min");
        assert_eq!(format_ttl(&p(1_500_000)), "1500 ms");
        let w = StateTtl {
            micros: 3_600_000_000,
            clock: TtlClock::Watermark,
        };
        assert_eq!(format_ttl(&w), "1 h of watermark");
    }
}
