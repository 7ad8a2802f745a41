//! A regression tree grown on the stream: river's `tree.HoeffdingTreeRegressor` (0.26) with
//! its rules, so the same rows in the same order give river's predictions.
//!
//! - A row is routed from the root: at a branch, right when its feature is above the threshold,
//!   else left; a row whose feature there is missing (NULL) goes down the child that has learned
//!   more rows (the left one on a tie).
//! - Its leaf learns it: the label's running statistics, and for each feature present the leaf's
//!   record of that feature (module `ebst`, values rounded to one decimal), kept in the order
//!   the features first came to the leaf. `model` and `adaptive` leaves also learn a linear
//!   regression with river's defaults ([`super::linear`]); `adaptive` leaves first add each
//!   predictor's squared error to its decayed sum.
//! - A leaf that reached `max-depth` stops recording features and never splits. Otherwise, every
//!   `grace-period` rows (counted from its birth, rows routed past a missing feature included,
//!   though such a row never starts an attempt) a leaf tries to split. Each feature offers its
//!   best split point by variance reduction, and a "no split" candidate is added (river's merit
//!   pre-pruning). With the best merit `m1` positive and the Hoeffding bound
//!   `ε = sqrt(ln(1/δ) / 2n)`, the leaf splits when the second best `m2` has `m2/m1 < 1 − ε`, or
//!   when `ε < tau`. The children start from the split's two sides' label statistics (and, for
//!   model leaves, from the leaf's linear model and errors). When the attempt fails with both
//!   merits positive, each feature's record drops its bad split points.
//! - A leaf predicts the mean of its labels (`mean`), its model's value (`model`), or the one
//!   of the two with the smaller decayed error (`adaptive`; the model on a tie).
//!
//! river also deactivates leaves when its estimate of the tree's memory passes `max_size`
//! (500 MiB), an estimate made every million rows from Python's object sizes; that has no
//! counterpart here, so a tree that large would differ. Nodes live in one `Vec` (a child after
//! its parent); the only allocations after the first rows are a tree's or a record's growth.

use super::ebst::{self, Ebst, Step};
use super::linear::{Linear, LinearParams};
use super::stats::{square, Var};
use super::{DecodeError, Prediction, Reader};
use crate::features::Features;
use crate::spec::{LeafPrediction, TreeSpec};

/// A leaf's record of one feature.
#[derive(Debug, Clone, PartialEq)]
struct Splitter {
    /// The feature's slot.
    feature: u32,
    record: Ebst,
}

#[derive(Debug, Clone, PartialEq)]
struct Leaf {
    /// The labels learned (from the parent's split, then the leaf's own rows).
    stats: Var,
    depth: u32,
    /// Rows learned at the last split attempt (at birth: the rows it started from).
    last_attempt: f64,
    /// The features' records, in the order they first came; None once the leaf no longer
    /// splits.
    splitters: Option<Vec<Splitter>>,
    /// The linear model of `model` and `adaptive` leaves.
    model: Option<Box<Linear>>,
    /// `adaptive` leaves' decayed squared errors of the mean and of the model.
    errors: [f64; 2],
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Branch {
    feature: u32,
    threshold: f64,
    /// Rows learned below it.
    weight: f64,
    left: u32,
    right: u32,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Leaf(Leaf),
    Branch(Branch),
}

/// A reusable stack for walking the features' records (not part of the state).
#[derive(Debug, Clone, Default)]
struct Scratch(Vec<Step>);

impl PartialEq for Scratch {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A Hoeffding tree regressor's learned state.
#[derive(Debug, Clone, PartialEq)]
pub struct HoeffdingTree {
    /// The root first.
    nodes: Vec<Node>,
    slots: u32,
    leaves: LeafPrediction,
    pub(super) learned: u64,
    scratch: Scratch,
}

const LEAF_MODEL: LinearParams = LinearParams::RIVER_LINEAR_REGRESSION;

impl Leaf {
    fn new(stats: Var, depth: u32, model: Option<Box<Linear>>, errors: [f64; 2]) -> Leaf {
        Leaf {
            stats,
            depth,
            last_attempt: stats.n,
            splitters: Some(Vec::new()),
            model,
            errors,
        }
    }

    fn predict(&self, leaves: LeafPrediction, x: &Features) -> f64 {
        let model =
            |m: &Option<Box<Linear>>| m.as_ref().map_or(0.0, |m| m.predict_with(&LEAF_MODEL, x));
        match leaves {
            LeafPrediction::Mean => self.stats.mean,
            LeafPrediction::Model => model(&self.model),
            LeafPrediction::Adaptive if self.errors[0] < self.errors[1] => self.stats.mean,
            LeafPrediction::Adaptive => model(&self.model),
        }
    }

    fn learn(&mut self, leaves: LeafPrediction, decay: f64, x: &Features, y: f64) {
        if leaves == LeafPrediction::Adaptive {
            let by_model = self
                .model
                .as_ref()
                .map_or(0.0, |m| m.predict_with(&LEAF_MODEL, x));
            self.errors[0] = decay * self.errors[0] + square(y - self.stats.mean);
            self.errors[1] = decay * self.errors[1] + square(y - by_model);
        }
        self.stats.update(y);
        if let Some(splitters) = &mut self.splitters {
            for (slot, v) in x.dense.iter().enumerate() {
                let Some(v) = v else { continue };
                let at = match splitters.iter().position(|s| s.feature as usize == slot) {
                    Some(at) => at,
                    None => {
                        splitters.push(Splitter {
                            feature: slot as u32,
                            record: Ebst::new(),
                        });
                        splitters.len() - 1
                    }
                };
                splitters[at].record.insert(*v, y);
            }
        }
        if let Some(m) = &mut self.model {
            m.learn_with(&LEAF_MODEL, x, y);
        }
    }
}

/// What a split attempt decided.
enum Decision {
    Split { feature: u32, split: ebst::Split },
    Prune { ratio: f64, best: f64, bound: f64 },
    Wait,
}

impl HoeffdingTree {
    /// A tree that has learned nothing (one leaf), for rows of `slots` numeric features.
    pub fn new(spec: &TreeSpec, slots: usize) -> HoeffdingTree {
        let leaves = spec.leaf_prediction;
        let model = (leaves != LeafPrediction::Mean).then(|| Box::new(Linear::with_slots(slots)));
        HoeffdingTree {
            nodes: vec![Node::Leaf(Leaf::new(Var::default(), 0, model, [0.0; 2]))],
            slots: slots as u32,
            leaves,
            learned: 0,
            scratch: Scratch::default(),
        }
    }

    /// Numeric features.
    pub fn slots(&self) -> usize {
        self.slots as usize
    }

    /// Leaves (a tree that never split has one).
    pub fn leaves(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n, Node::Leaf(_)))
            .count()
    }

    /// The root's split: its feature's slot and threshold (None while the root is a leaf).
    pub fn root_split(&self) -> Option<(usize, f64)> {
        match self.nodes.first() {
            Some(Node::Branch(b)) => Some((b.feature as usize, b.threshold)),
            _ => None,
        }
    }

    /// The depth of the deepest leaf (0 for a single leaf).
    pub fn depth(&self) -> u32 {
        self.nodes
            .iter()
            .filter_map(|n| match n {
                Node::Leaf(l) => Some(l.depth),
                Node::Branch(_) => None,
            })
            .max()
            .unwrap_or(0)
    }

    fn weight(&self, i: u32) -> f64 {
        match self.nodes.get(i as usize) {
            Some(Node::Leaf(l)) => l.stats.n,
            Some(Node::Branch(b)) => b.weight,
            None => 0.0,
        }
    }

    /// The child a row goes to at `b`, and whether its feature was missing there.
    fn child(&self, b: &Branch, x: &Features) -> (u32, bool) {
        match x.dense.get(b.feature as usize).copied().flatten() {
            Some(v) if v <= b.threshold => (b.left, false),
            Some(_) => (b.right, false),
            None if self.weight(b.left) < self.weight(b.right) => (b.right, true),
            None => (b.left, true),
        }
    }

    /// The leaf `x` goes to, and whether a feature was missing on the way.
    fn route(&self, x: &Features) -> (usize, bool) {
        let (mut i, mut missing) = (0usize, false);
        while let Some(Node::Branch(b)) = self.nodes.get(i) {
            let (next, m) = self.child(b, x);
            missing |= m;
            i = next as usize;
        }
        (i, missing)
    }

    /// The prediction for `x`.
    pub fn predict(&self, x: &Features) -> Prediction {
        let (i, _) = self.route(x);
        let value = match self.nodes.get(i) {
            Some(Node::Leaf(l)) => l.predict(self.leaves, x),
            _ => 0.0,
        };
        Prediction {
            value,
            learned: self.learned,
        }
    }

    /// Learns from `x` with label `y`.
    pub fn learn(&mut self, spec: &TreeSpec, x: &Features, y: f64) {
        self.learned += 1;
        let (i, missing) = self.route(x);
        // the branches on the way have learned one more row
        let mut at = 0usize;
        while at != i {
            let Some(Node::Branch(b)) = self.nodes.get(at) else {
                break;
            };
            let (next, _) = self.child(b, x);
            if let Some(Node::Branch(b)) = self.nodes.get_mut(at) {
                b.weight += 1.0;
            }
            at = next as usize;
        }
        let leaves = self.leaves;
        let Some(Node::Leaf(leaf)) = self.nodes.get_mut(i) else {
            return;
        };
        leaf.learn(leaves, spec.model_selector_decay, x, y);
        // a row routed past a missing feature never starts a split attempt (as river)
        if missing || leaf.splitters.is_none() {
            return;
        }
        if spec.max_depth.is_some_and(|d| leaf.depth >= d) {
            leaf.splitters = None;
            return;
        }
        if leaf.stats.n - leaf.last_attempt >= f64::from(spec.grace_period) {
            let seen = leaf.stats.n;
            self.attempt_split(i, spec);
            if let Some(Node::Leaf(leaf)) = self.nodes.get_mut(i) {
                leaf.last_attempt = seen;
            }
        }
    }

    /// The candidates' verdict for leaf `leaf`.
    fn decide(leaf: &Leaf, spec: &TreeSpec, stack: &mut Vec<Step>) -> Decision {
        let Some(splitters) = &leaf.splitters else {
            return Decision::Wait;
        };
        if splitters.is_empty() {
            // only "no split": river deactivates the leaf and at once reactivates it
            return Decision::Wait;
        }
        let mss = f64::from(spec.min_samples_split);
        // the two best of [no split, each feature's best] (a later candidate wins a tie, as
        // the last of river's stable sort)
        let mut best: (f64, Option<(u32, ebst::Split)>) = (f64::NEG_INFINITY, None);
        let mut second = f64::NEG_INFINITY;
        for s in splitters {
            let found = s.record.best_split(&leaf.stats, mss, stack);
            let merit = found.map_or(f64::NEG_INFINITY, |f| f.merit);
            if merit >= best.0 {
                second = best.0;
                best = (merit, found.map(|f| (s.feature, f)));
            } else if merit >= second {
                second = merit;
            }
        }
        let (m1, m2) = (best.0, second);
        let bound = (1.0 * 1.0 * (1.0 / spec.delta).ln() / (2.0 * leaf.stats.n)).sqrt();
        if m1 > 0.0 && (m2 / m1 < 1.0 - bound || bound < spec.tau) {
            if let Some((feature, split)) = best.1 {
                return Decision::Split { feature, split };
            }
        } else if m1 > 0.0 && m2 > 0.0 {
            return Decision::Prune {
                ratio: m2 / m1,
                best: m1,
                bound,
            };
        }
        Decision::Wait
    }

    fn attempt_split(&mut self, i: usize, spec: &TreeSpec) {
        let Some(Node::Leaf(leaf)) = self.nodes.get_mut(i) else {
            return;
        };
        let stack = &mut self.scratch.0;
        match Self::decide(leaf, spec, stack) {
            Decision::Wait => {}
            Decision::Prune { ratio, best, bound } => {
                let mss = f64::from(spec.min_samples_split);
                let pre = leaf.stats;
                for s in leaf.splitters.iter_mut().flatten() {
                    s.record.prune(&pre, mss, ratio, best, bound, stack);
                }
            }
            Decision::Split { feature, split } => {
                let (depth, model, errors) = (leaf.depth + 1, leaf.model.take(), leaf.errors);
                let left = self.nodes.len() as u32;
                let branch = Node::Branch(Branch {
                    feature,
                    threshold: split.threshold,
                    weight: split.left.n + split.right.n,
                    left,
                    right: left + 1,
                });
                self.nodes[i] = branch;
                self.nodes.push(Node::Leaf(Leaf::new(
                    split.left,
                    depth,
                    model.clone(),
                    errors,
                )));
                self.nodes
                    .push(Node::Leaf(Leaf::new(split.right, depth, model, errors)));
            }
        }
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let put32 = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
        let put64 = |out: &mut Vec<u8>, v: f64| out.extend_from_slice(&v.to_bits().to_le_bytes());
        out.push(TREE_VERSION);
        out.extend_from_slice(&self.learned.to_le_bytes());
        put32(out, self.slots);
        out.push(match self.leaves {
            LeafPrediction::Mean => 0,
            LeafPrediction::Model => 1,
            LeafPrediction::Adaptive => 2,
        });
        put32(out, self.nodes.len() as u32);
        for n in &self.nodes {
            match n {
                Node::Branch(b) => {
                    out.push(0);
                    put32(out, b.feature);
                    put64(out, b.threshold);
                    put64(out, b.weight);
                    put32(out, b.left);
                    put32(out, b.right);
                }
                Node::Leaf(l) => {
                    out.push(1);
                    l.stats.encode(out);
                    put32(out, l.depth);
                    put64(out, l.last_attempt);
                    match &l.splitters {
                        None => out.push(0),
                        Some(ss) => {
                            out.push(1);
                            put32(out, ss.len() as u32);
                            for s in ss {
                                put32(out, s.feature);
                                s.record.encode(out);
                            }
                        }
                    }
                    if let Some(m) = &l.model {
                        m.encode(out);
                    }
                    if self.leaves == LeafPrediction::Adaptive {
                        put64(out, l.errors[0]);
                        put64(out, l.errors[1]);
                    }
                }
            }
        }
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<HoeffdingTree, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != TREE_VERSION {
            return Err(DecodeError(format!(
                "a Hoeffding tree of format {version}, this build reads {TREE_VERSION}"
            )));
        }
        let learned = r.u64()?;
        let slots = r.u32()?;
        let leaves = match r.u8()? {
            0 => LeafPrediction::Mean,
            1 => LeafPrediction::Model,
            2 => LeafPrediction::Adaptive,
            v => return Err(DecodeError(format!("unknown leaf prediction {v}"))),
        };
        let len = r.u32()? as usize;
        let broken = |what: &str| DecodeError(format!("a Hoeffding tree's {what} is broken"));
        let mut nodes = Vec::with_capacity(len.min(r.remaining() / 29));
        for i in 0..len {
            let node = match r.u8()? {
                0 => {
                    let b = Branch {
                        feature: r.u32()?,
                        threshold: r.f64()?,
                        weight: r.f64()?,
                        left: r.u32()?,
                        right: r.u32()?,
                    };
                    let child = |c: u32| c as usize > i && (c as usize) < len;
                    if b.feature >= slots || !child(b.left) || !child(b.right) {
                        return Err(broken("branch"));
                    }
                    Node::Branch(b)
                }
                1 => {
                    let stats = Var::read(&mut r)?;
                    let depth = r.u32()?;
                    let last_attempt = r.f64()?;
                    let splitters = match r.u8()? {
                        0 => None,
                        1 => {
                            let k = r.u32()? as usize;
                            let mut ss = Vec::with_capacity(k.min(r.remaining() / 12));
                            for _ in 0..k {
                                let feature = r.u32()?;
                                if feature >= slots
                                    || ss.iter().any(|s: &Splitter| s.feature == feature)
                                {
                                    return Err(broken("leaf"));
                                }
                                ss.push(Splitter {
                                    feature,
                                    record: Ebst::read(&mut r)?,
                                });
                            }
                            Some(ss)
                        }
                        _ => return Err(broken("leaf")),
                    };
                    let model = match leaves {
                        LeafPrediction::Mean => None,
                        _ => {
                            let m = Linear::read(&mut r)?;
                            if m.slots() != slots as usize {
                                return Err(broken("leaf model"));
                            }
                            Some(Box::new(m))
                        }
                    };
                    let errors = match leaves {
                        LeafPrediction::Adaptive => [r.f64()?, r.f64()?],
                        _ => [0.0; 2],
                    };
                    Node::Leaf(Leaf {
                        stats,
                        depth,
                        last_attempt,
                        splitters,
                        model,
                        errors,
                    })
                }
                _ => return Err(broken("node")),
            };
            nodes.push(node);
        }
        r.end()?;
        if nodes.is_empty() {
            return Err(broken("root"));
        }
        Ok(HoeffdingTree {
            nodes,
            slots,
            leaves,
            learned,
            scratch: Scratch::default(),
        })
    }
}

/// The format of a tree's state.
const TREE_VERSION: u8 = 1;

#[cfg(test)]
mod tests {
    use super::super::Learner;
    use super::*;
    use crate::spec::{ModelSpec, OnlineSpec, Provider};
    use std::collections::BTreeMap;

    fn spec(extra: &[(&str, &str)]) -> OnlineSpec {
        let mut o: BTreeMap<String, String> = [
            ("provider", "online"),
            ("algorithm", "hoeffding_tree_regressor"),
            ("label", "y"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            o.insert(k.to_string(), v.to_string());
        }
        match ModelSpec::from_options(&o).unwrap().provider {
            Provider::Online(s) => s,
            Provider::Onnx(_) => panic!("online"),
        }
    }

    /// A uniform number in [0, 1) from a splitmix64 sequence.
    fn uniform(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / 2f64.powi(64)
    }

    fn tree(l: &Learner) -> &HoeffdingTree {
        match l {
            Learner::HoeffdingTree(t) => t,
            Learner::Linear(_) => panic!("a tree"),
        }
    }

    /// y steps from 0 to 10 at x0 = 6; x1 is noise. The root splits at the first attempt
    /// (row 200, the grace period), not before, on x0 near 6.
    #[test]
    fn a_leaf_splits_after_the_grace_period_on_the_feature_that_explains_the_label() {
        let s = spec(&[("leaf-prediction", "mean")]);
        let mut m = Learner::new(&s, 2);
        let mut x = Features::with_slots(2);
        let mut seed = 7;
        for i in 0..200 {
            let x0 = uniform(&mut seed) * 10.0;
            x.set(0, Some(x0));
            x.set(1, Some(uniform(&mut seed) * 10.0));
            let y = if x0 > 6.0 { 10.0 } else { 0.0 } + uniform(&mut seed) * 0.1;
            assert_eq!(tree(&m).leaves(), 1, "no split before row 200 (row {i})");
            m.learn(&s, &x, y);
        }
        let t = tree(&m);
        assert_eq!(t.leaves(), 2);
        let (feature, threshold) = t.root_split().unwrap();
        assert_eq!(feature, 0);
        assert!((5.5..=6.5).contains(&threshold), "{threshold}");
        x.set(0, Some(9.0));
        assert!((m.predict(&s, &x).value - 10.05).abs() < 0.1);
        x.set(0, Some(1.0));
        assert!(m.predict(&s, &x).value.abs() < 0.1);
        // a missing feature goes down the side that learned more rows (x0 ≤ 6: about 60%)
        x.set(0, None);
        assert!(m.predict(&s, &x).value.abs() < 0.1);
        assert_eq!(m.predict(&s, &x).learned, 200);
    }

    /// Nothing to explain, nothing split: a constant label (every merit 0), or a noisy label
    /// with features that all round to one decimal value (one split point, one side empty).
    /// river does split on noisy labels with features that vary: its ratio test does not hold
    /// noise back.
    #[test]
    fn no_split_where_nothing_can_explain_the_label() {
        let s = spec(&[("leaf-prediction", "mean"), ("grace-period", "50")]);
        let mut seed = 11;
        let mut x = Features::with_slots(2);
        let mut constant = Learner::new(&s, 2);
        let mut unresolved = Learner::new(&s, 2);
        for _ in 0..3000 {
            x.set(0, Some(uniform(&mut seed) * 100.0));
            x.set(1, Some(uniform(&mut seed)));
            constant.learn(&s, &x, 4.0);
            x.set(0, Some(3.0 + uniform(&mut seed) * 0.04));
            x.set(1, Some(-1.0 - uniform(&mut seed) * 0.04));
            unresolved.learn(&s, &x, uniform(&mut seed) * 100.0);
        }
        assert_eq!(tree(&constant).leaves(), 1);
        assert_eq!(constant.predict(&s, &x).value, 4.0);
        assert_eq!(tree(&unresolved).leaves(), 1);
    }

    /// A staircase the tree would cut again and again stops at `max-depth`.
    #[test]
    fn max_depth_is_respected() {
        let learn = |s: &OnlineSpec| {
            let mut m = Learner::new(s, 1);
            let mut x = Features::with_slots(1);
            let mut seed = 3;
            for _ in 0..20_000 {
                let v = uniform(&mut seed) * 16.0;
                x.set(0, Some(v));
                m.learn(s, &x, v.floor() * 3.0);
            }
            m
        };
        let free = learn(&spec(&[
            ("leaf-prediction", "mean"),
            ("grace-period", "50"),
        ]));
        assert!(tree(&free).depth() > 2, "{}", tree(&free).depth());
        let s = spec(&[
            ("leaf-prediction", "mean"),
            ("grace-period", "50"),
            ("max-depth", "2"),
        ]);
        let capped = learn(&s);
        let t = tree(&capped);
        assert_eq!(t.depth(), 2);
        assert_eq!(t.leaves(), 4);
        // leaves at the cap keep no records
        assert!(t.nodes.iter().all(|n| match n {
            Node::Leaf(l) => l.splitters.is_none(),
            Node::Branch(_) => true,
        }));
        let root_only = learn(&spec(&[("leaf-prediction", "mean"), ("max-depth", "0")]));
        assert_eq!(tree(&root_only).leaves(), 1);
    }

    /// Every leaf kind: the state written and read back is the same value, predicts the same
    /// bits and goes on learning the same; a damaged state is refused.
    #[test]
    fn state_roundtrips_exactly() {
        for leaves in ["mean", "model", "adaptive"] {
            let s = spec(&[("leaf-prediction", leaves), ("grace-period", "40")]);
            let mut m = Learner::new(&s, 3);
            let mut x = Features::with_slots(3);
            let mut seed = 5;
            let row = |x: &mut Features, seed: &mut u64| {
                let a = uniform(seed);
                let b = uniform(seed);
                x.set(0, (a > 0.1).then_some(a * 2.0));
                x.set(1, Some(b));
                x.set(2, Some(if uniform(seed) > 0.5 { 1.0 } else { 0.0 }));
                3.0 * a - b + uniform(seed) * 0.2
            };
            for _ in 0..1500 {
                let y = row(&mut x, &mut seed);
                m.learn(&s, &x, y);
            }
            assert!(tree(&m).leaves() > 2, "{leaves}: it grew");
            let mut bytes = Vec::new();
            m.encode(&mut bytes);
            let mut back = Learner::decode(&bytes).unwrap();
            assert_eq!(back, m, "{leaves}");
            assert_eq!(back.slots(), 3);
            assert_eq!(back.learned(), 1500);
            for _ in 0..500 {
                let y = row(&mut x, &mut seed);
                let (p, q) = (m.predict(&s, &x), back.predict(&s, &x));
                assert_eq!(p.value.to_bits(), q.value.to_bits(), "{leaves}");
                m.learn(&s, &x, y);
                back.learn(&s, &x, y);
            }
            assert_eq!(back, m);
            for cut in [1, 2, bytes.len() / 2, bytes.len() - 1] {
                assert!(
                    Learner::decode(&bytes[..cut]).is_err(),
                    "{leaves}: cut at {cut}"
                );
            }
            let mut newer = bytes.clone();
            newer[1] = 99;
            let e = Learner::decode(&newer).unwrap_err();
            assert!(e.to_string().contains("format 99"), "{e}");
        }
    }
}
