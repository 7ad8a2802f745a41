//! The `nexmark` connector: the Nexmark benchmark's event generator as a source, with the option
//! names of Flink's nexmark connector (nexmark/nexmark, `NexmarkSourceOptions`).
//!
//! The model (that of nexmark/nexmark's generator, re-implemented): event number `n` is a person, an auction or a bid by
//! `n mod (person + auction + bid proportion)` (1 : 3 : 46 by default); its time is
//! `base-time + n × 1e6 / first-event.rate` µs, truncated to the millisecond; ids count up from
//! 1000 (persons, auctions) so bids, auctions and persons join; most bids go to a "hot" auction
//! and come from a "hot" bidder (`bid.hot-ratio.*`), most auctions from a hot seller
//! (`auction.hot-ratio.sellers`); the other ids are drawn from the last 1000 persons or the last
//! 100 auctions (plus a small lead of ids not yet generated); prices are `round(10^(6u) × 100)`;
//! categories 10–14; an auction expires within about twice the time 100 auctions take; half the
//! bids come from four hot channels (Google, Facebook, Baidu, Apple), the rest from
//! `channel-0` … `channel-9999`, whose URL carries a `channel_id` nine times in ten; `extra` pads
//! each event to its `*.avg-size` on average.
//!
//! The table declares `event_type INT` and any of the `person`, `auction` and `bid` ROW columns
//! (their fields by name, any subset and order), as Nexmark's DDL does (the event time field is
//! `customTime`, as in Nexmark's DDL for Flink 2, where `dateTime` became a reserved word;
//! `dateTime` is accepted for it too); a row holds the ROW of
//! its kind and NULL in the others. Each event draws its randomness from a generator seeded by
//! `seed` and its number, so the stream is the same for the same options, any prefix of it is the
//! same whatever `events.num`, and a checkpoint only records how many events were emitted. No
//! allocation per event: strings are drawn into a reused buffer and copied into the row's heap.

use crate::{opt, Connector, ConnectorError, OptionSpec, TableSpec};
use std::time::Instant;
use tillflow_runtime::operator::{Poll, Sink, Source, SourceMetrics};
use tillflow_runtime::Result;
use tillflow_types::nested::{push_bytes_payload, push_scalar_payload, span_from};
use tillflow_types::{DataType, Field, Row, Schema, Value};

/// The `nexmark` connector.
pub struct Nexmark;

const OPTIONS: &[OptionSpec] = &[
    opt("rate.shape"),
    opt("rate.period"),
    opt("rate.limited"),
    opt("first-event.rate"),
    opt("next-event.rate"),
    opt("person.avg-size"),
    opt("auction.avg-size"),
    opt("bid.avg-size"),
    opt("person.proportion"),
    opt("auction.proportion"),
    opt("bid.proportion"),
    opt("bid.hot-ratio.auctions"),
    opt("bid.hot-ratio.bidders"),
    opt("auction.hot-ratio.sellers"),
    opt("events.num"),
    opt("keep-alive"),
    opt("stop-at"),
    opt("max-emit-speed"),
    opt("seed"),
    opt("base-time"),
];

impl Connector for Nexmark {
    fn name(&self) -> &'static str {
        "nexmark"
    }
    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }
    fn uses_format(&self) -> bool {
        false
    }
    fn source(&self, table: &TableSpec) -> std::result::Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(NexmarkSource::new(table)?))
    }
    fn sink(&self, table: &TableSpec) -> std::result::Result<Box<dyn Sink>, ConnectorError> {
        Err(table.error("the nexmark connector is a generator: it can only be read"))
    }
    fn sink_accepts_changes(&self, _table: &TableSpec) -> bool {
        false
    }
}

/// The generator's parameters, read from the table's options without any I/O (so `validate`
/// reports a bad value).
#[derive(Clone, Debug, PartialEq)]
pub struct NexmarkConfig {
    /// Events per second of event time (`first-event.rate`).
    pub first_event_rate: u64,
    /// `next-event.rate` (checked, and used as Flink's generator does: not at all, the rate of
    /// event time is the first rate).
    pub next_event_rate: u64,
    /// Whether the source paces itself to the event times in wall-clock time
    /// (`rate.limited` = true or `max-emit-speed` = false).
    pub paced: bool,
    /// Average sizes in bytes the `extra` padding aims at.
    pub person_avg_size: u64,
    /// See `person_avg_size`.
    pub auction_avg_size: u64,
    /// See `person_avg_size`.
    pub bid_avg_size: u64,
    /// Proportions of persons, auctions and bids.
    pub person_proportion: u64,
    /// See `person_proportion`.
    pub auction_proportion: u64,
    /// See `person_proportion`.
    pub bid_proportion: u64,
    /// One bid in this many goes to a random auction, the others to a hot one.
    pub hot_auction_ratio: u64,
    /// One bid in this many comes from a random bidder, the others from a hot one.
    pub hot_bidder_ratio: u64,
    /// One auction in this many has a random seller, the others a hot one.
    pub hot_seller_ratio: u64,
    /// Number of events; 0 = unbounded.
    pub events_num: u64,
    /// The source ends after this many events (`stop-at`; negative = never).
    pub stop_at: i64,
    /// Whether the source stays open (idle) after its last event instead of ending.
    pub keep_alive: bool,
    /// Seed of the randomness.
    pub seed: u64,
    /// Time of event 0, milliseconds since the epoch (`base-time`, default 2024-01-01 00:00:00).
    pub base_time_ms: i64,
}

/// Persons active at once: random sellers and bidders are drawn from the last this many.
const ACTIVE_PEOPLE: u64 = 1000;
/// Auctions in flight: random bids go to one of the last this many.
const IN_FLIGHT_AUCTIONS: u64 = 100;
/// Ids not generated yet that a random draw may still pick.
const ID_LEAD: u64 = 10;
/// Hot sellers, bidders and auctions are one in this many ids.
const HOT_GROUP: u64 = 100;
const FIRST_ID: i64 = 1000;
const FIRST_CATEGORY: i64 = 10;
const CATEGORIES: u64 = 5;
const CHANNELS: u64 = 10_000;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];

/// Parses a Flink duration (`600 s`, `10 min`, `1h`, `500ms`, `30`: milliseconds) into ms.
fn duration_ms(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split].parse().ok()?;
    let mult = match v[split..].trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "min" | "m" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

impl NexmarkConfig {
    /// Reads and checks the options of `table`.
    pub fn from_table(table: &TableSpec) -> std::result::Result<Self, ConnectorError> {
        let int = |key: &str, default: i64, min: i64| -> std::result::Result<i64, ConnectorError> {
            let v = table.int_option(key, default)?;
            if v < min {
                return Err(table.error(format!("option '{key}' must be at least {min}, got {v}")));
            }
            Ok(v)
        };
        let size = |key: &str, default: u64| -> std::result::Result<u64, ConnectorError> {
            match table.option(key) {
                None => Ok(default),
                Some(v) => tillflow_types::units::parse_memory_size(v).ok_or_else(|| {
                    table.error(format!(
                        "option '{key}' must be a memory size such as '200b' or '1kb', got '{v}'"
                    ))
                }),
            }
        };
        if let Some(v) = table.option("rate.shape") {
            if !matches!(v.trim().to_ascii_uppercase().as_str(), "SQUARE" | "SINE") {
                return Err(table.error(format!(
                    "option 'rate.shape' must be 'SQUARE' or 'SINE', got '{v}'"
                )));
            }
        }
        if let Some(v) = table.option("rate.period") {
            duration_ms(v).ok_or_else(|| {
                table.error(format!(
                    "option 'rate.period' must be a duration such as '600 s' or '10 min', got '{v}'"
                ))
            })?;
        }
        let base_time_ms = match table.option("base-time") {
            None => 1_704_067_200_000, // 2024-01-01 00:00:00 UTC
            Some(v) => match v.trim().parse::<i64>() {
                Ok(ms) => ms,
                Err(_) => crate::format::json::parse_json_timestamp(v.trim(), false)
                    .map(|us| us.div_euclid(1000))
                    .ok_or_else(|| {
                        table.error(format!(
                            "option 'base-time' must be milliseconds since the epoch or a timestamp 'yyyy-MM-dd HH:mm:ss', got '{v}'"
                        ))
                    })?,
            },
        };
        let cfg = NexmarkConfig {
            first_event_rate: int("first-event.rate", 10_000, 1)? as u64,
            next_event_rate: int("next-event.rate", 10_000, 1)? as u64,
            paced: table.bool_option("rate.limited", false)?
                || !table.bool_option("max-emit-speed", true)?,
            person_avg_size: size("person.avg-size", 200)?,
            auction_avg_size: size("auction.avg-size", 500)?,
            bid_avg_size: size("bid.avg-size", 100)?,
            person_proportion: int("person.proportion", 1, 0)? as u64,
            auction_proportion: int("auction.proportion", 3, 0)? as u64,
            bid_proportion: int("bid.proportion", 46, 0)? as u64,
            hot_auction_ratio: int("bid.hot-ratio.auctions", 2, 1)? as u64,
            hot_bidder_ratio: int("bid.hot-ratio.bidders", 4, 1)? as u64,
            hot_seller_ratio: int("auction.hot-ratio.sellers", 4, 1)? as u64,
            events_num: int("events.num", 0, 0)? as u64,
            stop_at: table.int_option("stop-at", -1)?,
            keep_alive: table.bool_option("keep-alive", false)?,
            seed: table.int_option("seed", 0)? as u64,
            base_time_ms,
        };
        if cfg.total() == 0 {
            return Err(table.error(
                "the options 'person.proportion', 'auction.proportion' and 'bid.proportion' are all 0: there is no event to generate",
            ));
        }
        if cfg.person_proportion == 0 && cfg.total() != cfg.person_proportion {
            return Err(table.error(
                "'person.proportion' must be at least 1 when auctions or bids are generated (they refer to persons)",
            ));
        }
        if cfg.auction_proportion == 0 && cfg.bid_proportion > 0 {
            return Err(table.error(
                "'auction.proportion' must be at least 1 when bids are generated (they refer to auctions)",
            ));
        }
        Ok(cfg)
    }

    fn total(&self) -> u64 {
        self.person_proportion + self.auction_proportion + self.bid_proportion
    }

    /// The event time of event number `n`, milliseconds since the epoch.
    pub fn time_ms(&self, n: u64) -> i64 {
        let delay_us = 1e6 / self.first_event_rate as f64;
        self.base_time_ms + ((n as f64 * delay_us) as i64) / 1000
    }

    /// The highest person id (from 0) generated up to event `n`, `n` itself included.
    fn last_person(&self, n: u64) -> u64 {
        let (epoch, offset) = (n / self.total(), n % self.total());
        epoch * self.person_proportion + offset.min(self.person_proportion.saturating_sub(1))
    }

    /// The highest auction id (from 0) generated up to event `n`, `n` itself included
    /// (-1 before the first).
    fn last_auction(&self, n: u64) -> i64 {
        let (epoch, offset) = ((n / self.total()) as i64, n % self.total());
        let ap = self.auction_proportion as i64;
        if offset < self.person_proportion {
            (epoch - 1) * ap + ap - 1
        } else if offset >= self.person_proportion + self.auction_proportion {
            epoch * ap + ap - 1
        } else {
            epoch * ap + (offset - self.person_proportion) as i64
        }
    }
}

/// The ROW types of the three kinds of events, as Nexmark's DDL declares them.
pub fn person_type() -> DataType {
    DataType::row(vec![
        ("id".into(), DataType::BigInt),
        ("name".into(), DataType::String(None)),
        ("emailAddress".into(), DataType::String(None)),
        ("creditCard".into(), DataType::String(None)),
        ("city".into(), DataType::String(None)),
        ("state".into(), DataType::String(None)),
        ("customTime".into(), DataType::Timestamp(3)),
        ("extra".into(), DataType::String(None)),
    ])
}

/// See [`person_type`].
pub fn auction_type() -> DataType {
    DataType::row(vec![
        ("id".into(), DataType::BigInt),
        ("itemName".into(), DataType::String(None)),
        ("description".into(), DataType::String(None)),
        ("initialBid".into(), DataType::BigInt),
        ("reserve".into(), DataType::BigInt),
        ("customTime".into(), DataType::Timestamp(3)),
        ("expires".into(), DataType::Timestamp(3)),
        ("seller".into(), DataType::BigInt),
        ("category".into(), DataType::BigInt),
        ("extra".into(), DataType::String(None)),
    ])
}

/// See [`person_type`].
pub fn bid_type() -> DataType {
    DataType::row(vec![
        ("auction".into(), DataType::BigInt),
        ("bidder".into(), DataType::BigInt),
        ("price".into(), DataType::BigInt),
        ("channel".into(), DataType::String(None)),
        ("url".into(), DataType::String(None)),
        ("customTime".into(), DataType::Timestamp(3)),
        ("extra".into(), DataType::String(None)),
    ])
}

/// Nexmark's full schema: `event_type INT, person ROW<…>, auction ROW<…>, bid ROW<…>`.
pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("event_type", DataType::Int),
        Field::new("person", person_type()),
        Field::new("auction", auction_type()),
        Field::new("bid", bid_type()),
    ])
}

/// What a declared column holds.
#[derive(Clone, Debug)]
enum Column {
    EventType,
    /// The event kind (0, 1, 2) and, per declared field, its position in the kind's fields.
    Entity(u8, Vec<usize>),
}

fn same_type(declared: DataType, model: DataType) -> bool {
    declared == model
        || (declared.is_string() && model.is_string())
        || matches!(
            (declared, model),
            (DataType::Timestamp(_), DataType::Timestamp(_))
        )
}

/// Maps the table's columns onto the model's.
fn columns(table: &TableSpec) -> std::result::Result<Vec<Column>, ConnectorError> {
    let model = schema();
    let mut out = Vec::new();
    for f in &table.schema.fields {
        let Some(i) = model
            .fields
            .iter()
            .position(|m| m.name.eq_ignore_ascii_case(&f.name))
        else {
            return Err(table.error(format!(
                "column `{}` is not a Nexmark column (event_type INT, person ROW<…>, auction ROW<…>, bid ROW<…>)",
                f.name
            )));
        };
        let want = model.fields[i].data_type;
        if i == 0 {
            if !f.data_type.is_integer() {
                return Err(table.error(format!(
                    "column `{}` must be INT, not {}",
                    f.name, f.data_type
                )));
            }
            out.push(Column::EventType);
            continue;
        }
        let (DataType::Row(declared), DataType::Row(model_row)) = (f.data_type, want) else {
            return Err(table.error(format!(
                "column `{}` must be {want}, not {}",
                f.name, f.data_type
            )));
        };
        let mut fields = Vec::with_capacity(declared.fields.len());
        for (name, ty) in &declared.fields {
            // Nexmark's DDL before Flink 2 (where DATETIME became reserved) says dateTime
            let name_in_model = if name.eq_ignore_ascii_case("dateTime") {
                "customTime"
            } else {
                name.as_str()
            };
            let j = model_row
                .fields
                .iter()
                .position(|(n, _)| n.eq_ignore_ascii_case(name_in_model))
                .filter(|&j| same_type(*ty, model_row.fields[j].1))
                .ok_or_else(|| {
                    table.error(format!(
                        "field `{}.{name} {ty}` is not one of Nexmark's: {want}",
                        f.name
                    ))
                })?;
            fields.push(j);
        }
        out.push(Column::Entity((i - 1) as u8, fields));
    }
    Ok(out)
}

/// SplitMix64's finalizer: a bijective 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64, seeded per event: fast, well distributed, and free of state between events.
struct Rng(u64);

impl Rng {
    /// The generator for item `n` of `stream`: its state is a hash of the three, so the draws
    /// of different items are unrelated (an additive seed would give shifted copies).
    fn new(seed: u64, stream: u64, n: u64) -> Self {
        Rng(mix(
            mix(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03)) ^ n
        ))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in `0..k` (`k` > 0).
    fn below(&mut self, k: u64) -> u64 {
        ((self.next() as u128 * k.max(1) as u128) >> 64) as u64
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One field value of a generated event.
#[derive(Clone, Copy, Debug, Default)]
enum Slot {
    #[default]
    Null,
    Int(i64),
    /// Milliseconds since the epoch.
    Time(i64),
    /// A span of the generator's string buffer.
    Str(u32, u32),
}

/// The generator: event number → event, into a reused buffer.
pub struct Generator {
    cfg: NexmarkConfig,
    /// Strings of the current event.
    buf: Vec<u8>,
    /// The current event's kind (0 person, 1 auction, 2 bid) and fields in model order.
    kind: u8,
    fields: [Slot; 10],
    /// The hot channels' URLs, drawn once.
    hot_urls: Vec<u8>,
    hot_url_ends: [usize; 4],
}

impl Generator {
    /// A generator for `cfg`.
    pub fn new(cfg: NexmarkConfig) -> Self {
        let mut hot_urls = Vec::new();
        let mut hot_url_ends = [0; 4];
        for (i, end) in hot_url_ends.iter_mut().enumerate() {
            let mut rng = Rng::new(cfg.seed, 3, CHANNELS + i as u64);
            base_url(&mut rng, &mut hot_urls);
            *end = hot_urls.len();
        }
        Generator {
            cfg,
            buf: Vec::with_capacity(1024),
            kind: 0,
            fields: [Slot::Null; 10],
            hot_urls,
            hot_url_ends,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NexmarkConfig {
        &self.cfg
    }

    fn push_str(&mut self, s: &[u8]) -> Slot {
        let start = self.buf.len() as u32;
        self.buf.extend_from_slice(s);
        Slot::Str(start, self.buf.len() as u32)
    }

    /// A random string of 3 to `max - 1` characters: letters, and a space one time in 13
    /// (trimmed).
    fn random_string(&mut self, rng: &mut Rng, max: u64) -> Slot {
        let len = 3 + rng.below(max - 3);
        let start = self.buf.len();
        for _ in 0..len {
            let c = if rng.below(13) == 0 {
                b' '
            } else {
                b'a' + rng.below(26) as u8
            };
            self.buf.push(c);
        }
        while self.buf.len() > start && self.buf.last() == Some(&b' ') {
            self.buf.pop();
        }
        let lead = self.buf[start..].iter().take_while(|&&c| c == b' ').count();
        if lead > 0 {
            self.buf.drain(start..start + lead);
        }
        Slot::Str(start as u32, self.buf.len() as u32)
    }

    /// Letters padding an event of `current` bytes to `avg` bytes on average (±20 %).
    fn extra(&mut self, rng: &mut Rng, current: u64, avg: u64) -> Slot {
        let start = self.buf.len() as u32;
        if current <= avg {
            let want = avg - current;
            let delta = (want as f64 * 0.2).round() as u64;
            let len = want - delta + if delta == 0 { 0 } else { rng.below(2 * delta) };
            let mut left = 0;
            let mut bits = 0u64;
            for _ in 0..len {
                if left == 0 {
                    bits = rng.next();
                    left = 13; // 26^13 < 2^64
                }
                self.buf.push(b'a' + (bits % 26) as u8);
                bits /= 26;
                left -= 1;
            }
        }
        Slot::Str(start, self.buf.len() as u32)
    }

    fn len(&self, s: Slot) -> u64 {
        match s {
            Slot::Str(a, b) => (b - a) as u64,
            _ => 0,
        }
    }

    fn price(rng: &mut Rng) -> i64 {
        (10f64.powf(rng.unit() * 6.0) * 100.0).round() as i64
    }

    /// A random person id (from 0) among the active ones, with a small lead.
    fn random_person(&self, rng: &mut Rng, n: u64) -> u64 {
        let people = self.cfg.last_person(n) + 1;
        let active = people.min(ACTIVE_PEOPLE);
        people - active + rng.below(active + ID_LEAD)
    }

    /// A random auction id (from 0) among those in flight, with a small lead.
    fn random_auction(&self, rng: &mut Rng, n: u64) -> i64 {
        let max = self.cfg.last_auction(n);
        let min = (max - IN_FLIGHT_AUCTIONS as i64).max(0);
        min + rng.below((max - min + 1 + ID_LEAD as i64).max(1) as u64) as i64
    }

    /// Generates event number `n` into the generator; returns its kind (0, 1, 2).
    pub fn generate(&mut self, n: u64) -> u8 {
        let cfg = &self.cfg;
        let mut rng = Rng::new(cfg.seed, 0, n);
        let ts = cfg.time_ms(n);
        let rem = n % cfg.total();
        self.buf.clear();
        self.fields = [Slot::Null; 10];
        if rem < cfg.person_proportion {
            self.kind = 0;
            let id = cfg.last_person(n) as i64 + FIRST_ID;
            let start = self.buf.len() as u32;
            self.buf.extend_from_slice(
                FIRST_NAMES[rng.below(FIRST_NAMES.len() as u64) as usize].as_bytes(),
            );
            self.buf.push(b' ');
            self.buf.extend_from_slice(
                LAST_NAMES[rng.below(LAST_NAMES.len() as u64) as usize].as_bytes(),
            );
            let name = Slot::Str(start, self.buf.len() as u32);
            let start = self.buf.len() as u32;
            let _ = self.random_string(&mut rng, 7);
            self.buf.push(b'@');
            let _ = self.random_string(&mut rng, 5);
            self.buf.extend_from_slice(b".com");
            let email = Slot::Str(start, self.buf.len() as u32);
            let start = self.buf.len() as u32;
            for i in 0..4 {
                if i > 0 {
                    self.buf.push(b' ');
                }
                let d = rng.below(10_000);
                for p in [1000, 100, 10, 1] {
                    self.buf.push(b'0' + ((d / p) % 10) as u8);
                }
            }
            let card = Slot::Str(start, self.buf.len() as u32);
            let city = self.push_str(CITIES[rng.below(CITIES.len() as u64) as usize].as_bytes());
            let state = self.push_str(STATES[rng.below(STATES.len() as u64) as usize].as_bytes());
            let size = 8
                + self.len(name)
                + self.len(email)
                + self.len(card)
                + self.len(city)
                + self.len(state);
            let avg = self.cfg.person_avg_size;
            let extra = self.extra(&mut rng, size, avg);
            self.fields[..8].copy_from_slice(&[
                Slot::Int(id),
                name,
                email,
                card,
                city,
                state,
                Slot::Time(ts),
                extra,
            ]);
        } else if rem < cfg.person_proportion + cfg.auction_proportion {
            self.kind = 1;
            let id = cfg.last_auction(n) + FIRST_ID;
            let seller = if rng.below(cfg.hot_seller_ratio) > 0 {
                (cfg.last_person(n) / HOT_GROUP) * HOT_GROUP
            } else {
                self.random_person(&mut rng, n)
            } as i64
                + FIRST_ID;
            let category = FIRST_CATEGORY + rng.below(CATEGORIES) as i64;
            let initial = Self::price(&mut rng);
            let cfg = &self.cfg;
            let ahead = IN_FLIGHT_AUCTIONS * cfg.total() / cfg.auction_proportion;
            let horizon = cfg.time_ms(n + ahead) - ts;
            let expires = ts + 1 + rng.below((horizon * 2).max(1) as u64) as i64;
            let item = self.random_string(&mut rng, 20);
            let desc = self.random_string(&mut rng, 100);
            let reserve = initial + Self::price(&mut rng);
            let size = 8 + self.len(item) + self.len(desc) + 40;
            let avg = self.cfg.auction_avg_size;
            let extra = self.extra(&mut rng, size, avg);
            self.fields = [
                Slot::Int(id),
                item,
                desc,
                Slot::Int(initial),
                Slot::Int(reserve),
                Slot::Time(ts),
                Slot::Time(expires),
                Slot::Int(seller),
                Slot::Int(category),
                extra,
            ];
        } else {
            self.kind = 2;
            let auction = if rng.below(cfg.hot_auction_ratio) > 0 {
                (cfg.last_auction(n) / HOT_GROUP as i64) * HOT_GROUP as i64
            } else {
                self.random_auction(&mut rng, n)
            } + FIRST_ID;
            let bidder = if rng.below(cfg.hot_bidder_ratio) > 0 {
                (cfg.last_person(n) / HOT_GROUP) * HOT_GROUP + 1
            } else {
                self.random_person(&mut rng, n)
            } as i64
                + FIRST_ID;
            let price = Self::price(&mut rng);
            let (channel, url);
            if rng.below(2) > 0 {
                let i = rng.below(HOT_CHANNELS.len() as u64) as usize;
                channel = self.push_str(HOT_CHANNELS[i].as_bytes());
                let from = if i == 0 { 0 } else { self.hot_url_ends[i - 1] };
                let start = self.buf.len() as u32;
                self.buf
                    .extend_from_slice(&self.hot_urls[from..self.hot_url_ends[i]]);
                url = Slot::Str(start, self.buf.len() as u32);
            } else {
                let k = rng.below(CHANNELS);
                let start = self.buf.len() as u32;
                self.buf.extend_from_slice(b"channel-");
                push_decimal(&mut self.buf, k);
                channel = Slot::Str(start, self.buf.len() as u32);
                // a channel's URL is the same in every bid: drawn from its own seed
                let mut crng = Rng::new(self.cfg.seed, 3, k);
                let start = self.buf.len() as u32;
                base_url(&mut crng, &mut self.buf);
                if crng.below(10) > 0 {
                    self.buf.extend_from_slice(b"&channel_id=");
                    push_decimal(
                        &mut self.buf,
                        (k as i32).reverse_bits().unsigned_abs() as u64,
                    );
                }
                url = Slot::Str(start, self.buf.len() as u32);
            }
            let avg = self.cfg.bid_avg_size;
            let extra = self.extra(&mut rng, 32, avg);
            self.fields[..7].copy_from_slice(&[
                Slot::Int(auction),
                Slot::Int(bidder),
                Slot::Int(price),
                channel,
                url,
                Slot::Time(ts),
                extra,
            ]);
        }
        self.kind
    }

    /// Appends the encoding of the current event's ROW with the fields `fields` (positions in
    /// the model's order) to `heap`; returns its value.
    fn write_row(&self, fields: &[usize], heap: &mut Vec<u8>) -> Value {
        let off = heap.len();
        for &j in fields {
            match self.fields.get(j).copied().unwrap_or_default() {
                Slot::Null => heap.push(0),
                Slot::Int(v) => {
                    heap.push(1);
                    push_scalar_payload(heap, Value::Int(v), DataType::BigInt);
                }
                Slot::Time(ms) => {
                    heap.push(1);
                    push_scalar_payload(heap, Value::Timestamp(ms * 1000), DataType::Timestamp(3));
                }
                Slot::Str(a, b) => {
                    heap.push(1);
                    push_bytes_payload(heap, &self.buf[a as usize..b as usize]);
                }
            }
        }
        Value::Str(span_from(heap, off))
    }
}

/// `https://www.nexmark.com/<a>/<b>/<c>/item.htm?query=1` with three short random path parts.
fn base_url(rng: &mut Rng, out: &mut Vec<u8>) {
    out.extend_from_slice(b"https://www.nexmark.com/");
    for _ in 0..3 {
        let len = 3 + rng.below(2);
        for _ in 0..len {
            let c = if rng.below(13) == 0 {
                b'_'
            } else {
                b'a' + rng.below(26) as u8
            };
            out.push(c);
        }
        out.push(b'/');
    }
    out.extend_from_slice(b"item.htm?query=1");
}

fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The Nexmark generator as a source.
pub struct NexmarkSource {
    table: String,
    schema: Schema,
    columns: Vec<Column>,
    generator: Generator,
    /// Events emitted so far (the next event's number).
    next: u64,
    /// The number of events, when bounded.
    limit: Option<u64>,
    started: Instant,
    metrics: SourceMetrics,
}

impl NexmarkSource {
    /// Builds the generator for the table's options and checks its columns.
    pub fn new(table: &TableSpec) -> std::result::Result<Self, ConnectorError> {
        let cfg = NexmarkConfig::from_table(table)?;
        let columns = columns(table)?;
        let mut limit = (cfg.events_num > 0).then_some(cfg.events_num);
        if cfg.stop_at >= 0 {
            limit = Some(limit.map_or(cfg.stop_at as u64, |l| l.min(cfg.stop_at as u64)));
        }
        Ok(NexmarkSource {
            table: table.name.clone(),
            schema: table.schema.clone(),
            columns,
            generator: Generator::new(cfg),
            next: 0,
            limit,
            started: Instant::now(),
            metrics: SourceMetrics::default(),
        })
    }
}

/// Checks a nexmark table's options and columns (what `validate` runs).
pub fn check(table: &TableSpec) -> std::result::Result<(), ConnectorError> {
    NexmarkConfig::from_table(table)?;
    columns(table).map(|_| ())
}

impl Source for NexmarkSource {
    fn describe(&self) -> String {
        format!("nexmark table `{}`", self.table)
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn poll(&mut self, row: &mut Row) -> Result<Poll> {
        if self.limit.is_some_and(|l| self.next >= l) {
            return Ok(if self.generator.cfg.keep_alive {
                Poll::Idle
            } else {
                Poll::End
            });
        }
        let cfg = &self.generator.cfg;
        if cfg.paced {
            let due_ms = cfg.time_ms(self.next) - cfg.base_time_ms;
            if (self.started.elapsed().as_millis() as i64) < due_ms {
                return Ok(Poll::Idle);
            }
        }
        let kind = self.generator.generate(self.next);
        self.next += 1;
        for c in &self.columns {
            let v = match c {
                Column::EventType => Value::Int(kind as i64),
                Column::Entity(k, fields) if *k == kind => {
                    self.generator.write_row(fields, &mut row.heap)
                }
                Column::Entity(..) => Value::Null,
            };
            row.values.push(v);
        }
        self.metrics.records += 1;
        Ok(Poll::Record)
    }

    fn bounded(&self) -> bool {
        self.limit.is_some() && !self.generator.cfg.keep_alive
    }

    fn resumable(&self) -> bool {
        true
    }

    /// Events are drawn from their own number: the count emitted is the whole position.
    fn snapshot_position(&mut self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.next.to_le_bytes());
        Ok(())
    }

    fn restore_position(&mut self, input: &[u8]) -> Result<()> {
        self.next = tillflow_runtime::state::read_u64(input, &mut 0)?;
        if self.generator.cfg.paced {
            let cfg = &self.generator.cfg;
            let due = (cfg.time_ms(self.next) - cfg.base_time_ms).max(0) as u64;
            self.started = Instant::now()
                .checked_sub(std::time::Duration::from_millis(due))
                .unwrap_or_else(Instant::now);
        }
        Ok(())
    }

    fn progress(&self) -> Option<f64> {
        self.limit
            .filter(|&l| l > 0)
            .map(|l| self.next as f64 / l as f64)
    }

    fn metrics(&self) -> SourceMetrics {
        self.metrics.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tillflow_types::nested::row_field;

    fn spec(opts: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            name: "datagen".into(),
            schema: schema(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            primary_key: vec![],
            metadata: vec![],
            partition_keys: vec![],
        }
    }

    fn run(opts: &[(&str, &str)]) -> Vec<Row> {
        let mut s = NexmarkSource::new(&spec(opts)).unwrap();
        let mut rows = vec![];
        let mut row = Row::default();
        loop {
            row.clear();
            match s.poll(&mut row).unwrap() {
                Poll::Record => rows.push(row.clone()),
                _ => break,
            }
        }
        rows
    }

    #[test]
    fn proportions_ids_and_times_follow_the_model() {
        let rows = run(&[
            ("connector", "nexmark"),
            ("events.num", "5000"),
            ("first-event.rate", "1000"),
        ]);
        assert_eq!(rows.len(), 5000);
        let kinds: Vec<i64> = rows
            .iter()
            .map(|r| match r.values[0] {
                Value::Int(k) => k,
                _ => -1,
            })
            .collect();
        assert_eq!(kinds.iter().filter(|&&k| k == 0).count(), 100);
        assert_eq!(kinds.iter().filter(|&&k| k == 1).count(), 300);
        assert_eq!(kinds.iter().filter(|&&k| k == 2).count(), 4600);
        let (Value::Str(p), Value::Str(a)) = (rows[0].values[1], rows[1].values[2]) else {
            panic!("{:?}", &rows[..2]);
        };
        let DataType::Row(pt) = person_type() else {
            unreachable!()
        };
        let DataType::Row(at) = auction_type() else {
            unreachable!()
        };
        assert_eq!(row_field(&rows[0].heap, p, pt, 0), Value::Int(1000));
        assert_eq!(row_field(&rows[1].heap, a, at, 0), Value::Int(1000));
        // 1000 events per second: event 4999 is 4.999 s after the base time
        let DataType::Row(bt) = bid_type() else {
            unreachable!()
        };
        let Value::Str(b) = rows[4999].values[3] else {
            panic!()
        };
        assert_eq!(
            row_field(&rows[4999].heap, b, bt, 5),
            Value::Timestamp((1_704_067_200_000 + 4999) * 1000)
        );
        // bids refer to auctions and persons already generated (or a few ahead)
        for r in rows.iter().skip(1000) {
            if let Value::Str(b) = r.values[3] {
                let Value::Int(auction) = row_field(&r.heap, b, bt, 0) else {
                    panic!()
                };
                assert!((1000..1000 + 310).contains(&auction), "{auction}");
            }
        }
    }

    #[test]
    fn same_seed_same_events_and_bad_options_are_named() {
        let a = run(&[
            ("connector", "nexmark"),
            ("events.num", "300"),
            ("seed", "7"),
        ]);
        let b = run(&[
            ("connector", "nexmark"),
            ("events.num", "300"),
            ("seed", "7"),
        ]);
        let c = run(&[
            ("connector", "nexmark"),
            ("events.num", "300"),
            ("seed", "8"),
        ]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        for (k, v, want) in [
            ("first-event.rate", "0", "at least 1"),
            ("person.avg-size", "big", "memory size"),
            ("rate.shape", "TRIANGLE", "SQUARE"),
            ("events.num", "x", "integer"),
        ] {
            let e = crate::validate(&spec(&[("connector", "nexmark"), (k, v)]))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(k) && e.contains(want), "{k}: {e}");
        }
        let mut t = spec(&[("connector", "nexmark")]);
        t.schema = Schema::new(vec![Field::new(
            "bid",
            DataType::row(vec![("prize".into(), DataType::BigInt)]),
        )]);
        let e = crate::validate(&t)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("bid.prize"), "{e}");
    }

    #[test]
    fn a_restored_source_goes_on_where_it_stood() {
        let all = run(&[("connector", "nexmark"), ("events.num", "200")]);
        let mut s =
            NexmarkSource::new(&spec(&[("connector", "nexmark"), ("events.num", "200")])).unwrap();
        let mut row = Row::default();
        for _ in 0..120 {
            row.clear();
            s.poll(&mut row).unwrap();
        }
        let mut pos = vec![];
        s.snapshot_position(&mut pos).unwrap();
        let mut r =
            NexmarkSource::new(&spec(&[("connector", "nexmark"), ("events.num", "200")])).unwrap();
        r.restore_position(&pos).unwrap();
        row.clear();
        assert_eq!(r.poll(&mut row).unwrap(), Poll::Record);
        assert_eq!(row, all[120]);
    }
}
