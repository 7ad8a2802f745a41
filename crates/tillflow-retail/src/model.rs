//! The static part of the model: stores, the SKU catalog, and the seasonality of arrivals.

use crate::config::Config;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use tillflow_types::temporal::{MICROS_PER_DAY, MICROS_PER_SECOND};

/// Category names (cycled when more categories are asked for).
pub const CATEGORIES: &[&str] = &[
    "grocery",
    "dairy",
    "bakery",
    "produce",
    "beverages",
    "snacks",
    "household",
    "personal_care",
    "electronics",
    "apparel",
    "toys",
    "garden",
];

/// Relative unit demand of each category (cycled like [`CATEGORIES`]): chosen so that, with the
/// category price medians below and quantities falling with price, the revenue mix is that of a
/// neighbourhood general store — food about half, household and personal care a fifth, apparel
/// and electronics about an eighth each (docs/generator.md has the resulting table).
pub const CATEGORY_WEIGHTS: &[f64] = &[
    1.0, 0.70, 0.57, 0.83, 0.61, 0.43, 0.44, 0.28, 0.05, 0.15, 0.13, 0.12,
];

/// Median shelf price of each category (cycled like [`CATEGORIES`]).
pub const CATEGORY_MEDIAN_PRICES: &[f64] = &[
    3.0, 2.5, 2.0, 1.8, 2.2, 2.8, 6.0, 8.0, 60.0, 25.0, 15.0, 12.0,
];

/// Mean extra units on a line of a SKU whose shelf price is `price`: a line's quantity is
/// `1 + Poisson(extra_units(price))`, so cheap staples are bought by the several and a $60
/// item almost always one at a time.
pub fn extra_units(price: f64) -> f64 {
    0.8 / (1.0 + price.max(0.0) / 2.0)
}

/// One SKU of the catalog.
#[derive(Clone, Debug)]
pub struct Sku {
    /// Category index.
    pub category: u32,
    /// Rank inside its category (1 = most popular).
    pub rank: u32,
    /// Shelf price.
    pub base_price: f64,
    /// Baseline popularity weight (category weight × Zipf weight of the rank).
    pub weight: f64,
}

/// Stores and SKUs.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// SKUs, index = SKU number - 1.
    pub skus: Vec<Sku>,
    /// Relative size of each store (mean 1).
    pub store_weights: Vec<f64>,
    /// Category names.
    pub categories: Vec<String>,
}

impl Catalog {
    /// Builds the catalog deterministically from the seed.
    pub fn new(cfg: &Config) -> Self {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed ^ 0xCA7A_10C0);
        let cats = cfg.categories.max(1);
        let categories: Vec<String> = (0..cats)
            .map(|c| {
                let base = CATEGORIES[c as usize % CATEGORIES.len()];
                if (c as usize) < CATEGORIES.len() {
                    base.to_owned()
                } else {
                    format!("{base}_{}", c as usize / CATEGORIES.len() + 1)
                }
            })
            .collect();
        // category weights and price medians from the tables above; prices lognormal around the median
        let price_dist =
            LogNormal::new(0.0, 0.5).unwrap_or_else(|_| LogNormal::new(0.0, 1.0).expect("valid"));
        let mut per_cat = vec![0u32; cats as usize];
        let mut skus = Vec::with_capacity(cfg.skus as usize);
        for i in 0..cfg.skus {
            let category = i % cats;
            per_cat[category as usize] += 1;
            let rank = per_cat[category as usize];
            let median = CATEGORY_MEDIAN_PRICES[category as usize % CATEGORY_MEDIAN_PRICES.len()];
            let raw: f64 = median * price_dist.sample(&mut rng);
            let base_price = ((raw.max(0.25) * 100.0).round() - 1.0).max(19.0) / 100.0; // x.x9 prices
            let cat_weight = CATEGORY_WEIGHTS[category as usize % CATEGORY_WEIGHTS.len()];
            let weight = cat_weight / (rank as f64).powf(cfg.zipf_s);
            skus.push(Sku {
                category,
                rank,
                base_price,
                weight,
            });
        }
        let size =
            LogNormal::new(0.0, 0.35).unwrap_or_else(|_| LogNormal::new(0.0, 1.0).expect("valid"));
        let mut store_weights: Vec<f64> = (0..cfg.stores).map(|_| size.sample(&mut rng)).collect();
        let mean = store_weights.iter().sum::<f64>() / store_weights.len().max(1) as f64;
        store_weights.iter_mut().for_each(|w| *w /= mean);
        let _ = rng.random::<u8>();
        Catalog {
            skus,
            store_weights,
            categories,
        }
    }
}

fn bump(h: f64, center: f64, width: f64) -> f64 {
    (-((h - center) * (h - center)) / (2.0 * width * width)).exp()
}

fn raw_diurnal(h: f64) -> f64 {
    1.0 + 0.8 * bump(h, 13.0, 0.8) + 1.0 * bump(h, 18.0, 1.0)
}

/// Store traffic by hour of day, with its normalization computed once and the curve tabulated every
/// 10 seconds (linear interpolation; relative error below 1e-5), so that sampling needs no `exp`.
#[derive(Clone, Debug)]
pub struct Diurnal {
    open: f64,
    close: f64,
    table: Vec<f64>,
}

/// Table points per hour.
const STEPS_PER_HOUR: f64 = 360.0;

fn tabulate(f: impl Fn(f64) -> f64) -> Vec<f64> {
    (0..=(24.0 * STEPS_PER_HOUR) as usize)
        .map(|i| f(i as f64 / STEPS_PER_HOUR))
        .collect()
}

#[inline]
fn lookup(table: &[f64], hour: f64) -> f64 {
    let x = hour.clamp(0.0, 24.0) * STEPS_PER_HOUR;
    let i = (x as usize).min(table.len() - 2);
    let frac = x - i as f64;
    table[i] + (table[i + 1] - table[i]) * frac
}

impl Diurnal {
    /// The profile for the configured opening hours.
    pub fn new(cfg: &Config) -> Self {
        let (open, close) = (cfg.open_hour as f64, cfg.close_hour as f64);
        let steps = 960;
        let mean = (0..steps)
            .map(|i| raw_diurnal(open + (close - open) * (i as f64 + 0.5) / steps as f64))
            .sum::<f64>()
            / steps as f64;
        Diurnal {
            open,
            close,
            table: tabulate(|h| raw_diurnal(h) / mean),
        }
    }

    /// The traffic factor at `hour` (0 while closed, mean 1 over the open hours).
    #[inline]
    pub fn at(&self, hour: f64) -> f64 {
        if hour < self.open || hour >= self.close {
            0.0
        } else {
            lookup(&self.table, hour)
        }
    }
}

/// The online traffic curve ([`diurnal_online`]), tabulated like [`Diurnal`].
#[derive(Clone, Debug)]
pub struct Online {
    table: Vec<f64>,
}

impl Default for Online {
    fn default() -> Self {
        Online {
            table: tabulate(diurnal_online),
        }
    }
}

impl Online {
    /// The online traffic factor at `hour`.
    #[inline]
    pub fn at(&self, hour: f64) -> f64 {
        lookup(&self.table, hour)
    }
}

/// Store traffic by hour of day: zero while closed; inside opening hours a base of 1 with a lunch
/// peak (13:00, +0.8) and an evening peak (18:00, +1.0), normalized to average 1 over open hours.
pub fn diurnal(cfg: &Config, hour: f64) -> f64 {
    Diurnal::new(cfg).at(hour)
}

/// Online traffic by hour of day: never zero, peak in the evening (21:00), quiet at night.
pub fn diurnal_online(hour: f64) -> f64 {
    (0.25 + 0.6 * bump(hour, 12.5, 1.5) + 1.4 * bump(hour, 21.0, 1.8)) / 0.62
}

/// Weekly lift by day of week (0 = Monday): weekdays below 1, Friday above, the weekend highest.
pub const WEEKLY: [f64; 7] = [0.90, 0.90, 0.95, 1.00, 1.10, 1.35, 1.20];

/// Day of week (0 = Monday) and hour of day of a timestamp.
pub fn day_and_hour(t: i64) -> (usize, f64) {
    let days = t.div_euclid(MICROS_PER_DAY);
    let tod = t.rem_euclid(MICROS_PER_DAY);
    let dow = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    (dow, tod as f64 / (3600 * MICROS_PER_SECOND) as f64)
}

/// The largest value [`diurnal`] takes (for thinning).
pub fn diurnal_max(cfg: &Config) -> f64 {
    (0..=240)
        .map(|i| diurnal(cfg, i as f64 / 10.0))
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasonality_shapes() {
        let cfg = Config::default();
        assert_eq!(diurnal(&cfg, 3.0), 0.0);
        assert!(diurnal(&cfg, 18.0) > diurnal(&cfg, 10.0));
        assert!(diurnal(&cfg, 13.0) > diurnal(&cfg, 15.5));
        let mean: f64 = (0..1400)
            .map(|i| diurnal(&cfg, 8.0 + 14.0 * (i as f64 + 0.5) / 1400.0))
            .sum::<f64>()
            / 1400.0;
        assert!((mean - 1.0).abs() < 1e-3, "{mean}");
        // 2024-03-01 was a Friday
        let (dow, h) =
            day_and_hour(tillflow_types::temporal::parse_timestamp("2024-03-01 18:30:00").unwrap());
        assert_eq!((dow, h), (4, 18.5));
        let c = Catalog::new(&cfg);
        assert_eq!(c.skus.len(), 500);
        assert!(c.skus.iter().all(|s| s.base_price >= 0.19));
        assert!((c.store_weights.iter().sum::<f64>() / 20.0 - 1.0).abs() < 1e-9);
    }
}

/// A discrete distribution by cumulative weights, sampled by inversion with a guide table
/// (Chen and Asau's indexed search): the guide says where the search for a uniform draw in each
/// of `n` equal slices of the total starts, so a draw costs about two comparisons instead of a
/// binary search's `log2 n` dependent loads. It returns exactly the index a binary search would
/// (the first whose cumulative weight exceeds the draw), so a seed's events do not change.
#[derive(Clone, Debug, Default)]
pub struct Cumulative {
    cum: Vec<f64>,
    guide: Vec<u32>,
}

impl Cumulative {
    /// Empties the distribution (before `push`ing new weights).
    pub fn clear(&mut self) {
        self.cum.clear();
        self.guide.clear();
    }

    /// Appends the next outcome with weight `w` (non-negative).
    pub fn push(&mut self, w: f64) {
        let acc = self.cum.last().copied().unwrap_or(0.0) + w;
        self.cum.push(acc);
    }

    /// Builds the guide table; call after the last `push`.
    pub fn finish(&mut self) {
        let n = self.cum.len();
        let total = self.total();
        self.guide.clear();
        let mut i = 0usize;
        for j in 0..n {
            let bound = j as f64 * total / n as f64;
            while i + 1 < n && self.cum[i] <= bound {
                i += 1;
            }
            self.guide.push(i as u32);
        }
    }

    /// The sum of the weights (1 when there are none, so a draw is still defined).
    pub fn total(&self) -> f64 {
        self.cum.last().copied().unwrap_or(1.0)
    }

    /// The outcome (0-based) for `u` uniform in [0, 1).
    pub fn sample(&self, u: f64) -> usize {
        let n = self.cum.len();
        if n == 0 {
            return 0;
        }
        let x = u * self.total();
        let j = ((u * n as f64) as usize).min(n - 1);
        let mut i = self.guide.get(j).map_or(0, |&g| g as usize);
        // the slice's bound was rounded: step back while an earlier outcome already covers x
        while i > 0 && self.cum[i - 1] > x {
            i -= 1;
        }
        while i + 1 < n && self.cum[i] <= x {
            i += 1;
        }
        i
    }
}

#[cfg(test)]
mod cumulative_tests {
    use super::Cumulative;

    #[test]
    fn guide_table_search_equals_binary_search() {
        let mut c = Cumulative::default();
        // Zipf-like weights with zeros and a dominant head
        let weights: Vec<f64> = (1..=97)
            .map(|k| {
                if k % 13 == 0 {
                    0.0
                } else {
                    1.0 / (k as f64).powf(1.1)
                }
            })
            .collect();
        for &w in &weights {
            c.push(w);
        }
        c.finish();
        let mut cum = Vec::new();
        let mut acc = 0.0;
        for w in &weights {
            acc += w;
            cum.push(acc);
        }
        let total = acc;
        for k in 0..200_000u32 {
            let u = (k as f64 + 0.5) / 200_000.0;
            let expected = cum.partition_point(|&c| c <= u * total).min(cum.len() - 1);
            assert_eq!(c.sample(u), expected, "u = {u}");
        }
        // the edges
        assert_eq!(c.sample(0.0), 0);
        assert_eq!(c.sample(1.0 - f64::EPSILON), weights.len() - 1);
    }
}
