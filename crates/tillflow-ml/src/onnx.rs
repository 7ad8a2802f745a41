//! ONNX models run in process with tract (pure Rust; nothing is downloaded at build or run
//! time), for `'provider' = 'onnx'`. A model file is loaded once per job: its inputs are
//! matched with the model's INPUT columns — one input `[N, k]` holding the k columns in order
//! (what skl2onnx exports), or k inputs `[N, 1]` (or `[N]`), one per column — and its outputs
//! with the OUTPUT columns, in order (an output `[N, c]` gives c columns, `[N]` or `[N, 1]` one).
//! The batch dimension stays symbolic, so a batch of any size runs. Numbers go in as the
//! input's type (f32 or f64); outputs are read as f64 (integers and booleans as such).
//! scikit-learn's tree ensembles need ONNX-ML's `TreeEnsembleRegressor`, which tract lacks: it
//! is registered from [`crate::tree`].

use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

/// A model file that cannot be used for its model's INPUT and OUTPUT.
#[derive(Debug, thiserror::Error)]
#[error("ONNX model {path}: {message}")]
pub struct OnnxError {
    /// The file.
    pub path: String,
    /// What is wrong, and what to do.
    pub message: String,
}

/// How the INPUT columns reach the model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    /// One input `[N, k]`.
    Matrix,
    /// One input per column, `[N, 1]` or `[N]`; input i takes INPUT column `order[i]`.
    Columns { rank: usize, order: Vec<usize> },
}

/// A loaded model.
pub struct OnnxModel {
    plan: Arc<TypedRunnableModel>,
    layout: Layout,
    /// The input's element type: f64 (else f32).
    double: bool,
    /// Columns given by each output.
    outputs: Vec<usize>,
    inputs: usize,
    /// The model decides what a missing value means (a tree ensemble's
    /// `nodes_missing_value_tracks_true`); else a row with one gets no prediction.
    handles_missing: bool,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OnnxModel({:?}, {} inputs, outputs {:?})",
            self.layout, self.inputs, self.outputs
        )
    }
}

impl OnnxModel {
    /// Loads `path` for a model whose INPUT columns are `names` and which has `outputs` OUTPUT
    /// columns. A model with one input per column must name its inputs as the INPUT columns
    /// (they are matched by name, in any order). A file that makes the loader panic is an
    /// error, not the end of the process.
    pub fn load(path: &str, names: &[String], outputs: usize) -> Result<OnnxModel, OnnxError> {
        std::panic::catch_unwind(|| Self::load_unguarded(path, names, outputs)).unwrap_or_else(
            |_| {
                Err(OnnxError {
                    path: path.to_owned(),
                    message: "the ONNX loader failed on it (a damaged or unsupported file)".into(),
                })
            },
        )
    }

    fn load_unguarded(
        path: &str,
        names: &[String],
        outputs: usize,
    ) -> Result<OnnxModel, OnnxError> {
        let inputs = names.len();
        let err = |message: String| OnnxError {
            path: path.to_owned(),
            message,
        };
        let mut onnx = tract_onnx::onnx();
        crate::tree::register(&mut onnx.op_register);
        let model = onnx.model_for_path(path).map_err(|e| {
            err(format!(
                "does not load: {e:#} (a scikit-learn export needs skl2onnx's options={{'zipmap': False}} for classifiers; a Scaler in a pipeline needs black_op={{'Scaler'}} or double inputs)"
            ))
        })?;
        let handles_missing = model
            .nodes()
            .iter()
            .any(|n| n.op.name().starts_with("TreeEnsemble"));
        let n_in = model.input_outlets().map_err(|e| err(e.to_string()))?.len();
        let facts: Vec<InferenceFact> = (0..n_in)
            .map(|i| model.input_fact(i).cloned())
            .collect::<TractResult<_>>()
            .map_err(|e| err(e.to_string()))?;
        let datum = |f: &InferenceFact| f.datum_type.concretize();
        let double = facts.first().and_then(datum) == Some(DatumType::F64);
        for f in &facts {
            match datum(f) {
                Some(DatumType::F32 | DatumType::F64) | None => {}
                Some(other) => {
                    return Err(err(format!(
                        "takes {other:?} inputs; tillflow passes numbers as f32 or f64"
                    )))
                }
            }
        }
        let rank = |f: &InferenceFact| f.shape.rank().concretize().map(|r| r as usize);
        let layout = if n_in == 1 && (inputs > 1 || rank(&facts[0]) == Some(2)) {
            if let Some(w) = facts[0]
                .shape
                .dims()
                .nth(1)
                .and_then(|d| d.concretize())
                .and_then(|d| d.to_usize().ok())
            {
                if w != inputs {
                    return Err(err(format!(
                        "its input holds {w} columns per row, the model's INPUT has {inputs}"
                    )));
                }
            }
            Layout::Matrix
        } else if n_in == inputs {
            // one input per INPUT column: matched by name
            let outlets = model.input_outlets().map_err(|e| err(e.to_string()))?;
            let onnx_names: Vec<String> = outlets
                .iter()
                .map(|o| model.node(o.node).name.clone())
                .collect();
            let order = onnx_names
                .iter()
                .map(|n| names.iter().position(|c| c.eq_ignore_ascii_case(n)))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| {
                    err(format!(
                        "its inputs are named ({}), the model's INPUT columns ({}): name them alike",
                        onnx_names.join(", "),
                        names.join(", ")
                    ))
                })?;
            Layout::Columns {
                rank: rank(&facts[0]).unwrap_or(2),
                order,
            }
        } else {
            return Err(err(format!(
                "it has {n_in} inputs; the model's INPUT has {inputs} columns (one input of [N, {inputs}], or {inputs} inputs of [N, 1])"
            )));
        };
        let mut model = model;
        let n = model.sym("N");
        let dtype = if double {
            DatumType::F64
        } else {
            DatumType::F32
        };
        let shape = |cols: usize| -> TVec<TDim> {
            match layout {
                Layout::Columns { rank: 1, .. } => tvec![n.clone().into()],
                _ => tvec![n.clone().into(), cols.to_dim()],
            }
        };
        for i in 0..n_in {
            let cols = if layout == Layout::Matrix { inputs } else { 1 };
            model = model
                .with_input_fact(i, InferenceFact::dt_shape(dtype, shape(cols)))
                .map_err(|e| err(e.to_string()))?;
        }
        let typed = model
            .into_optimized()
            .map_err(|e| err(format!("cannot be prepared: {e:#}")))?;
        let mut counts = Vec::new();
        for o in 0..typed.outputs.len() {
            let fact = typed.output_fact(o).map_err(|e| err(e.to_string()))?;
            if !(fact.datum_type.is_number() || fact.datum_type == DatumType::Bool) {
                return Err(err(format!(
                    "output {o} holds {:?}; tillflow reads numbers and booleans (a classifier trained on string classes: train it on numbered classes)",
                    fact.datum_type
                )));
            }
            let dims = fact.shape.dims();
            if dims.first() != Some(&TDim::Sym(n.clone())) {
                return Err(err(format!(
                    "output {o} has shape {:?}, not one row per input row ([N] or [N, c])",
                    dims
                )));
            }
            let cols = match dims.len() {
                1 => 1,
                2 => dims[1].to_usize().map_err(|_| {
                    err(format!(
                        "output {o}'s second dimension {} is not fixed",
                        dims[1]
                    ))
                })?,
                r => {
                    return Err(err(format!(
                        "output {o} has rank {r}; tillflow reads [N] or [N, c]"
                    )))
                }
            };
            counts.push(cols);
        }
        let total: usize = counts.iter().sum();
        if total != outputs {
            return Err(err(format!(
                "its outputs give {total} columns ({counts:?} per output); the model's OUTPUT has {outputs}"
            )));
        }
        let plan = typed
            .into_runnable()
            .map_err(|e| err(format!("cannot be prepared: {e:#}")))?;
        Ok(OnnxModel {
            plan,
            layout,
            double,
            outputs: counts,
            inputs,
            handles_missing,
        })
    }

    /// Whether the model itself decides what a missing (NaN) input means: a tree ensemble
    /// does (each node says which way a missing value goes). For other models a row with a
    /// missing value gets no prediction (NULL): onnxruntime gives NaN for such a row's numbers,
    /// and tract's logistic function would give a number.
    pub fn handles_missing(&self) -> bool {
        self.handles_missing
    }

    /// Runs the model on `rows` rows of `inputs` values each (row-major in `x`), and writes
    /// each row's OUTPUT columns (row-major) into `out`.
    pub fn run(&self, x: &[f64], rows: usize, out: &mut Vec<f64>) -> TractResult<()> {
        let k = self.inputs;
        let tensor = |data: Vec<f64>, cols: usize| -> TractResult<TValue> {
            let shape: TVec<usize> = match self.layout {
                Layout::Columns { rank: 1, .. } => tvec![rows],
                _ => tvec![rows, cols],
            };
            let t = if self.double {
                tract_ndarray::ArrayD::from_shape_vec(&*shape, data)?.into_tensor()
            } else {
                let f: Vec<f32> = data.into_iter().map(|v| v as f32).collect();
                tract_ndarray::ArrayD::from_shape_vec(&*shape, f)?.into_tensor()
            };
            Ok(t.into_tvalue())
        };
        let inputs: TVec<TValue> = match self.layout {
            Layout::Matrix => tvec![tensor(x.to_vec(), k)?],
            Layout::Columns { ref order, .. } => order
                .iter()
                .map(|&c| tensor((0..rows).map(|r| x[r * k + c]).collect(), 1))
                .collect::<TractResult<_>>()?,
        };
        let results = self.plan.run(inputs)?;
        let width: usize = self.outputs.iter().sum();
        out.clear();
        out.resize(rows * width, f64::NAN);
        let mut col = 0;
        for (t, &cols) in results.iter().zip(&self.outputs) {
            let t = t.cast_to::<f64>()?;
            let plain = t.try_as_plain_ram()?;
            let v = plain.as_slice::<f64>()?;
            for r in 0..rows {
                for c in 0..cols {
                    out[r * width + col + c] = v.get(r * cols + c).copied().unwrap_or(f64::NAN);
                }
            }
            col += cols;
        }
        Ok(())
    }
}
