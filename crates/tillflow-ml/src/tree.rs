//! ONNX-ML's `TreeEnsembleRegressor` (ai.onnx.ml, the operator scikit-learn's gradient
//! boosting and random forests export to through skl2onnx), which tract does not run, as a
//! tract operator of our own: registered with tract's ONNX loader, so a model file holding it
//! loads and optimizes like any other. What it computes follows the operator's specification:
//! each tree is walked from its root (its first node in the file, as onnxruntime takes it) by comparing the input's `nodes_featureids`
//! feature with `nodes_values` under `nodes_modes` (`BRANCH_LEQ` … ; a NaN takes the true branch where
//! `nodes_missing_value_tracks_true` says so, or where the comparison holds, as `BRANCH_NEQ`'s); the reached leaf adds its `target_weights` to their
//! targets; trees combine by `aggregate_function` (SUM, AVERAGE, MIN, MAX) and `base_values`
//! are added. Inputs are compared as f32 (onnxruntime's thresholds are f32); scores add up in
//! f64 and leave as f32.

use std::collections::HashMap;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

/// The most targets (outputs per row) a file may declare.
const MAX_TARGETS: usize = 1 << 12;

/// Registers [`TreeRegressor`] as `TreeEnsembleRegressor`.
pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleRegressor", build);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    feature: usize,
    value: f32,
    mode: Mode,
    yes: usize,
    no: usize,
    nan_yes: bool,
    /// This node's (target, weight) pairs in `weights`, for a leaf.
    leaf: std::ops::Range<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// The ensemble, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeRegressor {
    nodes: Vec<Node>,
    roots: Vec<usize>,
    weights: Vec<(usize, f64)>,
    targets: usize,
    aggregate: Aggregate,
    base: Vec<f64>,
    features: usize,
}

fn ints(node: &NodeProto, name: &str) -> TractResult<Vec<i64>> {
    Ok(node
        .get_attr_opt_slice::<i64>(name)?
        .unwrap_or(&[])
        .to_vec())
}

fn index(v: i64, what: &str) -> TractResult<usize> {
    usize::try_from(v).map_err(|_| format_err!("TreeEnsembleRegressor: negative {what}: {v}"))
}

fn build(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(TreeRegressor::from_node(node)?), vec![]))
}

impl TreeRegressor {
    fn from_node(node: &NodeProto) -> TractResult<TreeRegressor> {
        let tree_ids = ints(node, "nodes_treeids")?;
        let node_ids = ints(node, "nodes_nodeids")?;
        let feature_ids = ints(node, "nodes_featureids")?;
        let yes_ids = ints(node, "nodes_truenodeids")?;
        let no_ids = ints(node, "nodes_falsenodeids")?;
        let values: Vec<f32> = node.get_attr_opt_vec("nodes_values")?.unwrap_or_default();
        let modes: Vec<String> = node
            .get_attr_opt_tvec::<&str>("nodes_modes")?
            .map(|v| v.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        let nan_yes = ints(node, "nodes_missing_value_tracks_true")?;
        let n = tree_ids.len();
        if n == 0
            || [
                node_ids.len(),
                feature_ids.len(),
                yes_ids.len(),
                no_ids.len(),
                values.len(),
                modes.len(),
            ]
            .iter()
            .any(|&l| l != n)
            || (!nan_yes.is_empty() && nan_yes.len() != n)
        {
            bail!(
                "TreeEnsembleRegressor: the nodes_* attributes are missing or of different lengths"
            );
        }
        let post: Option<&str> = node.get_attr_opt("post_transform")?;
        if post.is_some_and(|p| p != "NONE") {
            bail!(
                "TreeEnsembleRegressor: post_transform {:?} is not supported (NONE)",
                post
            );
        }
        let aggregate = match node
            .get_attr_opt::<&str>("aggregate_function")?
            .unwrap_or("SUM")
        {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => bail!("TreeEnsembleRegressor: aggregate_function {other} is not supported"),
        };
        let targets = index(
            node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1),
            "n_targets",
        )?;
        if targets == 0 || targets > MAX_TARGETS {
            bail!("TreeEnsembleRegressor: n_targets {targets} is not from 1 to {MAX_TARGETS}");
        }
        // (tree, node id) -> position
        let mut at: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
        for i in 0..n {
            at.insert((tree_ids[i], node_ids[i]), i);
        }
        let find = |tree: i64, id: i64| {
            at.get(&(tree, id))
                .copied()
                .ok_or_else(|| format_err!("TreeEnsembleRegressor: tree {tree} has no node {id}"))
        };
        let mut nodes = Vec::with_capacity(n);
        let mut features = 0;
        for i in 0..n {
            let mode = match modes[i].as_str() {
                "BRANCH_LEQ" => Mode::Leq,
                "BRANCH_LT" => Mode::Lt,
                "BRANCH_GTE" => Mode::Gte,
                "BRANCH_GT" => Mode::Gt,
                "BRANCH_EQ" => Mode::Eq,
                "BRANCH_NEQ" => Mode::Neq,
                "LEAF" => Mode::Leaf,
                other => bail!("TreeEnsembleRegressor: node mode {other} is not supported"),
            };
            let (yes, no) = if mode == Mode::Leaf {
                (0, 0)
            } else {
                (
                    find(tree_ids[i], yes_ids[i])?,
                    find(tree_ids[i], no_ids[i])?,
                )
            };
            let feature = index(feature_ids[i], "feature id")?;
            if mode != Mode::Leaf {
                features = features.max(feature + 1);
            }
            nodes.push(Node {
                feature,
                value: values[i],
                mode,
                yes,
                no,
                nan_yes: nan_yes.get(i).is_some_and(|v| *v != 0),
                leaf: 0..0,
            });
        }
        // each tree's root is its first node in the file (as onnxruntime takes it)
        let mut roots: Vec<usize> = Vec::new();
        let mut seen: HashMap<i64, ()> = HashMap::new();
        for (i, t) in tree_ids.iter().enumerate() {
            if seen.insert(*t, ()).is_none() {
                roots.push(i);
            }
        }
        // the leaves' weights, grouped by leaf
        let t_trees = ints(node, "target_treeids")?;
        let t_nodes = ints(node, "target_nodeids")?;
        let t_ids = ints(node, "target_ids")?;
        let t_weights: Vec<f32> = node.get_attr_opt_vec("target_weights")?.unwrap_or_default();
        let m = t_trees.len();
        if m == 0 || t_nodes.len() != m || t_ids.len() != m || t_weights.len() != m {
            bail!("TreeEnsembleRegressor: the target_* attributes are missing or of different lengths");
        }
        let mut by_leaf: Vec<(usize, usize, f64)> = Vec::with_capacity(m);
        for j in 0..m {
            let leaf = find(t_trees[j], t_nodes[j])?;
            let target = index(t_ids[j], "target id")?;
            if target >= targets {
                bail!("TreeEnsembleRegressor: target id {target} is not below n_targets {targets}");
            }
            by_leaf.push((leaf, target, f64::from(t_weights[j])));
        }
        by_leaf.sort_by_key(|e| e.0);
        let mut weights = Vec::with_capacity(m);
        let mut j = 0;
        while j < by_leaf.len() {
            let leaf = by_leaf[j].0;
            let start = weights.len();
            while j < by_leaf.len() && by_leaf[j].0 == leaf {
                weights.push((by_leaf[j].1, by_leaf[j].2));
                j += 1;
            }
            nodes[leaf].leaf = start..weights.len();
        }
        let base: Vec<f64> = node
            .get_attr_opt_vec::<f32>("base_values")?
            .filter(|v| !v.is_empty())
            .map(|v| v.into_iter().map(f64::from).collect())
            .unwrap_or_else(|| vec![0.0; targets]);
        if base.len() != targets {
            bail!(
                "TreeEnsembleRegressor: {} base_values for {targets} targets",
                base.len()
            );
        }
        Ok(TreeRegressor {
            nodes,
            roots,
            weights,
            targets,
            aggregate,
            base,
            features,
        })
    }

    /// The leaf `x` reaches from `root`.
    fn leaf(&self, root: usize, x: &[f32]) -> &Node {
        let mut n = &self.nodes[root];
        // a malformed tree with a cycle stops after as many steps as there are nodes
        for _ in 0..self.nodes.len() {
            let v = x.get(n.feature).copied().unwrap_or(f32::NAN);
            // as onnxruntime: the comparison, or a missing value that tracks true (a NaN
            // compares false, but unequal)
            let cmp = match n.mode {
                Mode::Leaf => return n,
                Mode::Leq => v <= n.value,
                Mode::Lt => v < n.value,
                Mode::Gte => v >= n.value,
                Mode::Gt => v > n.value,
                Mode::Eq => v == n.value,
                Mode::Neq => v != n.value,
            };
            let yes = cmp || (v.is_nan() && n.nan_yes);
            n = &self.nodes[if yes { n.yes } else { n.no }];
        }
        n
    }

    /// Scores of one row into `out` (`targets` long).
    pub fn score(&self, x: &[f32], out: &mut [f64]) {
        let start = match self.aggregate {
            Aggregate::Sum | Aggregate::Average => 0.0,
            Aggregate::Min => f64::INFINITY,
            Aggregate::Max => f64::NEG_INFINITY,
        };
        out.iter_mut().for_each(|o| *o = start);
        for &root in &self.roots {
            let leaf = self.leaf(root, x);
            for &(t, w) in &self.weights[leaf.leaf.clone()] {
                out[t] = match self.aggregate {
                    Aggregate::Sum | Aggregate::Average => out[t] + w,
                    Aggregate::Min => out[t].min(w),
                    Aggregate::Max => out[t].max(w),
                };
            }
        }
        let trees = self.roots.len().max(1) as f64;
        for (o, b) in out.iter_mut().zip(&self.base) {
            if self.aggregate == Aggregate::Average {
                *o /= trees;
            }
            if !o.is_finite() {
                *o = 0.0;
            }
            *o += b;
        }
    }
}

impl Expansion for TreeRegressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.targets.to_dim())?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut x = inputs[0];
        if model.outlet_fact(x)?.datum_type != f32::datum_type() {
            x = model.wire_node(
                format!("{prefix}.to_f32"),
                tract_onnx::tract_hir::tract_core::ops::cast::cast(f32::datum_type()),
                &[x],
            )?[0];
        }
        model.wire_node(prefix, TreeOp(std::sync::Arc::new(self.clone())), &[x])
    }
}

/// The typed operator evaluating a [`TreeRegressor`] on a batch `[N, features]`.
#[derive(Debug, Clone, PartialEq)]
struct TreeOp(std::sync::Arc<TreeRegressor>);

// tract compares operators for equality (a marker: the trees' floats are never NaN-compared
// in a way that matters for it)
impl Eq for TreeOp {}

impl Op for TreeOp {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    op_as_typed_op!();
}

impl EvalOp for TreeOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape().to_vec();
        let (rows, width) = match shape.as_slice() {
            [r, w] => (*r, *w),
            [r] => (*r, 1),
            other => bail!("TreeEnsembleRegressor: input of shape {other:?}, expected [N, F]"),
        };
        if width < self.0.features {
            bail!(
                "TreeEnsembleRegressor: rows of {width} features, the trees read {}",
                self.0.features
            );
        }
        let plain = input.try_as_plain_ram()?;
        let x = plain.as_slice::<f32>()?;
        let targets = self.0.targets;
        let cells = rows.checked_mul(targets).ok_or_else(|| {
            format_err!("TreeEnsembleRegressor: {rows} rows of {targets} targets")
        })?;
        let mut out = vec![0f32; cells];
        let mut scores = vec![0f64; targets];
        for r in 0..rows {
            self.0.score(&x[r * width..(r + 1) * width], &mut scores);
            for (o, s) in out[r * targets..(r + 1) * targets].iter_mut().zip(&scores) {
                *o = *s as f32;
            }
        }
        Ok(tvec!(tensor1(&out)
            .into_shape(&[rows, targets])?
            .into_tvalue()))
    }
}

impl TypedOp for TreeOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let rows = inputs[0].shape[0].clone();
        Ok(tvec!(f32::fact([rows, self.0.targets.to_dim()])))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(feature: usize, value: f32, mode: Mode, yes: usize, no: usize) -> Node {
        Node {
            feature,
            value,
            mode,
            yes,
            no,
            nan_yes: false,
            leaf: 0..0,
        }
    }

    /// Two stumps: x0 <= 1 → 10 else 20; x1 > 5 → 1 else 2 (a NaN in x1 goes "yes").
    fn stumps(aggregate: Aggregate) -> TreeRegressor {
        let mut nodes = vec![
            node(0, 1.0, Mode::Leq, 1, 2),
            node(0, 0.0, Mode::Leaf, 0, 0),
            node(0, 0.0, Mode::Leaf, 0, 0),
            node(1, 5.0, Mode::Gt, 4, 5),
            node(0, 0.0, Mode::Leaf, 0, 0),
            node(0, 0.0, Mode::Leaf, 0, 0),
        ];
        nodes[3].nan_yes = true;
        for (i, leaf) in [1, 2, 4, 5].into_iter().enumerate() {
            nodes[leaf].leaf = i..i + 1;
        }
        TreeRegressor {
            nodes,
            roots: vec![0, 3],
            weights: vec![(0, 10.0), (0, 20.0), (0, 1.0), (0, 2.0)],
            targets: 1,
            aggregate,
            base: vec![0.5],
            features: 2,
        }
    }

    #[test]
    fn trees_walk_by_their_modes_and_combine_by_their_aggregate() {
        let mut out = [0.0];
        let t = stumps(Aggregate::Sum);
        t.score(&[1.0, 6.0], &mut out);
        assert_eq!(out[0], 10.0 + 1.0 + 0.5, "x0 <= 1 (equal), x1 > 5");
        t.score(&[1.5, 5.0], &mut out);
        assert_eq!(out[0], 20.0 + 2.0 + 0.5);
        t.score(&[0.0, f32::NAN], &mut out);
        assert_eq!(out[0], 10.0 + 1.0 + 0.5, "a missing x1 tracks true");
        t.score(&[f32::NAN, 0.0], &mut out);
        assert_eq!(out[0], 20.0 + 2.0 + 0.5, "a missing x0 goes false");
        stumps(Aggregate::Average).score(&[1.5, 6.0], &mut out);
        assert_eq!(out[0], (20.0 + 1.0) / 2.0 + 0.5);
        stumps(Aggregate::Max).score(&[1.5, 6.0], &mut out);
        assert_eq!(out[0], 20.0 + 0.5);
        stumps(Aggregate::Min).score(&[1.5, 6.0], &mut out);
        assert_eq!(out[0], 1.0 + 0.5);
    }
}
