//! A Hoeffding tree leaf's record of one numeric feature: river's truncated extended binary
//! search tree (`tree.splitter.TEBSTSplitter`, `digits` = 1). Each value is rounded to one
//! decimal as Python's `round(x, 1)` does and kept as a node of a binary search tree; a node
//! holds the label statistics of its own rows and of those in its left subtree (values at most
//! its own), so an in-order walk that carries the statistics of everything to the left gives
//! each split point's "at most" side, and the leaf's statistics minus those give the other.
//!
//! What this module owns, with river's rules and river's order of floating-point operations:
//! inserting a row, finding the split point with the best variance reduction, and river's
//! memory management after a failed split attempt (FIMT-DD's removal of split points much worse
//! than the best, only where a node's whole subtree is bad). The nodes live in one `Vec`, a
//! child always after its parent; removing nodes compacts it.

use super::stats::Var;
use super::{DecodeError, Reader};

/// No node.
pub(crate) const NONE: u32 = u32::MAX;

/// A split point: its merit, threshold and the label statistics of its two sides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Split {
    /// The variance reduction.
    pub merit: f64,
    /// Rows whose (unrounded) value is at most this go left.
    pub threshold: f64,
    /// The left side's statistics.
    pub left: Var,
    /// The right side's (the leaf's minus the left's).
    pub right: Var,
}

/// river's `VarianceReductionSplitCriterion`: the leaf's variance less each side's weighted by
/// its share of the leaf's rows; 0 when a side has fewer than `min_samples_split` rows.
pub(crate) fn merit(pre: &Var, left: &Var, right: &Var, min_samples_split: f64) -> f64 {
    if left.n >= min_samples_split && right.n >= min_samples_split {
        let mut vr = pre.variance();
        vr -= left.n / pre.n * left.variance();
        vr -= right.n / pre.n * right.variance();
        vr
    } else {
        0.0
    }
}

/// A split point's merit and sides: the node's statistics plus those to its left (`aux`).
fn evaluate(node: &Var, aux: &Var, pre: &Var, min_samples_split: f64) -> (f64, Var, Var) {
    let left = node.plus(aux);
    let right = pre.minus(&left);
    (merit(pre, &left, &right, min_samples_split), left, right)
}

/// `round(x, 1)` as Python computes it: the multiple of 0.1 nearest to x's exact binary value
/// (ties to even), as the double nearest to it.
pub(crate) fn round1(x: f64) -> f64 {
    const FAST: f64 = 281_474_976_710_656.0; // 2^48: x·10 below 2^52
    const INTEGRAL: f64 = 9_007_199_254_740_992.0; // 2^53: every double is an integer
    if !x.is_finite() || x.abs() >= INTEGRAL {
        return x;
    }
    if x.abs() < FAST {
        let p = x * 10.0;
        let e = x.mul_add(10.0, -p); // x·10 = p + e exactly
        let k = p.round_ties_even();
        let k = match p - k {
            // p is halfway between integers: the rounding error decides, 0 a true tie
            0.5 if e > 0.0 => k + 1.0,
            -0.5 if e < 0.0 => k - 1.0,
            _ => k,
        };
        return k / 10.0; // k is exact: the division rounds once, as Python's strtod
    }
    // 2^48 ≤ |x| < 2^53: x is a multiple of 1/16, so x·10 = 5·(16x)/8 in integers
    let sixteenths = (x * 16.0) as i64;
    let num = 5 * sixteenths;
    let (mut k, r) = (num.div_euclid(8), num.rem_euclid(8));
    if r > 4 || (r == 4 && k % 2 != 0) {
        k += 1;
    }
    format!("{k}e-1").parse().unwrap_or(x)
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    key: f64,
    /// The labels of this node's rows and of its left subtree's.
    stats: Var,
    left: u32,
    right: u32,
}

/// One feature's E-BST.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ebst {
    nodes: Vec<Node>,
    root: u32,
}

/// A step of a walk over the E-BST, kept on a reusable stack.
pub(crate) type Step = (u32, u8);

impl Ebst {
    /// An empty record.
    pub fn new() -> Ebst {
        Ebst {
            nodes: Vec::new(),
            root: NONE,
        }
    }

    /// Nodes held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    fn push(&mut self, key: f64, y: f64) -> u32 {
        let mut stats = Var::default();
        stats.update(y);
        self.nodes.push(Node {
            key,
            stats,
            left: NONE,
            right: NONE,
        });
        (self.nodes.len() - 1) as u32
    }

    /// Learns a row whose feature is `value` and label `y`.
    pub fn insert(&mut self, value: f64, y: f64) {
        let key = round1(value);
        if self.root == NONE {
            self.root = self.push(key, y);
            return;
        }
        let mut at = self.root as usize;
        loop {
            let node = &mut self.nodes[at];
            if key == node.key {
                node.stats.update(y);
                return;
            }
            let go_left = key < node.key;
            if go_left {
                node.stats.update(y);
            }
            let next = if go_left { node.left } else { node.right };
            if next == NONE {
                let new = self.push(key, y);
                let node = &mut self.nodes[at];
                if go_left {
                    node.left = new;
                } else {
                    node.right = new;
                }
                return;
            }
            at = next as usize;
        }
    }

    /// The best split point for a leaf whose labels are `pre`: the first, in value order, of
    /// those with the greatest merit (None when nothing was recorded).
    pub fn best_split(
        &self,
        pre: &Var,
        min_samples_split: f64,
        stack: &mut Vec<Step>,
    ) -> Option<Split> {
        const DESCEND: u8 = 0;
        const VISIT: u8 = 1;
        const ADD: u8 = 2;
        const SUBTRACT: u8 = 3;
        if self.root == NONE {
            return None;
        }
        // in order; `aux` gathers the nodes whose right subtree is being walked (river keeps
        // it by adding and subtracting, and so does this, for river's floats)
        let mut aux = Var::default();
        let mut best: Option<Split> = None;
        stack.clear();
        stack.push((self.root, DESCEND));
        while let Some((i, step)) = stack.pop() {
            let node = &self.nodes[i as usize];
            match step {
                DESCEND => {
                    if node.right != NONE {
                        stack.push((i, SUBTRACT));
                        stack.push((node.right, DESCEND));
                        stack.push((i, ADD));
                    }
                    stack.push((i, VISIT));
                    if node.left != NONE {
                        stack.push((node.left, DESCEND));
                    }
                }
                ADD => aux.add(&node.stats),
                SUBTRACT => aux.subtract(&node.stats),
                _ => {
                    let (m, left, right) = evaluate(&node.stats, &aux, pre, min_samples_split);
                    if m > best.map_or(f64::NEG_INFINITY, |b| b.merit) {
                        best = Some(Split {
                            merit: m,
                            threshold: node.key,
                            left,
                            right,
                        });
                    }
                }
            }
        }
        best
    }

    /// river's memory management after a failed split attempt whose best merit was `best`,
    /// the second's ratio to it `ratio` and the Hoeffding bound `bound`: a node whose subtrees
    /// are gone (or never were) is removed when its merit relative to the best is below
    /// `ratio − 2·bound`. The statistics of the nodes that stay are kept as they are.
    pub fn prune(
        &mut self,
        pre: &Var,
        min_samples_split: f64,
        ratio: f64,
        best: f64,
        bound: f64,
        stack: &mut Vec<Step>,
    ) {
        // a frame's phase: 0 new, 1 left child walked, 2 right child walked, 3 to evaluate
        if self.root == NONE {
            return;
        }
        let floor = ratio - 2.0 * bound;
        let mut aux = Var::default();
        let mut removed_any = false;
        // the verdict of the last subtree finished: removed (or absent)
        let mut gone = false;
        stack.clear();
        stack.push((self.root, 0));
        while let Some(&(i, phase)) = stack.last() {
            let top = stack.len() - 1;
            let node = self.nodes[i as usize];
            match phase {
                0 => {
                    stack[top].1 = 1;
                    if node.left != NONE {
                        stack.push((node.left, 0));
                    } else {
                        gone = true;
                    }
                    continue;
                }
                1 => {
                    if !gone {
                        stack.pop();
                        continue;
                    }
                    if node.right != NONE {
                        aux.add(&node.stats);
                        stack[top].1 = 2;
                        stack.push((node.right, 0));
                    } else {
                        stack[top].1 = 3;
                    }
                    continue;
                }
                2 => aux.subtract(&node.stats),
                _ => {}
            }
            stack.pop();
            if gone {
                let (m, _, _) = evaluate(&node.stats, &aux, pre, min_samples_split);
                if m / best < floor {
                    match stack.last() {
                        Some(&(p, 1)) => self.nodes[p as usize].left = NONE,
                        Some(&(p, _)) => self.nodes[p as usize].right = NONE,
                        None => self.root = NONE,
                    }
                    removed_any = true;
                    continue;
                }
            }
            gone = false;
        }
        if removed_any {
            self.compact();
        }
    }

    /// Drops the nodes no longer reachable, keeping the others in order (a child after its
    /// parent).
    fn compact(&mut self) {
        let mut index = vec![NONE; self.nodes.len()];
        if self.root != NONE {
            index[self.root as usize] = 0;
        }
        let mut kept = 0u32;
        for i in 0..self.nodes.len() {
            if index[i] == NONE {
                continue;
            }
            index[i] = kept;
            kept += 1;
            let n = self.nodes[i];
            for c in [n.left, n.right] {
                if c != NONE {
                    index[c as usize] = 0;
                }
            }
        }
        let nodes = std::mem::take(&mut self.nodes);
        self.nodes = Vec::with_capacity(kept as usize);
        for (i, mut n) in nodes.into_iter().enumerate() {
            if index[i] == NONE {
                continue;
            }
            for c in [&mut n.left, &mut n.right] {
                if *c != NONE {
                    *c = index[*c as usize];
                }
            }
            self.nodes.push(n);
        }
        self.root = if self.root == NONE { NONE } else { 0 };
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.root.to_le_bytes());
        out.extend_from_slice(&(self.nodes.len() as u32).to_le_bytes());
        for n in &self.nodes {
            out.extend_from_slice(&n.key.to_bits().to_le_bytes());
            n.stats.encode(out);
            out.extend_from_slice(&n.left.to_le_bytes());
            out.extend_from_slice(&n.right.to_le_bytes());
        }
    }

    pub(super) fn read(r: &mut Reader) -> Result<Ebst, DecodeError> {
        let root = r.u32()?;
        let len = r.u32()? as usize;
        let mut nodes = Vec::with_capacity(len.min(r.remaining() / 40));
        for _ in 0..len {
            nodes.push(Node {
                key: r.f64()?,
                stats: Var::read(r)?,
                left: r.u32()?,
                right: r.u32()?,
            });
        }
        let ok = |c: u32, after: usize| c == NONE || (c as usize > after && (c as usize) < len);
        if !(root == NONE || (root as usize) < len)
            || nodes
                .iter()
                .enumerate()
                .any(|(i, n)| !ok(n.left, i) || !ok(n.right, i))
        {
            return Err(DecodeError("a split record's links are broken".into()));
        }
        Ok(Ebst { nodes, root })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round1_is_pythons_round_to_one_decimal() {
        // (x, round(x, 1)) as bits, from CPython 3.11
        let cases: [(u64, u64); 31] = [
            (0x3fd0000000000000, 0x3fc999999999999a), // 0.25 -> 0.2
            (0x3fd6666666666666, 0x3fd3333333333333), // 0.35 -> 0.3
            (0x3fc3333333333333, 0x3fb999999999999a), // 0.15 -> 0.1
            (0x3ff0cccccccccccd, 0x3ff199999999999a), // 1.05 -> 1.1
            (0x4028b33333333333, 0x402899999999999a), // 12.35 -> 12.3
            (0xbfa47ae147ae147b, 0x8000000000000000), // -0.04 -> -0.0
            (0x4005666666666666, 0x400599999999999a), // 2.675 -> 2.7
            (0x3fa999999999999a, 0x3fb999999999999a), // 0.05 -> 0.1
            (0x3fdccccccccccccd, 0x3fe0000000000000), // 0.45 -> 0.5
            (0xbfd0000000000000, 0xbfc999999999999a), // -0.25 -> -0.2
            (0xbfd6666666666666, 0xbfd3333333333333), // -0.35 -> -0.3
            (0x3fe8000000000000, 0x3fe999999999999a), // 0.75 -> 0.8
            (0x3ff4000000000000, 0x3ff3333333333333), // 1.25 -> 1.2
            (0x400b99999999999a, 0x400c000000000000), // 3.45 -> 3.5
            (0x4034f33333333333, 0x4034e66666666666), // 20.95 -> 20.9
            (0x401f666666666666, 0x401f333333333333), // 7.85 -> 7.8
            (0x42d6bcc41e900010, 0x42d6bcc41e90000d), // 1e14+0.25
            (0x42f0000000000004, 0x42f0000000000003), // 2^48+0.25
            (0x42f000000000000c, 0x42f000000000000d), // 2^48+0.75
            (0x4310000000000002, 0x4310000000000002), // 2^50+0.5
            (0x432550f7dca70000, 0x432550f7dca70000), // 3e15
            (0xc300000000000003, 0xc300000000000003), // -(2^49)-0.375
            (0x4023fae147ae147b, 0x4024000000000000), // 9.99 -> 10.0
            (0xc023e66666666666, 0xc023cccccccccccd), // -9.95 -> -9.9
            (0x3fd5555555555555, 0x3fd3333333333333), // 1/3 -> 0.3
            (0x3fe5555555555555, 0x3fe6666666666666), // 2/3 -> 0.7
            (0x40fe240c9fbe76c9, 0x40fe240ccccccccd), // 123456.789
            (0x0, 0x0),
            (0x8000000000000000, 0x8000000000000000),
            (0x1, 0x0),                               // 5e-324 -> 0.0
            (0x7e37e43c8800759c, 0x7e37e43c8800759c), // 1e300
        ];
        for (x, want) in cases {
            let got = round1(f64::from_bits(x));
            assert_eq!(got.to_bits(), want, "round({}, 1)", f64::from_bits(x));
        }
    }

    /// Values 0..20 with y = 1 below 10 and 5 from 10: the best split is at 9 (rounded).
    #[test]
    fn the_best_split_separates_the_two_levels_and_pruning_keeps_it() {
        let mut e = Ebst::new();
        let mut pre = Var::default();
        for i in [
            7, 3, 15, 11, 0, 19, 9, 10, 4, 13, 1, 18, 6, 12, 2, 16, 8, 14, 5, 17,
        ] {
            let x = i as f64 + 0.04;
            let y = if i < 10 { 1.0 } else { 5.0 };
            e.insert(x, y);
            pre.update(y);
        }
        assert_eq!(e.len(), 20);
        let mut stack = Vec::new();
        let s = e.best_split(&pre, 5.0, &mut stack).unwrap();
        assert_eq!(s.threshold, 9.0);
        assert_eq!((s.left.n, s.right.n), (10.0, 10.0));
        assert_eq!((s.left.mean, s.right.mean), (1.0, 5.0));
        assert!(s.merit > 4.0);
        // merit 0 where a side has fewer than 5 rows; those are pruned, the best stays
        e.prune(&pre, 5.0, 0.9, s.merit, 0.2, &mut stack);
        assert!(e.len() < 20, "{}", e.len());
        let again = e.best_split(&pre, 5.0, &mut stack).unwrap();
        assert_eq!(again.threshold, 9.0);
        let mut bytes = Vec::new();
        e.encode(&mut bytes);
        let back = Ebst::read(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(back, e);
    }
}
