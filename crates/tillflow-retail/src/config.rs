//! Generator parameters, their defaults, and reading them from `key = value` options.

use thiserror::Error;
use tillflow_types::temporal::{parse_timestamp, MICROS_PER_SECOND};

/// A bad generator option.
#[derive(Debug, Error, PartialEq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Every parameter of the model (see `docs/generator.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Random seed: the same seed gives the same events.
    pub seed: u64,
    /// Simulation start (microseconds since the epoch).
    pub start: i64,
    /// Stop after this much simulated time (microseconds), if set.
    pub duration: Option<i64>,
    /// Stop after this many emitted events of the chosen stream, if set.
    pub rows: Option<u64>,
    /// Number of stores.
    pub stores: u32,
    /// Number of SKUs.
    pub skus: u32,
    /// Number of categories.
    pub categories: u32,
    /// Mean receipts per store per open hour (before seasonality).
    pub receipts_per_hour: f64,
    /// Mean basket size (lines per receipt), at least 1.
    pub basket_mean: f64,
    /// Zipf exponent of SKU popularity inside a category.
    pub zipf_s: f64,
    /// Store opening hour and closing hour (local = UTC).
    pub open_hour: u32,
    /// Closing hour.
    pub close_hour: u32,
    /// Fraction of anonymous shoppers.
    pub anonymous_fraction: f64,
    /// Web/app sessions per hour for the whole chain.
    pub sessions_per_hour: f64,
    /// Promotions started per simulated day.
    pub promotions_per_day: f64,
    /// Price elasticity of demand: a discount d multiplies demand by (1 - d)^-elasticity.
    pub elasticity: f64,
    /// Initial on-hand units per store and SKU.
    pub initial_stock: i64,
    /// Reorder point s.
    pub reorder_point: i64,
    /// Order-up-to level S.
    pub order_up_to: i64,
    /// Replenishment lead time (microseconds).
    pub lead_time: i64,
    /// Trend: this SKU's demand grows by `trend_growth` per simulated day from `trend_start`.
    pub trend_sku: Option<u32>,
    /// When the trend starts (None: when the run starts).
    pub trend_start: Option<i64>,
    /// Relative growth per day.
    pub trend_growth: f64,
    /// Anomaly: this store's arrival rate is multiplied by `anomaly_factor` in the window.
    pub anomaly_store: Option<u32>,
    /// Start of the anomaly.
    pub anomaly_start: i64,
    /// Its length.
    pub anomaly_duration: i64,
    /// Its factor (3.0 = spike, 0.2 = drop).
    pub anomaly_factor: f64,
    /// More anomalies (option `anomalies`: `STORE@START+DURATION*FACTOR;…`).
    pub anomalies: Vec<Anomaly>,
    /// Fraction of events delivered out of order, by up to `max_delay`.
    pub out_of_order: f64,
    /// Largest out-of-order delay (microseconds).
    pub max_delay: i64,
    /// Fraction of events delivered late: 15 s to 10 min after their time.
    pub late: f64,
    /// Fraction of events delivered twice.
    pub duplicates: f64,
    /// Fraction of events delivered malformed.
    pub malformed: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 42,
            start: parse_timestamp("2024-03-01 00:00:00").unwrap_or(0),
            duration: None,
            rows: None,
            stores: 20,
            skus: 500,
            categories: 10,
            receipts_per_hour: 60.0,
            basket_mean: 2.5,
            zipf_s: 1.1,
            open_hour: 8,
            close_hour: 22,
            anonymous_fraction: 0.3,
            sessions_per_hour: 600.0,
            promotions_per_day: 6.0,
            elasticity: 2.0,
            initial_stock: 60,
            reorder_point: 15,
            order_up_to: 80,
            lead_time: 6 * 3600 * MICROS_PER_SECOND,
            trend_sku: None,
            trend_start: None,
            trend_growth: 0.5,
            anomaly_store: None,
            anomaly_start: 0,
            anomaly_duration: 3600 * MICROS_PER_SECOND,
            anomaly_factor: 3.0,
            anomalies: Vec::new(),
            out_of_order: 0.0,
            max_delay: 10 * MICROS_PER_SECOND,
            late: 0.0,
            duplicates: 0.0,
            malformed: 0.0,
        }
    }
}

/// The option keys [`Config::set`] understands.
pub const KEYS: &[&str] = &[
    "seed",
    "start",
    "duration",
    "rows",
    "stores",
    "skus",
    "categories",
    "rate",
    "basket-mean",
    "zipf-s",
    "open-hour",
    "close-hour",
    "anonymous-fraction",
    "sessions-per-hour",
    "promotions-per-day",
    "elasticity",
    "initial-stock",
    "reorder-point",
    "order-up-to",
    "lead-time",
    "trend.sku",
    "trend.start",
    "trend.growth",
    "anomaly.store",
    "anomaly.start",
    "anomaly.duration",
    "anomaly.factor",
    "anomalies",
    "disorder.out-of-order",
    "disorder.max-delay",
    "disorder.late",
    "disorder.duplicates",
    "disorder.malformed",
];

/// Parses a duration such as `90s`, `15min`, `6h`, `2d` or `500ms` into microseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "ms" => 1_000.0,
        "" | "s" | "sec" => 1e6,
        "m" | "min" => 60e6,
        "h" => 3600e6,
        "d" => 86_400e6,
        _ => return None,
    };
    Some((n * mult) as i64)
}

/// One injected anomaly: a store's receipt arrivals multiplied by `factor` for a while.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    /// The store.
    pub store: u32,
    /// Start (microseconds since the epoch).
    pub start: i64,
    /// Length (microseconds).
    pub duration: i64,
    /// Factor: above 1 a spike, below 1 a drop.
    pub factor: f64,
}

impl Anomaly {
    /// Parses `STORE@START+DURATION*FACTOR` (`7@2024-03-05 10:00:00+1h*3`).
    pub fn parse(text: &str) -> Option<Anomaly> {
        let (store, rest) = text.split_once('@')?;
        let (rest, factor) = rest.rsplit_once('*')?;
        let (start, duration) = rest.rsplit_once('+')?;
        Some(Anomaly {
            store: store.trim().parse().ok().filter(|s| *s >= 1)?,
            start: parse_timestamp(start.trim())?,
            duration: parse_duration(duration.trim())?,
            factor: factor.trim().parse().ok().filter(|f: &f64| *f >= 0.0)?,
        })
    }

    /// True when `store` is affected at `t`.
    #[inline]
    pub fn covers(&self, store: u32, t: i64) -> bool {
        store == self.store && t >= self.start && t < self.start + self.duration
    }
}

impl Config {
    /// Every injected anomaly: the `anomaly.*` one (when `anomaly.store` is set) and `anomalies`.
    pub fn all_anomalies(&self) -> Vec<Anomaly> {
        let mut all = Vec::new();
        if let Some(store) = self.anomaly_store {
            all.push(Anomaly {
                store,
                start: self.anomaly_start,
                duration: self.anomaly_duration,
                factor: self.anomaly_factor,
            });
        }
        all.extend(self.anomalies.iter().cloned());
        all
    }

    /// The largest anomaly factor (at least 1): the arrival bound's head-room.
    pub fn anomaly_max(&self) -> f64 {
        self.all_anomalies()
            .iter()
            .map(|a| a.factor)
            .fold(1.0, f64::max)
    }

    /// Sets one option by its key (see [`KEYS`]).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let v = value.trim();
        let bad = || ConfigError(format!("option '{key}': bad value '{value}'"));
        let f = || v.parse::<f64>().map_err(|_| bad());
        let u = || v.parse::<u64>().map_err(|_| bad());
        let frac = || match v.parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
            _ => Err(ConfigError(format!(
                "option '{key}' must be a fraction between 0 and 1, got '{value}'"
            ))),
        };
        let time = || {
            parse_timestamp(v).ok_or_else(|| {
                ConfigError(format!(
                    "option '{key}' must be a timestamp like 2024-03-01 00:00:00, got '{value}'"
                ))
            })
        };
        let dur = || {
            parse_duration(v).ok_or_else(|| {
                ConfigError(format!(
                    "option '{key}' must be a duration like 90s, 15min, 6h, 2d, got '{value}'"
                ))
            })
        };
        match key {
            "seed" => self.seed = u()?,
            "start" => self.start = time()?,
            "duration" => self.duration = Some(dur()?),
            "rows" => self.rows = Some(u()?),
            "stores" => self.stores = u()?.clamp(1, 100_000) as u32,
            "skus" => self.skus = u()?.clamp(1, 10_000_000) as u32,
            "categories" => self.categories = u()?.clamp(1, 1000) as u32,
            "rate" => self.receipts_per_hour = f()?.max(0.0),
            "basket-mean" => self.basket_mean = f()?.max(1.0),
            "zipf-s" => self.zipf_s = f()?.max(0.0),
            "open-hour" => self.open_hour = u()?.min(23) as u32,
            "close-hour" => self.close_hour = u()?.min(24) as u32,
            "anonymous-fraction" => self.anonymous_fraction = frac()?,
            "sessions-per-hour" => self.sessions_per_hour = f()?.max(0.0),
            "promotions-per-day" => self.promotions_per_day = f()?.max(0.0),
            "elasticity" => self.elasticity = f()?.max(0.0),
            "initial-stock" => self.initial_stock = u()? as i64,
            "reorder-point" => self.reorder_point = u()? as i64,
            "order-up-to" => self.order_up_to = u()? as i64,
            "lead-time" => self.lead_time = dur()?,
            "trend.sku" => self.trend_sku = Some(u()?.max(1) as u32),
            "trend.start" => self.trend_start = Some(time()?),
            "trend.growth" => self.trend_growth = f()?,
            "anomaly.store" => self.anomaly_store = Some(u()?.max(1) as u32),
            "anomaly.start" => self.anomaly_start = time()?,
            "anomaly.duration" => self.anomaly_duration = dur()?,
            "anomaly.factor" => self.anomaly_factor = f()?.max(0.0),
            "anomalies" => {
                self.anomalies.clear();
                for part in v.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                    let a = Anomaly::parse(part).ok_or_else(|| {
                        ConfigError(format!(
                            "option 'anomalies': '{part}' is not STORE@START+DURATION*FACTOR, e.g. 7@2024-03-05 10:00:00+1h*3"
                        ))
                    })?;
                    self.anomalies.push(a);
                }
            }
            "disorder.out-of-order" => self.out_of_order = frac()?,
            "disorder.max-delay" => self.max_delay = dur()?,
            "disorder.late" => self.late = frac()?,
            "disorder.duplicates" => self.duplicates = frac()?,
            "disorder.malformed" => self.malformed = frac()?,
            _ => {
                return Err(ConfigError(format!(
                    "unknown generator option '{key}' (options: {})",
                    KEYS.join(", ")
                )))
            }
        }
        if self.close_hour <= self.open_hour {
            return Err(ConfigError("close-hour must be after open-hour".into()));
        }
        if self.order_up_to <= self.reorder_point {
            return Err(ConfigError(
                "order-up-to must be above reorder-point".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject() {
        let mut c = Config::default();
        c.set("stores", "5").unwrap();
        c.set("duration", "2h").unwrap();
        c.set("disorder.late", "0.01").unwrap();
        assert_eq!(c.stores, 5);
        assert_eq!(c.duration, Some(7200 * MICROS_PER_SECOND));
        assert!(c.set("disorder.late", "2").is_err());
        assert!(c.set("nope", "1").unwrap_err().0.contains("options: seed"));
        assert_eq!(parse_duration("500ms"), Some(500_000));
        assert_eq!(parse_duration("1.5min"), Some(90 * MICROS_PER_SECOND));
    }
}
