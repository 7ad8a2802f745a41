//! A target's running statistics as river's `stats.Var` (with its `stats.Mean`) keeps them:
//! weight, mean and the sum of squared deviations, updated by Welford's rule and added or
//! subtracted by Chan's. Every operation is river's, in river's order, so sums and differences
//! of statistics (the Hoeffding tree's split candidates) give river's floats to the last bit.

/// Weight `n`, mean and sum of squared deviations `s` of the values seen (ddof 1).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Var {
    /// The weight seen (rows: every row weighs 1).
    pub n: f64,
    /// The mean.
    pub mean: f64,
    /// The sum of squared deviations from the mean.
    pub s: f64,
}

/// `d ** 2` as CPython computes it: through the C library's `pow`, which is not `d * d` to
/// the last bit about once in a thousand. `black_box` keeps the compiler from turning it into
/// `d * d`.
pub(crate) fn square(d: f64) -> f64 {
    d.powf(std::hint::black_box(2.0))
}

impl Var {
    /// Learns `x` (weight 1).
    pub fn update(&mut self, x: f64) {
        let w = 1.0;
        let before = self.mean;
        self.n += w;
        self.mean += (w / self.n) * (x - self.mean);
        self.s += w * (x - before) * (x - self.mean);
    }

    /// The sample variance (0 below two rows).
    pub fn variance(&self) -> f64 {
        if self.n > 1.0 {
            self.s / (self.n - 1.0)
        } else {
            0.0
        }
    }

    /// Adds `o`'s values to these.
    pub fn add(&mut self, o: &Var) {
        let s = self.s + o.s + square(self.mean - o.mean) * self.n * o.n / (self.n + o.n);
        let n = self.n;
        self.n += o.n;
        self.mean = (n * self.mean + o.n * o.mean) / self.n;
        self.s = s;
    }

    /// Takes `o`'s values (a part of these) out.
    pub fn subtract(&mut self, o: &Var) {
        let n = self.n;
        self.n -= o.n;
        if self.n > 0.0 {
            self.mean = (n * self.mean - o.n * o.mean) / self.n;
        } else {
            self.n = 0.0;
            self.mean = 0.0;
        }
        self.s = self.s - o.s - square(self.mean - o.mean) * self.n * o.n / (self.n + o.n);
    }

    /// These plus `o`.
    pub fn plus(mut self, o: &Var) -> Var {
        self.add(o);
        self
    }

    /// These minus `o`.
    pub fn minus(mut self, o: &Var) -> Var {
        self.subtract(o);
        self
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.n, self.mean, self.s] {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }

    pub(super) fn read(r: &mut super::Reader) -> Result<Var, super::DecodeError> {
        Ok(Var {
            n: r.f64()?,
            mean: r.f64()?,
            s: r.f64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_and_chan_agree_with_the_batch_variance() {
        let xs = [3.0, 1.5, 4.0, 1.0, 5.5, 9.0, 2.5];
        let mut all = Var::default();
        let (mut a, mut b) = (Var::default(), Var::default());
        for (i, x) in xs.iter().enumerate() {
            all.update(*x);
            if i < 3 {
                a.update(*x)
            } else {
                b.update(*x)
            }
        }
        let mean = xs.iter().sum::<f64>() / 7.0;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 6.0;
        assert!((all.variance() - var).abs() < 1e-12);
        let sum = a.plus(&b);
        assert_eq!(sum.n, 7.0);
        assert!((sum.variance() - var).abs() < 1e-12);
        let back = all.minus(&a);
        assert_eq!(back.n, 4.0);
        assert!((back.mean - b.mean).abs() < 1e-12 && (back.s - b.s).abs() < 1e-9);
        let none = a.minus(&a);
        assert_eq!((none.n, none.mean), (0.0, 0.0));
        assert_eq!(Var::default().variance(), 0.0);
    }
}
