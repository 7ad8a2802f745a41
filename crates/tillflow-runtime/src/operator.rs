//! The operator, source and sink contracts and the push-based pipeline that connects them.
//!
//! A job is a tree: each source feeds a [`Pipeline`], a chain of [`Operator`]s that ends in a
//! [`Sink`] or fans out to several pipelines (one per INSERT of a statement set reading the same
//! table). Records, watermarks, processing-time ticks and end-of-input travel down the chain by
//! direct calls, one record at a time; an operator that emits passes a borrowed [`Row`] it owns and
//! reuses, so nothing is allocated or cloned per record on the way.

use crate::error::Result;
use tillflow_types::{Row, Schema};

/// Receives what an operator emits.
pub trait Emit {
    /// Passes one record downstream.
    fn emit(&mut self, row: &Row) -> Result<()>;
    /// Passes an event-time watermark (microseconds) downstream.
    fn watermark(&mut self, wm: i64) -> Result<()>;
}

/// Counters an operator exposes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorMetrics {
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Records dropped as late (from every window they belonged to).
    pub late_dropped: u64,
    /// Keys or windows currently held in state.
    pub state_entries: u64,
}

/// A streaming operator.
pub trait Operator: Send {
    /// A one-line description for `explain` and error messages.
    fn describe(&self) -> String;

    /// Handles one record.
    fn process(&mut self, row: &Row, out: &mut dyn Emit) -> Result<()>;

    /// Handles a watermark; the default forwards it.
    fn on_watermark(&mut self, wm: i64, out: &mut dyn Emit) -> Result<()> {
        out.watermark(wm)
    }

    /// Handles a processing-time tick (wall clock, microseconds); the default does nothing.
    fn on_processing_time(&mut self, _now: i64, _out: &mut dyn Emit) -> Result<()> {
        Ok(())
    }

    /// Called once at the end of a bounded input, after the final watermark; the operator emits
    /// whatever it still holds (processing-time windows, buffers).
    fn on_end(&mut self, _out: &mut dyn Emit) -> Result<()> {
        Ok(())
    }

    /// Current counters.
    fn metrics(&self) -> OperatorMetrics {
        OperatorMetrics::default()
    }

    /// Appends this operator's state to `out` (nothing for stateless operators).
    fn snapshot_state(&self, _out: &mut Vec<u8>) {}

    /// Restores state written by [`Operator::snapshot_state`].
    fn restore_state(&mut self, _input: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// Where a pipeline's records end.
pub trait Sink: Send {
    /// A one-line description (connector and target) for `explain` and messages.
    fn describe(&self) -> String;
    /// Writes one record (an insert or, for changelog sinks, any row kind).
    fn write(&mut self, row: &Row) -> Result<()>;
    /// Observes a watermark (most sinks ignore it).
    fn watermark(&mut self, _wm: i64) -> Result<()> {
        Ok(())
    }
    /// Flushes and commits everything written (end of a bounded job).
    fn finish(&mut self) -> Result<()>;
    /// Rows written so far.
    fn rows_written(&self) -> u64;
}

/// What a source returned from [`Source::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// A record was decoded into the row.
    Record,
    /// Nothing right now; poll again later.
    Idle,
    /// The bounded input is exhausted.
    End,
}

/// Counters a source exposes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceMetrics {
    /// Records decoded.
    pub records: u64,
    /// Malformed records skipped (ignore-parse-errors) or sent to the dead-letter output.
    pub bad_records: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Records kept with fields set to NULL because they did not convert (Flink's
    /// `ignore-parse-errors` for JSON).
    pub nulled_records: u64,
}

/// A source of records.
pub trait Source: Send {
    /// A one-line description (connector and location).
    fn describe(&self) -> String;
    /// The schema of the rows it produces (the table's physical columns).
    fn schema(&self) -> &Schema;
    /// Decodes the next record into `row` (which the caller has cleared).
    fn poll(&mut self, row: &mut Row) -> Result<Poll>;
    /// Current counters.
    fn metrics(&self) -> SourceMetrics;

    /// Appends the source's read position (the part of a checkpoint that says where to resume).
    fn snapshot_position(&self, _out: &mut Vec<u8>) {}

    /// Resumes from a position written by [`Source::snapshot_position`].
    fn restore_position(&mut self, _input: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// A chain of operators and where it ends.
pub struct Pipeline {
    /// Operators, first to last.
    pub ops: Vec<Box<dyn Operator>>,
    /// The end of the chain.
    pub output: Output,
}

/// The end of a pipeline.
pub enum Output {
    /// A sink.
    Sink(Box<dyn Sink>),
    /// Several pipelines receiving the same records.
    Fanout(Vec<Pipeline>),
}

struct Next<'a> {
    ops: &'a mut [Box<dyn Operator>],
    output: &'a mut Output,
}

impl Emit for Next<'_> {
    #[inline]
    fn emit(&mut self, row: &Row) -> Result<()> {
        match self.ops.split_first_mut() {
            Some((op, rest)) => op.process(
                row,
                &mut Next {
                    ops: rest,
                    output: self.output,
                },
            ),
            None => self.output.push(row),
        }
    }

    #[inline]
    fn watermark(&mut self, wm: i64) -> Result<()> {
        match self.ops.split_first_mut() {
            Some((op, rest)) => op.on_watermark(
                wm,
                &mut Next {
                    ops: rest,
                    output: self.output,
                },
            ),
            None => self.output.watermark(wm),
        }
    }
}

impl Output {
    fn push(&mut self, row: &Row) -> Result<()> {
        match self {
            Output::Sink(s) => s.write(row),
            Output::Fanout(ps) => {
                for p in ps {
                    p.push(row)?;
                }
                Ok(())
            }
        }
    }

    fn watermark(&mut self, wm: i64) -> Result<()> {
        match self {
            Output::Sink(s) => s.watermark(wm),
            Output::Fanout(ps) => {
                for p in ps {
                    p.watermark(wm)?;
                }
                Ok(())
            }
        }
    }
}

impl Pipeline {
    /// A pipeline of `ops` ending in `sink`.
    pub fn new(ops: Vec<Box<dyn Operator>>, sink: Box<dyn Sink>) -> Self {
        Pipeline {
            ops,
            output: Output::Sink(sink),
        }
    }

    /// Pushes one record through the chain.
    #[inline]
    pub fn push(&mut self, row: &Row) -> Result<()> {
        Next {
            ops: &mut self.ops,
            output: &mut self.output,
        }
        .emit(row)
    }

    /// Pushes a watermark through the chain.
    pub fn watermark(&mut self, wm: i64) -> Result<()> {
        Next {
            ops: &mut self.ops,
            output: &mut self.output,
        }
        .watermark(wm)
    }

    /// Delivers a processing-time tick to every operator, in order.
    pub fn processing_time(&mut self, now: i64) -> Result<()> {
        for i in 0..self.ops.len() {
            let (head, rest) = self.ops.split_at_mut(i + 1);
            let op = &mut head[i];
            op.on_processing_time(
                now,
                &mut Next {
                    ops: rest,
                    output: &mut self.output,
                },
            )?;
        }
        if let Output::Fanout(ps) = &mut self.output {
            for p in ps {
                p.processing_time(now)?;
            }
        }
        Ok(())
    }

    /// Ends the input: the final watermark (+∞), then every operator's `on_end` in order, then the
    /// sinks' `finish`.
    pub fn end(&mut self) -> Result<()> {
        self.watermark(i64::MAX)?;
        for i in 0..self.ops.len() {
            let (head, rest) = self.ops.split_at_mut(i + 1);
            head[i].on_end(&mut Next {
                ops: rest,
                output: &mut self.output,
            })?;
        }
        match &mut self.output {
            Output::Sink(s) => s.finish(),
            Output::Fanout(ps) => {
                for p in ps {
                    // the fan-out pipelines already saw the final watermark
                    for i in 0..p.ops.len() {
                        let (head, rest) = p.ops.split_at_mut(i + 1);
                        head[i].on_end(&mut Next {
                            ops: rest,
                            output: &mut p.output,
                        })?;
                    }
                    p.finish_outputs()?;
                }
                Ok(())
            }
        }
    }

    fn finish_outputs(&mut self) -> Result<()> {
        match &mut self.output {
            Output::Sink(s) => s.finish(),
            Output::Fanout(ps) => {
                for p in ps {
                    p.finish_outputs()?;
                }
                Ok(())
            }
        }
    }

    /// Visits every operator and sink, depth first, with its depth (for explain and metrics).
    pub fn visit(&self, depth: usize, f: &mut dyn FnMut(usize, Node<'_>)) {
        let mut d = depth;
        for op in &self.ops {
            f(d, Node::Operator(op.as_ref()));
            d += 1;
        }
        match &self.output {
            Output::Sink(s) => f(d, Node::Sink(s.as_ref())),
            Output::Fanout(ps) => {
                for p in ps {
                    p.visit(d, f);
                }
            }
        }
    }
}

/// A node of a pipeline, as seen by [`Pipeline::visit`].
pub enum Node<'a> {
    /// An operator.
    Operator(&'a dyn Operator),
    /// A sink.
    Sink(&'a dyn Sink),
}
