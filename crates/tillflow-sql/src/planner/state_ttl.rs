//! State TTL of the stateful operators a query plans (`crate::plan` nodes carry it, the runtime's
//! `ttl` module applies it).
//!
//! Regular joins, non-windowed GROUP BY, deduplication, Top-N, OVER aggregates, event-time
//! temporal joins and the normalization of upsert sources take the script's
//! `table.exec.state.ttl` (0 or unset: state never expires) on the clock of
//! `tillflow.state.ttl.clock` (processing time, as in Flink, or the watermark). A
//! `/*+ STATE_TTL('name' = 'ttl', …) */` hint after a SELECT overrides it for that SELECT's
//! regular joins and GROUP BY, per input, as Flink's hint does: the name is an input's table,
//! view or alias (a join's side that is itself a join takes the script's TTL). A name that is no
//! input of the SELECT, or a hint on a SELECT with neither, is refused naming what it could name.

use super::{Planner, Rel, RelInput};
use crate::error::{plan_err, Result};
use sqlparser::ast as sql;
use std::collections::BTreeMap;
use tillflow_runtime::ttl::{StateTtl, TtlClock};
use tillflow_types::temporal::parse_duration_micros;

/// The STATE_TTL hint of one SELECT: per lower-cased name, the name as written, its TTL (None:
/// 0, never expires) and whether an input took it; and the inputs seen.
#[derive(Default)]
pub(super) struct TtlHints {
    entries: BTreeMap<String, (String, Option<StateTtl>, bool)>,
    inputs: Vec<String>,
}

/// A TTL of `micros` (None for 0: never expires) on the clock `config` sets.
fn ttl_of(config: &BTreeMap<String, String>, micros: i64) -> Option<StateTtl> {
    let clock = match config.get("tillflow.state.ttl.clock") {
        Some(v) if v.trim().eq_ignore_ascii_case("watermark") => TtlClock::Watermark,
        _ => TtlClock::ProcessingTime,
    };
    (micros > 0).then_some(StateTtl { micros, clock })
}

/// The script's `table.exec.state.ttl` (None when unset or 0; the value was checked when it was
/// set).
pub(crate) fn configured_ttl(config: &BTreeMap<String, String>) -> Option<StateTtl> {
    ttl_of(
        config,
        parse_duration_micros(config.get("table.exec.state.ttl")?)?,
    )
}

impl Planner<'_> {
    /// The script's `table.exec.state.ttl`.
    pub(super) fn state_ttl(&self) -> Option<StateTtl> {
        configured_ttl(&self.catalog.config)
    }

    /// Reads the STATE_TTL hint of `s` (checked for form when the script was parsed) for the
    /// joins and aggregates planned until [`Planner::end_ttl_hints`].
    pub(super) fn begin_ttl_hints(&mut self, s: &sql::Select) -> Result<()> {
        let mut hints = TtlHints::default();
        for h in &s.optimizer_hints {
            for hint in crate::script::parse_hints(&h.text, 0)? {
                if hint.name != "STATE_TTL" {
                    continue;
                }
                for (name, value) in hint.pairs {
                    let Some(micros) = parse_duration_micros(&value) else {
                        return plan_err(format!(
                            "STATE_TTL('{name}' = '{value}'): not a duration"
                        ));
                    };
                    let ttl = ttl_of(&self.catalog.config, micros);
                    hints
                        .entries
                        .insert(name.to_lowercase(), (name, ttl, false));
                }
            }
        }
        self.ttl_hints.push(hints);
        Ok(())
    }

    /// Ends the SELECT begun by [`Planner::begin_ttl_hints`]: every name of its hint must have
    /// named an input.
    pub(super) fn end_ttl_hints(&mut self) -> Result<()> {
        let Some(hints) = self.ttl_hints.pop() else {
            return Ok(());
        };
        let unused: Vec<&String> = hints
            .entries
            .values()
            .filter(|(_, _, used)| !used)
            .map(|(name, _, _)| name)
            .collect();
        let Some(first) = unused.first() else {
            return Ok(());
        };
        if hints.inputs.is_empty() {
            return plan_err(format!(
                "STATE_TTL('{first}' = …): the hint sets the state TTL of a regular join or a GROUP BY, and its SELECT has neither"
            ));
        }
        plan_err(format!(
            "STATE_TTL('{first}' = …) names no input of its SELECT (its inputs: {})",
            hints.inputs.join(", ")
        ))
    }

    /// The state TTL of a join side or an aggregate reading `rel`: the STATE_TTL hint's for one
    /// of its names, else the script's.
    pub(super) fn input_state_ttl(&mut self, rel: &Rel) -> Option<StateTtl> {
        self.named_state_ttl(&rel_names(rel))
    }

    /// [`Planner::input_state_ttl`] for an input known by `names` ([`rel_names`] taken before
    /// a projection cleared the columns' qualifiers).
    pub(super) fn named_state_ttl(&mut self, names: &[String]) -> Option<StateTtl> {
        let default = self.state_ttl();
        let Some(hints) = self.ttl_hints.last_mut() else {
            return default;
        };
        for n in names {
            if !hints.inputs.contains(n) {
                hints.inputs.push(n.clone());
            }
        }
        for n in names {
            if let Some((_, ttl, used)) = hints.entries.get_mut(&n.to_lowercase()) {
                *used = true;
                return *ttl;
            }
        }
        default
    }
}

/// The names a hint may give `rel` by: its alias or view name (when all of its columns come
/// from one), and its table.
pub(super) fn rel_names(rel: &Rel) -> Vec<String> {
    let mut names = Vec::new();
    let mut qualifiers = rel.scope.qualifiers.iter().flatten();
    if let Some(q) = qualifiers.next() {
        if qualifiers.all(|x| x == q) {
            names.push(q.clone());
        }
    }
    if let RelInput::Table(t) = &rel.input {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(t)) {
            names.push(t.clone());
        }
    }
    names
}
