//! The simulation: arrivals, baskets, sessions, stock and promotions, in event-time order, then
//! delivered with the configured disorder.
//!
//! Events are produced into a time-ordered queue (a receipt's lines now; a session's later clicks,
//! a purchase, a replenishment, a return or a promotion's end later). An event leaves that queue
//! when nothing earlier can still be produced; it then gets its delivery delay (none, out of order,
//! late, or duplicated) and waits in a delivery queue until no event with an earlier delivery time
//! can still appear. So delivery order differs from event-time order exactly as configured.

use crate::config::Config;
use crate::model::{day_and_hour, diurnal_online, Catalog, Cumulative, Diurnal, Online, WEEKLY};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp, Poisson};
use rand_pcg::Pcg64Mcg;
use std::collections::BTreeMap;
use tillflow_types::temporal::{MICROS_PER_DAY, MICROS_PER_MILLI, MICROS_PER_SECOND};

const HOUR: i64 = 3600 * MICROS_PER_SECOND;
/// Share of replenishments tried as a transfer from another store first.
const TRANSFER_SHARE: f64 = 0.25;
/// How long a transfer between stores takes.
const TRANSFER_TIME: i64 = 2 * HOUR;
/// The smallest transfer worth the trip.
const MIN_TRANSFER: i64 = 10;
/// Probability that a sold line is accompanied by an unrecorded loss of one unit.
const HIDDEN_LOSS: f64 = 0.003;
/// Hour of the day of the daily cycle count, and SKUs counted per store.
const COUNT_HOUR: i64 = 22;
const COUNT_SKUS: u32 = 5;

/// Sales channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// In store, at a register.
    Store,
    /// Web shop.
    Web,
    /// Mobile app.
    App,
}

impl Channel {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Store => "store",
            Channel::Web => "web",
            Channel::App => "app",
        }
    }
}

/// Clickstream event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClickKind {
    /// Product page view.
    View,
    /// Search.
    Search,
    /// Add to cart.
    AddToCart,
    /// Remove from cart.
    RemoveFromCart,
    /// Checkout started.
    Checkout,
    /// Order placed.
    Purchase,
}

impl ClickKind {
    /// Name as in the schema.
    pub fn name(self) -> &'static str {
        match self {
            ClickKind::View => "view",
            ClickKind::Search => "search",
            ClickKind::AddToCart => "add_to_cart",
            ClickKind::RemoveFromCart => "remove_from_cart",
            ClickKind::Checkout => "checkout",
            ClickKind::Purchase => "purchase",
        }
    }
}

/// Inventory movement kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvKind {
    /// Replenishment arrived.
    Receipt,
    /// Sold.
    Sale,
    /// Returned by a customer.
    Return,
    /// Lost (theft, damage) and recorded at once.
    Shrink,
    /// Moved between stores: negative at the sending store, positive when it arrives.
    Transfer,
    /// A cycle count's correction: the unrecorded losses found when a SKU is counted (≤ 0).
    Count,
}

impl InvKind {
    /// Name as in the schema.
    pub fn name(self) -> &'static str {
        match self {
            InvKind::Receipt => "receipt",
            InvKind::Sale => "sale",
            InvKind::Return => "return",
            InvKind::Shrink => "shrink",
            InvKind::Transfer => "transfer",
            InvKind::Count => "count",
        }
    }
}

/// One receipt line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sale {
    /// Receipt number (unique in the run).
    pub receipt: u64,
    /// Store (1-based).
    pub store: u32,
    /// Register (in-store sales only).
    pub register: Option<u32>,
    /// SKU (1-based).
    pub sku: u32,
    /// Units.
    pub qty: i32,
    /// Price paid per unit.
    pub unit_price: f64,
    /// Discount on the line (money).
    pub discount: f64,
    /// Customer (None: anonymous).
    pub customer: Option<u32>,
    /// Channel.
    pub channel: Channel,
    /// Payment method.
    pub payment: &'static str,
}

/// One clickstream event.
#[derive(Clone, Debug, PartialEq)]
pub struct Click {
    /// Session number.
    pub session: u64,
    /// Customer (None: not logged in).
    pub customer: Option<u32>,
    /// Web or app.
    pub channel: Channel,
    /// What happened.
    pub kind: ClickKind,
    /// Product involved, if any.
    pub sku: Option<u32>,
    /// Its current price.
    pub price: Option<f64>,
}

/// One inventory movement.
#[derive(Clone, Debug, PartialEq)]
pub struct Movement {
    /// Store.
    pub store: u32,
    /// SKU.
    pub sku: u32,
    /// Kind.
    pub kind: InvKind,
    /// Units added (negative: removed).
    pub delta: i32,
}

/// A promotion, announced when it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Promotion {
    /// Promotion number.
    pub id: u32,
    /// The SKU on promotion, or
    pub sku: Option<u32>,
    /// the whole category.
    pub category: Option<u32>,
    /// Discount as a fraction of the shelf price.
    pub discount: f64,
    /// Start.
    pub start: i64,
    /// End.
    pub end: i64,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// A receipt line.
    Sale(Sale),
    /// A clickstream event.
    Click(Click),
    /// An inventory movement.
    Inventory(Movement),
    /// A promotion.
    Promotion(Promotion),
}

/// One generated event as delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Event time (microseconds, millisecond precision).
    pub time: i64,
    /// What happened.
    pub kind: Kind,
    /// Delivered malformed (a disorder knob).
    pub malformed: bool,
}

enum Pending {
    Emit(Kind),
    Session(SessionState),
    Restock {
        store: u32,
        sku: u32,
        qty: i32,
        kind: InvKind,
    },
    PromoEnd(u32),
    Tick,
    CycleCount,
    /// The opening stocktake at the start of the run.
    OpeningStock,
}

struct SessionState {
    id: u64,
    customer: Option<u32>,
    channel: Channel,
    state: ClickKind,
    cart: Vec<u32>,
    started: bool,
}

/// Counters of what the simulation did (beyond the events).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Receipt lines not sold because the store was out of stock.
    pub lost_sales: u64,
    /// Receipt lines sold (in store and online).
    pub sold_lines: u64,
    /// Replenishment orders placed (from the supplier or as a transfer from another store).
    pub reorders: u64,
    /// Replenishments served by a transfer from another store.
    pub transfers: u64,
    /// Units lost without a record, found later by a cycle count.
    pub hidden_losses: u64,
    /// Events delivered out of order / late / twice / malformed.
    pub disordered: [u64; 4],
}

/// The generator: an iterator of events in delivery order.
pub struct Generator {
    cfg: Config,
    /// Every injected anomaly, and the largest factor.
    anomalies: Vec<crate::config::Anomaly>,
    anomaly_max: f64,
    /// Stores and SKUs.
    pub catalog: Catalog,
    rng: Pcg64Mcg,
    /// Disorder draws, one generator per stream, so a stream's delivery does not depend on
    /// which other streams are delivered.
    delivery_rng: [Pcg64Mcg; 4],
    /// Which streams are delivered (the simulation runs in full either way).
    wanted: [bool; 4],
    now: i64,
    end: i64,
    next_receipt: i64,
    next_session: i64,
    /// When the next promotion starts: `promo_clock`, a Poisson process over the whole day, moved
    /// to the next full hour at which a promotion of two hours fits into the opening hours.
    next_promo: i64,
    promo_clock: i64,
    /// Future work, by time: indices into `slots` (the payloads stay put while the heap moves keys).
    /// Session steps, due within minutes and the most frequent, have a queue of their own apart
    /// from the long waits (restocks, promotion ends), so the busy heap stays small; the two are
    /// merged by (time, sequence), the order one queue would give.
    pending: [TimeQueue<u32>; 2],
    slots: Vec<Option<Pending>>,
    free_slots: Vec<u32>,
    delivery: TimeQueue<Event>,
    /// Events delivered without delay while `delivery` was empty: they precede everything queued.
    ready: std::collections::VecDeque<Event>,
    seq: u64,
    receipts: u64,
    sessions: u64,
    promos: u32,
    on_hand: Vec<i64>,
    on_order: Vec<bool>,
    /// Per store×SKU: the reorder point s and the order-up-to level S, scaled to its demand.
    reorder_at: Vec<i64>,
    order_to: Vec<i64>,
    /// Per SKU: `exp(-extra_units(shelf price))`, for drawing a line's quantity.
    qty_p0: Vec<f64>,
    /// Units lost without a record since the store×SKU was last counted.
    hidden_loss: Vec<i64>,
    promo_discount: Vec<f64>,
    active_promos: BTreeMap<u32, Promotion>,
    cum_weights: Cumulative,
    store_cum: Cumulative,
    /// Per clock hour: the highest store-traffic factor, and the highest online factor.
    diurnal_hourly: [f64; 24],
    online_hourly: [f64; 24],
    diurnal: Diurnal,
    online: Online,
    basket: Option<Poisson<f64>>,
    /// What the simulation did.
    pub stats: Stats,
}

/// A min-queue by (time, sequence): a binary heap, cheaper than an ordered map for push/pop-first.
struct TimeQueue<T> {
    heap: std::collections::BinaryHeap<QueueEntry<T>>,
}

impl<T> Default for TimeQueue<T> {
    fn default() -> Self {
        TimeQueue {
            heap: std::collections::BinaryHeap::new(),
        }
    }
}

struct QueueEntry<T> {
    key: (i64, u64),
    value: T,
}

impl<T> PartialEq for QueueEntry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<T> Eq for QueueEntry<T> {}

impl<T> PartialOrd for QueueEntry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for QueueEntry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key.cmp(&self.key) // reversed: the smallest key on top
    }
}

impl<T> TimeQueue<T> {
    fn insert(&mut self, key: (i64, u64), value: T) {
        self.heap.push(QueueEntry { key, value });
    }

    fn first_key(&self) -> Option<(i64, u64)> {
        self.heap.peek().map(|e| e.key)
    }

    fn pop_first(&mut self) -> Option<((i64, u64), T)> {
        self.heap.pop().map(|e| (e.key, e.value))
    }

    fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

fn kind_index(k: &Kind) -> usize {
    match k {
        Kind::Sale(_) => 0,
        Kind::Click(_) => 1,
        Kind::Inventory(_) => 2,
        Kind::Promotion(_) => 3,
    }
}

fn stream_index(s: crate::Stream) -> usize {
    match s {
        crate::Stream::PosSales => 0,
        crate::Stream::Clickstream => 1,
        crate::Stream::Inventory => 2,
        crate::Stream::Promotions => 3,
    }
}

fn exp_sample(rng: &mut Pcg64Mcg, rate_per_hour: f64) -> i64 {
    if rate_per_hour <= 0.0 {
        return i64::MAX / 4;
    }
    // inverse transform: -ln(U) / rate, U in (0, 1]
    let u = 1.0 - rng.random::<f64>();
    ((-u.ln() / rate_per_hour) * HOUR as f64) as i64
}

/// The next candidate of a Poisson process whose rate bound is constant within each clock hour
/// (`bound(day_of_week, hour)` per hour); thinning against a per-hour bound wastes few candidates.
/// Memoryless: at an hour boundary the process restarts with the next hour's bound.
fn next_candidate(
    rng: &mut Pcg64Mcg,
    from: i64,
    end: i64,
    bound: &dyn Fn(usize, usize) -> f64,
) -> i64 {
    let mut t = from;
    while t < end {
        let hour_end = t - t.rem_euclid(HOUR) + HOUR;
        let (dow, h) = day_and_hour(t);
        let rate = bound(dow, h as usize % 24);
        if rate > 0.0 {
            let cand = t + exp_sample(rng, rate).max(1);
            if cand < hour_end {
                return cand;
            }
        }
        t = hour_end;
    }
    i64::MAX / 2
}

/// The largest value of `f` within each clock hour (sampled finely, with a margin).
fn hourly_max(f: &dyn Fn(f64) -> f64) -> [f64; 24] {
    std::array::from_fn(|h| {
        (0..=120)
            .map(|i| f(h as f64 + i as f64 / 120.0))
            .fold(0.0, f64::max)
            * 1.001
    })
}

fn round_ms(t: i64) -> i64 {
    t - t.rem_euclid(MICROS_PER_MILLI)
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Generator {
    /// A generator for `cfg`.
    pub fn new(cfg: Config) -> Self {
        let catalog = Catalog::new(&cfg);
        let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
        let n = (cfg.stores * cfg.skus) as usize;
        let mut store_cum = Cumulative::default();
        for &w in &catalog.store_weights {
            store_cum.push(w);
        }
        store_cum.finish();
        let start = cfg.start;
        let end = cfg
            .duration
            .map(|d| start.saturating_add(d))
            .unwrap_or(i64::MAX / 2);
        let anomaly_max = cfg.anomaly_max();
        let seasonal = Diurnal::new(&cfg);
        let diurnal_hourly = hourly_max(&|h| seasonal.at(h.min(23.9999)));
        let online_hourly = hourly_max(&|h| diurnal_online(h));
        let receipt_base = cfg.receipts_per_hour * cfg.stores as f64 * anomaly_max;
        let next_receipt = next_candidate(&mut rng, start, end, &|d, h| {
            receipt_base * diurnal_hourly[h] * WEEKLY[d]
        });
        let next_session = next_candidate(&mut rng, start, end, &|_, h| {
            cfg.sessions_per_hour * online_hourly[h]
        });
        let promo_clock = start + exp_sample(&mut rng, cfg.promotions_per_day / 24.0);
        let (reorder_at, order_to) = stock_policy(&cfg, &catalog);
        let qty_p0 = catalog
            .skus
            .iter()
            .map(|s| (-crate::model::extra_units(s.base_price)).exp())
            .collect();
        let mut g = Generator {
            on_hand: order_to.iter().map(|&s| s.max(cfg.initial_stock)).collect(),
            on_order: vec![false; n],
            reorder_at,
            order_to,
            qty_p0,
            promo_clock,
            hidden_loss: vec![0; n],
            promo_discount: vec![0.0; cfg.skus as usize],
            cum_weights: Cumulative::default(),
            catalog,
            rng,
            delivery_rng: std::array::from_fn(|k| {
                Pcg64Mcg::seed_from_u64(cfg.seed ^ (0xD15_0DE5 + k as u64))
            }),
            wanted: [true; 4],
            now: start,
            end,
            next_receipt,
            next_session,
            next_promo: opening_hours_start(&cfg, promo_clock),
            pending: Default::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            delivery: TimeQueue::default(),
            ready: std::collections::VecDeque::new(),
            seq: 0,
            receipts: 0,
            sessions: 0,
            promos: 0,
            active_promos: BTreeMap::new(),
            store_cum,
            diurnal_hourly,
            online_hourly,
            diurnal: Diurnal::new(&cfg),
            online: Online::default(),
            basket: Poisson::new((cfg.basket_mean - 1.0).max(1e-9)).ok(),
            stats: Stats::default(),
            anomalies: cfg.all_anomalies(),
            anomaly_max,
            cfg,
        };
        g.rebuild_weights(start);
        g.push(start, Pending::OpeningStock);
        if g.cfg.trend_sku.is_some() {
            g.push(start + HOUR, Pending::Tick);
        }
        // cycle counts at COUNT_HOUR every day
        let day = start.div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY;
        let first = day + COUNT_HOUR * HOUR;
        g.push(
            if first > start {
                first
            } else {
                first + MICROS_PER_DAY
            },
            Pending::CycleCount,
        );
        g
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Delivers only the events of `streams` (the others are simulated but not produced).
    pub fn only(mut self, streams: &[crate::Stream]) -> Self {
        self.wanted = [false; 4];
        for s in streams {
            self.wanted[stream_index(*s)] = true;
        }
        self
    }

    fn enqueue(&mut self, t: i64, p: Pending) {
        let queue = usize::from(!matches!(p, Pending::Session(_)));
        let slot = match self.free_slots.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(p);
                i
            }
            None => {
                self.slots.push(Some(p));
                (self.slots.len() - 1) as u32
            }
        };
        self.pending[queue].insert((t, self.seq), slot);
    }

    fn push(&mut self, t: i64, p: Pending) {
        if let Pending::Emit(kind) = p {
            if !self.wanted[kind_index(&kind)] {
                return;
            }
            if t <= self.now {
                // nothing earlier can still be produced: straight to delivery
                self.deliver(t, kind);
                return;
            }
            self.seq += 1;
            self.enqueue(t, Pending::Emit(kind));
            return;
        }
        self.seq += 1;
        self.enqueue(t, p);
    }

    /// Current demand weight of each SKU: baseline × promotion lift × trend.
    fn rebuild_weights(&mut self, now: i64) {
        self.cum_weights.clear();
        let trend_start = self.cfg.trend_start.unwrap_or(self.cfg.start);
        for (i, s) in self.catalog.skus.iter().enumerate() {
            let mut w = s.weight;
            let d = self.promo_discount[i];
            if d > 0.0 {
                w *= (1.0 - d).powf(-self.cfg.elasticity);
            }
            if self.cfg.trend_sku == Some(i as u32 + 1) && now >= trend_start {
                let days = (now - trend_start) as f64 / MICROS_PER_DAY as f64;
                w *= 1.0 + self.cfg.trend_growth * days;
            }
            self.cum_weights.push(w);
        }
        self.cum_weights.finish();
    }

    /// A line's quantity: `1 + Poisson(extra_units(shelf price))`, drawn by inversion.
    fn quantity(&mut self, sku: u32) -> i32 {
        let p0 = self.qty_p0[(sku - 1) as usize];
        let lambda = -p0.ln();
        let u = self.rng.random::<f64>();
        let (mut k, mut p, mut cum) = (0, p0, p0);
        while u > cum && k < 20 {
            k += 1;
            p *= lambda / k as f64;
            cum += p;
        }
        1 + k
    }

    fn pick_sku(&mut self) -> u32 {
        self.cum_weights.sample(self.rng.random::<f64>()) as u32 + 1
    }

    fn price(&self, sku: u32) -> (f64, f64) {
        let base = self.catalog.skus[(sku - 1) as usize].base_price;
        let d = self.promo_discount[(sku - 1) as usize];
        let unit = cents(base * (1.0 - d));
        (unit, base)
    }

    fn customer(&mut self) -> Option<u32> {
        if self.rng.random::<f64>() < self.cfg.anonymous_fraction {
            None
        } else {
            Some(1 + (self.rng.random::<f64>() * 50_000.0) as u32)
        }
    }

    fn idx(&self, store: u32, sku: u32) -> usize {
        ((store - 1) * self.cfg.skus + (sku - 1)) as usize
    }

    /// Takes `qty` from stock (false: out of stock, the sale is lost) and schedules a reorder.
    fn take_stock(&mut self, t: i64, store: u32, sku: u32, qty: i32) -> bool {
        let i = self.idx(store, sku);
        if self.on_hand[i] < qty as i64 {
            self.stats.lost_sales += 1;
            return false;
        }
        self.stats.sold_lines += 1;
        self.on_hand[i] -= qty as i64;
        self.push(
            t,
            Pending::Emit(Kind::Inventory(Movement {
                store,
                sku,
                kind: InvKind::Sale,
                delta: -qty,
            })),
        );
        if self.rng.random::<f64>() < 0.002 && self.on_hand[i] > 0 {
            self.on_hand[i] -= 1;
            let when = t + (self.rng.random::<f64>() * HOUR as f64) as i64;
            self.push(
                round_ms(when),
                Pending::Emit(Kind::Inventory(Movement {
                    store,
                    sku,
                    kind: InvKind::Shrink,
                    delta: -1,
                })),
            );
        }
        if self.rng.random::<f64>() < HIDDEN_LOSS && self.on_hand[i] > 0 {
            self.on_hand[i] -= 1;
            self.hidden_loss[i] += 1;
            self.stats.hidden_losses += 1;
        }
        if self.rng.random::<f64>() < 0.01 {
            let when = t + HOUR + (self.rng.random::<f64>() * 47.0 * HOUR as f64) as i64;
            self.push(
                round_ms(when),
                Pending::Restock {
                    store,
                    sku,
                    qty,
                    kind: InvKind::Return,
                },
            );
        }
        if self.on_hand[i] <= self.reorder_at[i] && !self.on_order[i] {
            self.on_order[i] = true;
            self.stats.reorders += 1;
            let qty = (self.order_to[i] - self.on_hand[i]) as i32;
            // some replenishments come from another store that has the units to spare
            let donor = if self.rng.random::<f64>() < TRANSFER_SHARE {
                let d = self.pick_store();
                let j = self.idx(d, sku);
                let spare = (self.on_hand[j] - self.order_to[j] / 2).min(qty as i64);
                (d != store && spare >= MIN_TRANSFER).then_some((d, j, spare as i32))
            } else {
                None
            };
            match donor {
                Some((d, j, qty)) => {
                    self.stats.transfers += 1;
                    self.on_hand[j] -= qty as i64;
                    self.push(
                        t,
                        Pending::Emit(Kind::Inventory(Movement {
                            store: d,
                            sku,
                            kind: InvKind::Transfer,
                            delta: -qty,
                        })),
                    );
                    self.push(
                        t + TRANSFER_TIME,
                        Pending::Restock {
                            store,
                            sku,
                            qty,
                            kind: InvKind::Transfer,
                        },
                    );
                }
                None => self.push(
                    t + self.cfg.lead_time,
                    Pending::Restock {
                        store,
                        sku,
                        qty,
                        kind: InvKind::Receipt,
                    },
                ),
            }
        }
        true
    }

    /// Every store counts `COUNT_SKUS` SKUs drawn uniformly; each count books the unrecorded
    /// losses found (a `count` movement, zero when the books were right).
    fn cycle_count(&mut self, t: i64) {
        for store in 1..=self.cfg.stores {
            for _ in 0..COUNT_SKUS.min(self.cfg.skus) {
                let sku =
                    1 + (self.rng.random::<f64>() * self.cfg.skus as f64) as u32 % self.cfg.skus;
                let i = self.idx(store, sku);
                let found = std::mem::take(&mut self.hidden_loss[i]);
                self.push(
                    t,
                    Pending::Emit(Kind::Inventory(Movement {
                        store,
                        sku,
                        kind: InvKind::Count,
                        delta: -(found as i32),
                    })),
                );
            }
        }
    }

    fn pick_store(&mut self) -> u32 {
        self.store_cum.sample(self.rng.random::<f64>()) as u32 + 1
    }

    fn receipt(&mut self, t: i64) {
        let (_, hour) = day_and_hour(t);
        let season = self.diurnal.at(hour);
        let anomaly_max = self.anomaly_max;
        if self.rng.random::<f64>() * self.diurnal_hourly[hour as usize % 24] >= season {
            return; // thinning against this hour's bound (the weekly factor is in the bound exactly)
        }
        let store = self.pick_store();
        let anomaly = self
            .anomalies
            .iter()
            .find(|a| a.covers(store, t))
            .map_or(1.0, |a| a.factor);
        if (anomaly_max > 1.0 || anomaly < 1.0) && self.rng.random::<f64>() * anomaly_max >= anomaly
        {
            return; // thinning by the store's anomaly
        }
        self.receipts += 1;
        let receipt = self.receipts;
        let lines = 1 + self
            .basket
            .map(|p| p.sample(&mut self.rng) as u32)
            .unwrap_or(0);
        let customer = self.customer();
        let register = Some(1 + (self.rng.random::<f64>() * 4.0) as u32);
        let u = self.rng.random::<f64>();
        let payment = if u < 0.6 {
            "card"
        } else if u < 0.85 {
            "cash"
        } else {
            "mobile"
        };
        for _ in 0..lines {
            let sku = self.pick_sku();
            let qty = self.quantity(sku);
            if !self.take_stock(t, store, sku, qty) {
                continue;
            }
            let (unit_price, base) = self.price(sku);
            let line = Sale {
                receipt,
                store,
                register,
                sku,
                qty,
                unit_price,
                discount: cents((base - unit_price) * qty as f64),
                customer,
                channel: Channel::Store,
                payment,
            };
            self.push(t, Pending::Emit(Kind::Sale(line)));
        }
    }

    fn start_session(&mut self, t: i64) {
        let (_, hour) = day_and_hour(t);
        if self.rng.random::<f64>() * self.online_hourly[hour as usize % 24] >= self.online.at(hour)
        {
            return; // thinning against this hour's bound
        }
        self.sessions += 1;
        let customer = if self.rng.random::<f64>() < 0.7 {
            self.customer().or(Some(1))
        } else {
            None
        };
        let channel = if self.rng.random::<f64>() < 0.6 {
            Channel::Web
        } else {
            Channel::App
        };
        let s = SessionState {
            id: self.sessions,
            customer,
            channel,
            state: ClickKind::View,
            cart: Vec::new(),
            started: false,
        };
        self.push(t, Pending::Session(s));
    }

    /// One step of a session's Markov chain at time `t`: emit the current state's click, then
    /// move to the next state after an exponential think time (mean 25 s).
    fn step_session(&mut self, t: i64, mut s: SessionState) {
        let (sku, price) = match s.state {
            ClickKind::View | ClickKind::AddToCart => {
                let sku = if s.state == ClickKind::AddToCart {
                    s.cart.last().copied().unwrap_or(1)
                } else {
                    self.pick_sku()
                };
                (Some(sku), Some(self.price(sku).0))
            }
            ClickKind::RemoveFromCart => {
                let sku = s.cart.pop();
                (sku, sku.map(|k| self.price(k).0))
            }
            _ => (None, None),
        };
        if s.state == ClickKind::Purchase {
            // the order: one receipt, fulfilled from a store's stock
            self.receipts += 1;
            let receipt = self.receipts;
            let store = self.pick_store();
            let payment = if self.rng.random::<f64>() < 0.7 {
                "card"
            } else {
                "mobile"
            };
            let mut sold = 0;
            for sku in std::mem::take(&mut s.cart) {
                if !self.take_stock(t, store, sku, 1) {
                    continue;
                }
                sold += 1;
                let (unit_price, base) = self.price(sku);
                let line = Sale {
                    receipt,
                    store,
                    register: None,
                    sku,
                    qty: 1,
                    unit_price,
                    discount: cents(base - unit_price),
                    customer: s.customer,
                    channel: s.channel,
                    payment,
                };
                self.push(t, Pending::Emit(Kind::Sale(line)));
            }
            if sold == 0 {
                return; // everything was out of stock: no purchase event
            }
        }
        let click = Click {
            session: s.id,
            customer: s.customer,
            channel: s.channel,
            kind: s.state,
            sku,
            price,
        };
        self.push(t, Pending::Emit(Kind::Click(click)));
        if s.state == ClickKind::Purchase {
            return;
        }
        s.started = true;
        let u = self.rng.random::<f64>();
        // transition probabilities (docs/generator.md)
        let next = match s.state {
            ClickKind::View => {
                if u < 0.62 {
                    Some(ClickKind::View)
                } else if u < 0.72 {
                    Some(ClickKind::Search)
                } else if u < 0.76 {
                    Some(ClickKind::AddToCart)
                } else {
                    None
                }
            }
            ClickKind::Search => {
                if u < 0.7 {
                    Some(ClickKind::View)
                } else {
                    None
                }
            }
            ClickKind::AddToCart | ClickKind::RemoveFromCart => {
                if u < 0.40 {
                    Some(ClickKind::View)
                } else if u < 0.75 {
                    Some(ClickKind::Checkout)
                } else if u < 0.80 {
                    Some(ClickKind::RemoveFromCart)
                } else {
                    None
                }
            }
            ClickKind::Checkout => {
                if u < 0.65 {
                    Some(ClickKind::Purchase)
                } else if u < 0.75 {
                    Some(ClickKind::View)
                } else {
                    None
                }
            }
            ClickKind::Purchase => None,
        };
        let Some(mut next) = next else { return };
        if next == ClickKind::AddToCart {
            let sku = self.pick_sku();
            s.cart.push(sku);
        }
        if (next == ClickKind::Checkout || next == ClickKind::RemoveFromCart) && s.cart.is_empty() {
            next = ClickKind::View;
        }
        s.state = next;
        let think = Exp::new(1.0 / 25.0)
            .map(|d| d.sample(&mut self.rng))
            .unwrap_or(25.0);
        let when = round_ms(t + (think * MICROS_PER_SECOND as f64) as i64 + MICROS_PER_MILLI);
        self.push(when, Pending::Session(s));
    }

    fn start_promotion(&mut self, t: i64) {
        self.promos += 1;
        let id = self.promos;
        let discount =
            [0.10, 0.15, 0.20, 0.25, 0.30][(self.rng.random::<f64>() * 5.0) as usize % 5];
        // whole hours, two to eight, ending by closing time (the start leaves room for two)
        let (_, hour) = day_and_hour(t);
        let room = (self.cfg.close_hour as i64 - hour as i64).max(2);
        let hours = (2 + (self.rng.random::<f64>() * 7.0) as i64).min(room);
        let end = t + hours * HOUR;
        let (sku, category) = if self.rng.random::<f64>() < 0.8 {
            (Some(self.pick_sku()), None)
        } else {
            (
                None,
                Some(
                    (self.rng.random::<f64>() * self.cfg.categories as f64) as u32
                        % self.cfg.categories,
                ),
            )
        };
        let p = Promotion {
            id,
            sku,
            category,
            discount,
            start: t,
            end,
        };
        self.active_promos.insert(id, p.clone());
        self.apply_promotions(t);
        self.push(end, Pending::PromoEnd(id));
        self.push(t, Pending::Emit(Kind::Promotion(p)));
    }

    fn apply_promotions(&mut self, now: i64) {
        self.promo_discount.iter_mut().for_each(|d| *d = 0.0);
        for p in self.active_promos.values() {
            for (i, s) in self.catalog.skus.iter().enumerate() {
                let hit = p.sku == Some(i as u32 + 1) || p.category == Some(s.category);
                if hit && p.discount > self.promo_discount[i] {
                    self.promo_discount[i] = p.discount;
                }
            }
        }
        self.rebuild_weights(now);
    }

    fn deliver(&mut self, time: i64, kind: Kind) {
        let rng = &mut self.delivery_rng[kind_index(&kind)];
        let u = rng.random::<f64>();
        let delay = if u < self.cfg.late {
            self.stats.disordered[1] += 1;
            15 * MICROS_PER_SECOND + (rng.random::<f64>() * 585.0 * MICROS_PER_SECOND as f64) as i64
        } else if u < self.cfg.late + self.cfg.out_of_order {
            self.stats.disordered[0] += 1;
            100 * MICROS_PER_MILLI
                + (rng.random::<f64>()
                    * (self.cfg.max_delay - 100 * MICROS_PER_MILLI).max(0) as f64)
                    as i64
        } else {
            0
        };
        let malformed = self.cfg.malformed > 0.0 && rng.random::<f64>() < self.cfg.malformed;
        if malformed {
            self.stats.disordered[3] += 1;
        }
        if self.cfg.duplicates > 0.0 && rng.random::<f64>() < self.cfg.duplicates {
            self.stats.disordered[2] += 1;
            self.seq += 1;
            let again = delay + (rng.random::<f64>() * 2.0 * MICROS_PER_SECOND as f64) as i64;
            self.delivery.insert(
                (time + again, self.seq),
                Event {
                    time,
                    kind: kind.clone(),
                    malformed: false,
                },
            );
        }
        if delay == 0 && self.delivery.is_empty() {
            // in order and nothing waiting: deliverable now, ahead of anything queued later
            self.ready.push_back(Event {
                time,
                kind,
                malformed,
            });
            return;
        }
        self.seq += 1;
        self.delivery.insert(
            (time + delay, self.seq),
            Event {
                time,
                kind,
                malformed,
            },
        );
    }

    /// Processes the next thing in time order; false when the simulation has ended.
    fn advance(&mut self) -> bool {
        let pending = self.pending_first().map(|k| k.0).unwrap_or(i64::MAX);
        let arrivals = self
            .next_receipt
            .min(self.next_session)
            .min(self.next_promo);
        if arrivals < pending && arrivals < self.end {
            self.now = round_ms(arrivals);
            if arrivals == self.next_receipt {
                let t = round_ms(self.next_receipt);
                let base = self.cfg.receipts_per_hour * self.cfg.stores as f64 * self.anomaly_max;
                let hourly = self.diurnal_hourly;
                self.next_receipt =
                    next_candidate(&mut self.rng, self.next_receipt, self.end, &|d, h| {
                        base * hourly[h] * WEEKLY[d]
                    });
                self.receipt(t);
            } else if arrivals == self.next_session {
                let t = round_ms(self.next_session);
                let (rate, hourly) = (self.cfg.sessions_per_hour, self.online_hourly);
                self.next_session =
                    next_candidate(&mut self.rng, self.next_session, self.end, &|_, h| {
                        rate * hourly[h]
                    });
                self.start_session(t);
            } else {
                let t = round_ms(self.next_promo);
                self.promo_clock +=
                    exp_sample(&mut self.rng, self.cfg.promotions_per_day / 24.0).max(1);
                self.next_promo = opening_hours_start(&self.cfg, self.promo_clock);
                self.start_promotion(t);
            }
            return true;
        }
        let Some(((t, _), slot)) = self.pop_pending() else {
            return false;
        };
        let Some(p) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return true;
        };
        self.free_slots.push(slot);
        self.now = t;
        if t >= self.end && !matches!(p, Pending::Emit(_)) {
            return true; // the run is over: later steps are not simulated
        }
        match p {
            Pending::Emit(kind) => self.deliver(t, kind),
            Pending::Session(s) => self.step_session(t, s),
            Pending::Restock {
                store,
                sku,
                qty,
                kind,
            } => {
                let i = self.idx(store, sku);
                self.on_hand[i] += qty as i64;
                if matches!(kind, InvKind::Receipt | InvKind::Transfer) {
                    self.on_order[i] = false;
                }
                self.push(
                    t,
                    Pending::Emit(Kind::Inventory(Movement {
                        store,
                        sku,
                        kind,
                        delta: qty,
                    })),
                );
            }
            Pending::PromoEnd(id) => {
                self.active_promos.remove(&id);
                self.apply_promotions(t);
            }
            Pending::Tick => {
                self.rebuild_weights(t);
                self.push(t + HOUR, Pending::Tick);
            }
            Pending::OpeningStock => {
                // the opening stocktake: every store×SKU's opening stock booked as a count
                for store in 1..=self.cfg.stores {
                    for sku in 1..=self.cfg.skus {
                        let on_hand = self.on_hand[self.idx(store, sku)];
                        let delta = i32::try_from(on_hand).unwrap_or(i32::MAX);
                        self.push(
                            t,
                            Pending::Emit(Kind::Inventory(Movement {
                                store,
                                sku,
                                kind: InvKind::Count,
                                delta,
                            })),
                        );
                    }
                }
            }
            Pending::CycleCount => {
                self.cycle_count(t);
                self.push(t + MICROS_PER_DAY, Pending::CycleCount);
            }
        }
        true
    }

    /// The key of the earliest pending step.
    fn pending_first(&self) -> Option<(i64, u64)> {
        match (self.pending[0].first_key(), self.pending[1].first_key()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes the earliest pending step.
    fn pop_pending(&mut self) -> Option<((i64, u64), u32)> {
        let first = self.pending_first()?;
        let queue = usize::from(self.pending[0].first_key() != Some(first));
        self.pending[queue].pop_first()
    }

    /// The earliest time anything not yet delivered can still get.
    fn frontier(&self) -> i64 {
        let pending = self.pending_first().map(|k| k.0).unwrap_or(i64::MAX);
        let arrivals = self
            .next_receipt
            .min(self.next_session)
            .min(self.next_promo);
        pending.min(if arrivals < self.end {
            arrivals
        } else {
            i64::MAX
        })
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            let frontier = self.frontier();
            if self.delivery.first_key().is_some_and(|k| k.0 <= frontier) {
                return self.delivery.pop_first().map(|(_, e)| e);
            }
            if !self.advance() {
                return self.delivery.pop_first().map(|(_, e)| e);
            }
        }
    }
}

/// The time `t`, or the first full hour after it, at which a promotion of two hours fits into the
/// opening hours: promotions start on the hour while the stores are open.
fn opening_hours_start(cfg: &Config, t: i64) -> i64 {
    let day = t.div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY;
    let open = cfg.open_hour as i64 * HOUR;
    let last = (cfg.close_hour as i64 - 2).max(cfg.open_hour as i64) * HOUR;
    let next_hour = (t - day + HOUR - 1).div_euclid(HOUR) * HOUR;
    if next_hour < open {
        day + open
    } else if next_hour <= last {
        day + next_hour
    } else {
        day + MICROS_PER_DAY + open
    }
}

/// The (s, S) levels of every store×SKU, scaled to its expected demand μ (units per open hour at
/// the week's average traffic: receipts per hour × store size × lines per receipt × the SKU's
/// share of lines × its mean quantity): s covers twice the demand over the lead time (the busy
/// hours and days run at up to twice the average), S a day's demand above s; the configured
/// `reorder-point` and `order-up-to` are the floors for slow sellers.
fn stock_policy(cfg: &Config, catalog: &crate::model::Catalog) -> (Vec<i64>, Vec<i64>) {
    let total: f64 = catalog
        .skus
        .iter()
        .map(|s| s.weight)
        .sum::<f64>()
        .max(1e-12);
    let lead_hours = cfg.lead_time as f64 / HOUR as f64;
    let open_hours = cfg.close_hour.saturating_sub(cfg.open_hour) as f64;
    let mut reorder = Vec::with_capacity(catalog.store_weights.len() * catalog.skus.len());
    let mut order_to = Vec::with_capacity(reorder.capacity());
    for &w in &catalog.store_weights {
        for sku in &catalog.skus {
            let mu = cfg.receipts_per_hour
                * w
                * cfg.basket_mean
                * (sku.weight / total)
                * (1.0 + crate::model::extra_units(sku.base_price));
            let s = cfg.reorder_point.max((2.0 * mu * lead_hours).ceil() as i64);
            reorder.push(s);
            order_to.push(cfg.order_up_to.max(s + (mu * open_hours).ceil() as i64));
        }
    }
    (reorder, order_to)
}
