//! The retail pipelines of `examples/retail/demo/`, run by the real binary on generated events, and
//! checked against a plain batch computation over the same events (from the generator library,
//! not from the engine).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use tillflow_retail::generator::{ClickKind, Kind};
use tillflow_retail::{Config, Event, Generator, Stream};
use tillflow_types::temporal::{MICROS_PER_DAY, MICROS_PER_SECOND};

const MIN: i64 = 60 * MICROS_PER_SECOND;
const SEED: u64 = 11;
const DURATION: &str = "20h";
/// The story the generator injects (the same options for the batch reference and the pipelines).
const STORY: [(&str, &str, &str); 3] = [
    (
        "ANOMALIES",
        "anomalies",
        "3@2024-03-01 10:00:00+2h*3; 9@2024-03-01 15:00:00+1h*0.2",
    ),
    ("TREND_SKU", "trend.sku", "40"),
    ("TREND_START", "trend.start", "2024-03-01 06:00:00"),
];

fn events(stream: Stream) -> (Vec<Event>, tillflow_retail::model::Catalog) {
    let mut cfg = Config::default();
    cfg.set("seed", &SEED.to_string()).expect("seed");
    cfg.set("duration", DURATION).expect("duration");
    for (_, key, value) in STORY {
        cfg.set(key, value).expect("story");
    }
    let g = Generator::new(cfg).only(&[stream]);
    let catalog = g.catalog.clone();
    (g.collect(), catalog)
}

fn ts(t: i64) -> String {
    let mut s = String::new();
    tillflow_types::temporal::write_timestamp_sql(&mut s, t, 3);
    s
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.011 + 1e-9 * a.abs().max(b.abs())
}

fn run_pipelines(db: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("examples/retail/demo");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("demo dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let script: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("sql") + "\n")
        .collect();
    let path = db.with_extension("sql");
    std::fs::write(&path, script).expect("write script");
    let vars = [
        format!("SEED={SEED}"),
        format!("DURATION={DURATION}"),
        "START=2024-03-01 00:00:00".into(),
        "END=2024-03-01 20:00:00".into(),
        "PACING=max".into(),
        format!("DB={}", db.display()),
        format!("MODELS={}", dir.join("models").display()),
        "OUT_OF_ORDER=0".into(),
        "LATE=0".into(),
        "RATE=60".into(),
    ];
    let vars: Vec<String> = vars
        .into_iter()
        .chain(STORY.iter().map(|(var, _, value)| format!("{var}={value}")))
        .collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tillflow"));
    cmd.arg("run").arg(&path).arg("--quiet");
    for v in &vars {
        cmd.arg("--var").arg(v);
    }
    let o = cmd.output().expect("run tillflow");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn query<T, F: FnMut(&rusqlite::Row) -> rusqlite::Result<T>>(db: &Path, sql: &str, f: F) -> Vec<T> {
    let conn = rusqlite::Connection::open(db).expect("open db");
    let mut st = conn.prepare(sql).expect("prepare");
    let rows = st
        .query_map([], f)
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    rows
}

#[test]
fn retail_pipelines_match_a_batch_computation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("demo.db");
    run_pipelines(&db);
    let (sales, catalog) = events(Stream::PosSales);
    assert!(
        sales.len() > 10_000,
        "too few sales to test: {}",
        sales.len()
    );
    let sale_lines: Vec<(i64, &tillflow_retail::generator::Sale)> = sales
        .iter()
        .filter_map(|e| match &e.kind {
            Kind::Sale(s) => Some((e.time, s)),
            _ => None,
        })
        .collect();

    // 1. sales per store per minute
    let mut per_min: BTreeMap<(i64, u32), (f64, i64, HashSet<u64>)> = BTreeMap::new();
    for (t, s) in &sale_lines {
        let e = per_min
            .entry((t - t.rem_euclid(MIN), s.store))
            .or_insert((0.0, 0, HashSet::new()));
        e.0 += s.qty as f64 * s.unit_price;
        e.1 += s.qty as i64;
        e.2.insert(s.receipt);
    }
    let got: Vec<(String, i64, f64, i64, i64, f64)> = query(
        &db,
        "SELECT window_start, store_id, revenue, units, receipts, avg_basket FROM sales_per_store_minute",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
    );
    assert_eq!(
        got.len(),
        per_min.len(),
        "one row per store and minute with sales"
    );
    let want: HashMap<(String, i64), &(f64, i64, HashSet<u64>)> = per_min
        .iter()
        .map(|((m, st), v)| ((ts(*m), *st as i64), v))
        .collect();
    for (ws, store, revenue, units, receipts, basket) in &got {
        let w = want
            .get(&(ws.clone(), *store))
            .unwrap_or_else(|| panic!("unexpected row {ws} store {store}"));
        assert!(
            close(*revenue, w.0),
            "{ws} store {store}: revenue {revenue} vs {}",
            w.0
        );
        assert_eq!(*units, w.1, "{ws} store {store}: units");
        assert_eq!(
            *receipts as usize,
            w.2.len(),
            "{ws} store {store}: receipts"
        );
        assert!(
            close(*basket, w.0 / w.2.len() as f64),
            "{ws} store {store}: basket"
        );
    }

    // 2. top-10 SKUs per 10 minutes: the same revenues in the same order
    let mut per_sku: BTreeMap<i64, HashMap<u32, f64>> = BTreeMap::new();
    for (t, s) in &sale_lines {
        *per_sku
            .entry(t - t.rem_euclid(10 * MIN))
            .or_default()
            .entry(s.sku)
            .or_default() += s.qty as f64 * s.unit_price;
    }
    let got: Vec<(String, i64, f64)> = query(
        &db,
        "SELECT window_start, rn, revenue FROM top_skus_10min ORDER BY window_start, rn",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    let mut got_by_window: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (w, _, rev) in got {
        got_by_window.entry(w).or_default().push(rev);
    }
    assert_eq!(got_by_window.len(), per_sku.len());
    for (w, skus) in &per_sku {
        let mut revs: Vec<f64> = skus.values().copied().collect();
        revs.sort_by(|a, b| b.total_cmp(a));
        revs.truncate(10);
        let g = &got_by_window[&ts(*w)];
        assert_eq!(g.len(), revs.len(), "window {}", ts(*w));
        for (a, b) in g.iter().zip(&revs) {
            assert!(close(*a, *b), "window {}: {a} vs {b}", ts(*w));
        }
    }

    // 3. today-so-far revenue per store, every 10 minutes
    let got: Vec<(String, i64, f64)> = query(
        &db,
        "SELECT window_end, store_id, revenue FROM revenue_today",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    let day = sale_lines
        .first()
        .map(|(t, _)| t - t.rem_euclid(MICROS_PER_DAY))
        .unwrap_or(0);
    let mut first: HashMap<u32, i64> = HashMap::new();
    for (t, s) in &sale_lines {
        first
            .entry(s.store)
            .and_modify(|f| *f = (*f).min(*t))
            .or_insert(*t);
    }
    let expected_rows: usize = first
        .values()
        .map(|f| (1..=120).filter(|k| day + k * 10 * MIN > *f).count())
        .sum();
    assert_eq!(
        got.len(),
        expected_rows,
        "one row per store and 10-minute step after its first sale, until the data ends at 20:00"
    );
    for (end, store, revenue) in got.iter().filter(|(_, s, _)| *s <= 3) {
        let end_t = tillflow_types::temporal::parse_timestamp(end).expect("timestamp");
        let want: f64 = sale_lines
            .iter()
            .filter(|(t, s)| s.store as i64 == *store && *t < end_t)
            .map(|(_, s)| s.qty as f64 * s.unit_price)
            .sum();
        assert!(
            close(*revenue, want),
            "store {store} until {end}: {revenue} vs {want}"
        );
    }

    // 4. stock levels: each store×SKU's state at its last movement — on hand = every movement
    // from the opening stocktake on, units sold in the 24 hours up to it, hours of cover at that
    // rate, and the alert (out at 0, low under the 6-hour lead time of cover)
    let (inv, _) = events(Stream::Inventory);
    // per store×SKU: (time, delta, a sale?)
    type Moves = Vec<(i64, i64, bool)>;
    let mut moves: HashMap<(u32, u32), Moves> = HashMap::new();
    for e in &inv {
        if let Kind::Inventory(m) = &e.kind {
            let sale = m.kind == tillflow_retail::generator::InvKind::Sale;
            moves
                .entry((m.store, m.sku))
                .or_default()
                .push((e.time, m.delta as i64, sale));
        }
    }
    type StockRow = (i64, String, String, i64, i64, Option<f64>, String);
    let got: Vec<StockRow> = query(
        &db,
        "SELECT store_id, sku, as_of, on_hand, units_24h, hours_left, alert FROM stock_levels",
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        },
    );
    assert_eq!(got.len(), moves.len(), "one row per store×SKU");
    let mut alerts = 0;
    for (store, sku, as_of, on_hand, units_24h, hours_left, alert) in &got {
        let n: u32 = sku.trim_start_matches("SKU-").parse().expect("sku number");
        let m = &moves[&(*store as u32, n)];
        let last = m.iter().map(|x| x.0).max().expect("a movement");
        let want_on_hand: i64 = m.iter().map(|x| x.1).sum();
        let want_units: i64 = m
            .iter()
            .filter(|x| x.2 && x.0 >= last - 24 * 60 * MIN)
            .map(|x| -x.1)
            .sum();
        assert_eq!(as_of, &ts(last), "store {store} {sku}: as of");
        assert_eq!(
            (*on_hand, *units_24h),
            (want_on_hand, want_units),
            "store {store} {sku}"
        );
        let want_hours = (want_units > 0)
            .then(|| (want_on_hand as f64 * 24.0 / want_units as f64 * 10.0).round() / 10.0);
        match (hours_left, want_hours) {
            (Some(a), Some(b)) => {
                assert!((a - b).abs() < 0.051, "store {store} {sku}: {a} vs {b} h")
            }
            (None, None) => {}
            other => panic!("store {store} {sku}: hours left {other:?}"),
        }
        let want_alert = if want_on_hand <= 0 {
            "out"
        } else if want_hours.is_some_and(|h| h < 6.0) {
            "low"
        } else {
            "ok"
        };
        assert_eq!(alert, want_alert, "store {store} {sku}");
        alerts += usize::from(alert != "ok");
    }
    // the same state raised every stock-out alert: each one is a sale that left under 6 h of cover
    let raised: Vec<(i64, String, i64, Option<f64>)> = query(
        &db,
        "SELECT store_id, sku, on_hand, hours_left FROM stockout_alerts",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    );
    assert!(
        raised.iter().all(|(_, _, _, h)| h.is_some_and(|h| h < 6.0)),
        "{raised:?}"
    );
    eprintln!(
        "stock: {alerts} store×SKU out or low at the end, {} alerts raised",
        raised.len()
    );

    // 4b. sales per SKU and day: every line of the day, by SKU with its category
    let mut per_sku_day: BTreeMap<u32, (f64, i64)> = BTreeMap::new();
    for (_, s) in &sale_lines {
        let e = per_sku_day.entry(s.sku).or_default();
        e.0 += s.qty as f64 * s.unit_price;
        e.1 += s.qty as i64;
    }
    let got: Vec<(String, String, f64, i64)> = query(
        &db,
        "SELECT sku, category, revenue, units FROM sales_per_sku_day",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    );
    // the data stops at 20:00: the day is marked partial
    let whole: Vec<bool> = query(
        &db,
        "SELECT DISTINCT whole_day FROM sales_per_sku_day",
        |r| r.get(0),
    );
    assert_eq!(whole, vec![false]);
    assert_eq!(
        got.len(),
        per_sku_day.len(),
        "one row per SKU sold that day"
    );
    for (sku, category, revenue, units) in &got {
        let n: u32 = sku.trim_start_matches("SKU-").parse().expect("sku number");
        let (want_revenue, want_units) = per_sku_day[&n];
        assert!(
            close(*revenue, want_revenue),
            "{sku}: {revenue} vs {want_revenue}"
        );
        assert_eq!(*units, want_units, "{sku}");
        assert_eq!(
            category,
            &catalog.categories[catalog.skus[(n - 1) as usize].category as usize],
            "{sku}"
        );
    }

    // 5. funnel: sessions (30-minute gap) per channel and the hour their window time falls in
    let (clicks, _) = events(Stream::Clickstream);
    let mut by_session: BTreeMap<u64, Vec<(i64, &tillflow_retail::generator::Click)>> =
        BTreeMap::new();
    for e in &clicks {
        if let Kind::Click(c) = &e.kind {
            by_session.entry(c.session).or_default().push((e.time, c));
        }
    }
    let mut funnel: BTreeMap<(i64, &'static str), (i64, i64, i64)> = BTreeMap::new();
    for evs in by_session.values_mut() {
        evs.sort_by_key(|(t, _)| *t);
        let mut start = 0;
        for i in 1..=evs.len() {
            if i == evs.len() || evs[i].0 - evs[i - 1].0 > 30 * MIN {
                let part = &evs[start..i];
                let end = part[part.len() - 1].0 + 30 * MIN;
                let hour = (end - 1000) - (end - 1000).rem_euclid(60 * MIN);
                let f = funnel.entry((hour, part[0].1.channel.name())).or_default();
                f.0 += 1;
                f.1 += part.iter().any(|(_, c)| c.kind == ClickKind::AddToCart) as i64;
                f.2 += part.iter().any(|(_, c)| c.kind == ClickKind::Purchase) as i64;
                start = i;
            }
        }
    }
    let got: Vec<(String, String, i64, i64, i64)> = query(
        &db,
        "SELECT window_start, channel, sessions, carted, bought FROM funnel_per_channel",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    );
    assert_eq!(got.len(), funnel.len());
    for (w, ch, sessions, carted, bought) in &got {
        let t = tillflow_types::temporal::parse_timestamp(w).expect("timestamp");
        let key = funnel
            .keys()
            .find(|(h, c)| *h == t && c == ch)
            .copied()
            .expect("window");
        assert_eq!((*sessions, *carted, *bought), funnel[&key], "{w} {ch}");
    }

    // 6. promotion uplift: every sale against every promotion of the run
    let (promos, _) = events(Stream::Promotions);
    let promos: Vec<&tillflow_retail::generator::Promotion> = promos
        .iter()
        .filter_map(|e| match &e.kind {
            Kind::Promotion(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(promos.len() >= 2, "too few promotions: {}", promos.len());
    let got: HashMap<String, (i64, i64, i64, i64, Option<f64>)> = query(
        &db,
        "SELECT promo_id, promo_units, units_during, base_units, units_outside, uplift_pct FROM promo_uplift",
        |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))),
    )
    .into_iter()
    .collect();
    assert_eq!(got.len(), promos.len(), "one row per promotion");
    let mut with_uplift = 0;
    for p in &promos {
        let (mut promo, mut during, mut base, mut outside) = (0i64, 0i64, 0i64, 0i64);
        for (t, s) in &sale_lines {
            let promoted = match p.sku {
                Some(k) => s.sku == k,
                None => Some(catalog.skus[(s.sku - 1) as usize].category) == p.category,
            };
            let q = s.qty as i64;
            if *t >= p.start && *t < p.end {
                during += q;
                promo += if promoted { q } else { 0 };
            } else {
                outside += q;
                base += if promoted { q } else { 0 };
            }
        }
        let id = format!("P{:05}", p.id);
        let g = got.get(&id).unwrap_or_else(|| panic!("no row for {id}"));
        assert_eq!((g.0, g.1, g.2, g.3), (promo, during, base, outside), "{id}");
        let want = (base >= 10 && base as f64 * during as f64 >= 10.0 * outside as f64)
            .then(|| 100.0 * (promo as f64 * outside as f64 / (base as f64 * during as f64) - 1.0));
        match (g.4, want) {
            (Some(a), Some(b)) => {
                with_uplift += 1;
                assert!((a - b).abs() <= 0.051, "{id}: uplift {a} vs {b}")
            }
            (None, None) => {}
            other => panic!("{id}: uplift {other:?}"),
        }
    }
    assert!(with_uplift > 0, "no promotion had enough sales to measure");
}
