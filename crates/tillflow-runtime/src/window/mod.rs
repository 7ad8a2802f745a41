//! Windowed aggregation: the window kinds (TUMBLE, HOP, CUMULATE, SESSION) and their operators.
//!
//! Aligned kinds (TUMBLE, HOP, CUMULATE) each own an assigner file and share the
//! [`aggregate::WindowAggregate`] operator; SESSION merges windows per key and has its own operator;
//! COUNT windows (tillflow's extension) close every N rows of a key ([`count`]).
//! Every window is `[start, end)` in microseconds; it fires when the watermark (or, for
//! processing-time windows, the wall clock) reaches `end - 1 ms`, and a record is late for a window
//! only if that window has already fired. Window operators emit
//! `[keys..., aggregates..., window_start, window_end, window_time]`.

pub mod aggregate;
pub mod assign;
pub mod count;
pub mod cumulate;
pub mod hop;
pub mod local;
pub mod session;
pub mod tumble;

use crate::error::Result;
use crate::late::{self, SharedLateSink};
use crate::operator::Emit;
use tillflow_types::temporal::MICROS_PER_MILLI;

/// What the time-driven window operators share: they fire windows up to a time and track a watermark.
pub(crate) trait Firing {
    /// Emits every window whose `end - 1 ms` is at or before `time`.
    fn fire_until(&mut self, time: i64, out: &mut dyn Emit) -> Result<()>;
    /// Event or processing time.
    fn mode(&self) -> TimeMode;
    /// The operator's watermark.
    fn watermark_mut(&mut self) -> &mut i64;
    /// Rows emitted so far.
    fn emitted(&self) -> u64;
    /// Where dropped late rows go.
    fn late_sink(&self) -> &Option<SharedLateSink>;
}

/// A watermark: fire what it closes; pass it on only after an emission (or the final one) —
/// downstream only ever sees rows this operator emits, so it needs the watermarks that follow
/// them, not one per input record.
#[inline]
pub(crate) fn on_watermark<F: Firing>(op: &mut F, wm: i64, out: &mut dyn Emit) -> Result<()> {
    if wm <= *op.watermark_mut() {
        return Ok(());
    }
    *op.watermark_mut() = wm;
    let before = op.emitted();
    if op.mode() == TimeMode::Event {
        op.fire_until(wm, out)?;
    }
    if op.emitted() != before || wm == i64::MAX {
        out.watermark(wm)?;
    }
    Ok(())
}

/// A processing-time tick fires processing-time windows.
pub(crate) fn on_processing_time<F: Firing>(
    op: &mut F,
    now: i64,
    out: &mut dyn Emit,
) -> Result<()> {
    if op.mode() == TimeMode::Processing {
        op.fire_until(now, out)?;
    }
    Ok(())
}

/// End of input: everything still open fires; the late-data output is flushed.
pub(crate) fn on_end<F: Firing>(op: &mut F, out: &mut dyn Emit) -> Result<()> {
    op.fire_until(i64::MAX, out)?;
    late::flush(op.late_sink())
}

/// Whether windows follow event time (watermarks) or processing time (the wall clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeMode {
    /// Event time: windows fire on watermarks; late records are dropped.
    Event,
    /// Processing time: windows fire on the wall clock (and at the end of a bounded input).
    Processing,
}

/// An aligned window kind with its parameters (microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlignedWindow {
    /// `TUMBLE(size [, offset])`
    Tumble {
        /// Window length.
        size: i64,
        /// Alignment offset from the epoch.
        offset: i64,
    },
    /// `HOP(slide, size [, offset])`
    Hop {
        /// Distance between window starts.
        slide: i64,
        /// Window length.
        size: i64,
        /// Alignment offset.
        offset: i64,
    },
    /// `CUMULATE(step, size [, offset])`
    Cumulate {
        /// Growth step of the window end.
        step: i64,
        /// Maximum window length.
        size: i64,
        /// Alignment offset.
        offset: i64,
    },
}

impl AlignedWindow {
    /// Appends every window `(start, end)` containing timestamp `ts`.
    #[inline]
    pub fn assign(&self, ts: i64, out: &mut Vec<(i64, i64)>) {
        out.clear();
        match *self {
            AlignedWindow::Tumble { size, offset } => tumble::assign(ts, size, offset, out),
            AlignedWindow::Hop {
                slide,
                size,
                offset,
            } => hop::assign(ts, slide, size, offset, out),
            AlignedWindow::Cumulate { step, size, offset } => {
                cumulate::assign(ts, step, size, offset, out)
            }
        }
    }
}

/// The last timestamp inside a window ending at `end` (`window_time`), and the watermark at which it fires.
#[inline]
pub fn window_max_timestamp(end: i64) -> i64 {
    end.saturating_sub(MICROS_PER_MILLI)
}

/// Start of the window of length `size` (aligned to `offset`) that contains `ts`.
#[inline]
pub fn window_start(ts: i64, size: i64, offset: i64) -> i64 {
    ts - (ts - offset).rem_euclid(size)
}
