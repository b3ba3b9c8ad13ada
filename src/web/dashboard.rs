//! The operator's live dashboard: one task reads the engine's live feed, keeps per-second and per-minute
//! tallies, and once a second draws the figures, the chart and the latest auctions into one [`Frame`] that
//! every open page shares. A page's event stream only copies the frame's bytes, so twenty open dashboards
//! cost what one does, and a stalled browser holds back nothing: it is handed the newest frame when it
//! reads again.
//!
//! It draws only while someone looks — an event stream open, or a page that asks for a frame (it waits for
//! a fresh one) — so an exchange nobody watches spends no CPU drawing; the tallies are kept either way.
//!
//! Which time each figure counts by: auctions by when they were answered, sales by when they were booked
//! (both as this task sees them, within a second), and "today" by the UTC day of the sale.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;

use super::chart;
use crate::audit::AuctionAudit;
use crate::domain::money::Money;
use crate::engine::Engine;
use crate::live::LiveEvent;
use crate::ops;

/// How often the frame is drawn (API.md asks for at least every 2 s).
pub const TICK: Duration = Duration::from_secs(1);

/// How long a page waits for the frame it asked for before it shows the last one drawn.
const FRESH_FRAME_WAIT: Duration = Duration::from_millis(250);

/// How often the dashboard takes in what the live feed holds: in batches, so an auction never wakes the
/// dashboard's task (on another core) by itself. The feed keeps 4,096 events, so below 80,000 events a
/// second none is skipped.
const READ_FEED_EVERY: Duration = Duration::from_millis(50);

/// Auctions the dashboard lists.
pub const RECENT_AUCTIONS: usize = 20;

/// The window of the rates and latencies.
const RATE_WINDOW_S: i64 = 60;

/// The window of auctions per second.
const THROUGHPUT_WINDOW_S: i64 = 10;

/// One drawing of the dashboard: the parts as HTML for a page being rendered, and the same as one chunk of
/// server-sent events for the pages already open.
#[derive(Debug, Default)]
pub struct Frame {
    pub figures: String,
    pub chart: String,
    pub auctions: String,
    pub events: Bytes,
    /// When it was drawn (`None`: not yet).
    pub drawn_at: Option<tokio::time::Instant>,
}

/// The dashboard's frames as the pages read them.
pub struct Frames {
    /// The latest frame. The pages' state holds this receiver; each open event stream holds a clone, which
    /// is how the task knows someone is watching.
    latest: watch::Receiver<Arc<Frame>>,
    /// A page asks for a frame drawn now.
    wanted: Arc<Notify>,
}

impl Frames {
    /// A frame at most one tick old: the latest, or one drawn on this request when nobody was watching.
    pub async fn fresh(&self) -> Arc<Frame> {
        let mut latest = self.latest.clone();
        let current = Arc::clone(&latest.borrow_and_update());
        if current.drawn_at.is_some_and(|at| at.elapsed() < TICK) {
            return current;
        }
        self.wanted.notify_one();
        match tokio::time::timeout(FRESH_FRAME_WAIT, latest.changed()).await {
            Ok(Ok(())) => Arc::clone(&latest.borrow()),
            _ => current,
        }
    }

    /// The frames one event stream follows; while it is held, a frame is drawn every tick.
    pub fn follow(&self) -> watch::Receiver<Arc<Frame>> {
        self.wanted.notify_one();
        self.latest.clone()
    }
}

/// One second's tallies.
#[derive(Clone)]
struct Second {
    at: i64,
    auctions: u64,
    bids: u64,
    pinged: u64,
    timeouts: u64,
    sales: u64,
    /// Auction latencies in microseconds, two significant digits: enough for a p99 on a screen.
    latency: hdrhistogram::Histogram<u32>,
}

impl Second {
    fn new() -> Second {
        let latency = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2).expect("constant bounds are valid");
        Second { at: i64::MIN, auctions: 0, bids: 0, pinged: 0, timeouts: 0, sales: 0, latency }
    }
}

/// One minute's counts, for the chart.
#[derive(Clone, Copy, Default)]
pub struct Minute {
    pub at: i64,
    pub auctions: u64,
    pub sales: u64,
}

/// Sales of one UTC day.
#[derive(Clone, Copy, Default, PartialEq, Debug)]
pub struct Today {
    pub day: i64,
    pub sales: u64,
    pub gross: Money,
    pub payouts: Money,
}

/// What the dashboard has seen.
pub struct Stats {
    seconds: Vec<Second>,
    minutes: Vec<Minute>,
    today: Today,
    recent: VecDeque<Arc<AuctionAudit>>,
    /// Sales the last reading of the books already counted whose event may still come: skipped once.
    counted: HashSet<String>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            seconds: vec![Second::new(); RATE_WINDOW_S as usize],
            minutes: vec![Minute::default(); chart::MINUTES],
            today: Today::default(),
            recent: VecDeque::with_capacity(RECENT_AUCTIONS),
            counted: HashSet::new(),
        }
    }
}

/// The figures the dashboard shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub auctions_per_second: f64,
    pub bid_rate: Option<f64>,
    pub win_rate: Option<f64>,
    pub timeout_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub today: Today,
}

fn utc_day(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(86_400)
}

impl Stats {
    fn second(&mut self, at: i64) -> &mut Second {
        let slot = &mut self.seconds[at.rem_euclid(RATE_WINDOW_S) as usize];
        if slot.at != at {
            slot.at = at;
            (slot.auctions, slot.bids, slot.pinged, slot.timeouts, slot.sales) = (0, 0, 0, 0, 0);
            slot.latency.reset();
        }
        slot
    }

    fn minute(&mut self, at: i64) -> &mut Minute {
        let minute = at.div_euclid(60);
        let slot = &mut self.minutes[minute.rem_euclid(chart::MINUTES as i64) as usize];
        if slot.at != minute {
            *slot = Minute { at: minute, ..Minute::default() };
        }
        slot
    }

    /// Counts an auction answered at `now`.
    pub fn auction(&mut self, audit: Arc<AuctionAudit>, now: DateTime<Utc>) {
        let second = self.second(now.timestamp());
        second.auctions += 1;
        second.bids += u64::from(audit.quoted.is_some());
        for buyer in &audit.buyers {
            second.pinged += u64::from(buyer.outcome != "excluded");
            second.timeouts += u64::from(buyer.outcome == "timeout");
        }
        let micros = u64::try_from(audit.elapsed.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000);
        second.latency.saturating_record(micros);
        self.minute(now.timestamp()).auctions += 1;
        if self.recent.len() == RECENT_AUCTIONS {
            self.recent.pop_back();
        }
        self.recent.push_front(audit);
    }

    /// Counts a sale booked at `now`, unless the last reading of the books already did.
    pub fn sale(&mut self, lead_id: &str, price: Money, payout: Money, now: DateTime<Utc>) {
        if self.counted.remove(lead_id) {
            return;
        }
        self.second(now.timestamp()).sales += 1;
        self.minute(now.timestamp()).sales += 1;
        if self.today.day != utc_day(now) {
            self.today = Today { day: utc_day(now), ..Today::default() };
        }
        self.today.sales += 1;
        self.today.gross += price;
        self.today.payouts += payout;
    }

    /// Whether today's sales must be read from the books again: a new UTC day began.
    pub fn needs_reading(&self, now: DateTime<Utc>) -> bool {
        self.today.day != utc_day(now)
    }

    /// Reads today's sales and the last hour's sales per minute from the books, at start, on a new day, and
    /// after the feed skipped events. Sales of the last minute are remembered, so that their events, if
    /// still on the way, are not counted twice.
    pub async fn read_books(&mut self, engine: &Engine, now: DateTime<Utc>) {
        let day_start = DateTime::from_timestamp(utc_day(now) * 86_400, 0).unwrap_or(now);
        let hour_ago = now - chrono::Duration::minutes(chart::MINUTES as i64);
        let mut today = Today { day: utc_day(now), ..Today::default() };
        let mut minutes = Vec::new();
        let mut counted = HashSet::new();
        // Cluster mode: every node's sales, as far as this node can see them now; a store that is away
        // leaves the figures as this node's books have them.
        if let Err(error) = ops::current(engine).await {
            tracing::debug!(%error, "dashboard reads books that may be behind");
        }
        ops::books::for_each_sale_since(engine, day_start.min(hour_ago), |sale| {
            if sale.at >= day_start {
                today.sales += 1;
                today.gross += sale.price;
                today.payouts += sale.payout;
            }
            if sale.at >= hour_ago {
                minutes.push(sale.at.timestamp());
            }
            if sale.at >= now - chrono::Duration::seconds(60) {
                counted.insert(sale.lead_id.clone());
            }
        });
        self.today = today;
        self.counted = counted;
        for slot in &mut self.minutes {
            slot.sales = 0;
        }
        for at in minutes {
            self.minute(at).sales += 1;
        }
    }

    /// The figures at `now`.
    pub fn figures(&self, now: DateTime<Utc>) -> Figures {
        let now_s = now.timestamp();
        let within = |window: i64| self.seconds.iter().filter(move |s| s.at <= now_s && s.at > now_s - window);
        let recent_auctions: u64 = within(THROUGHPUT_WINDOW_S).map(|s| s.auctions).sum();
        let sum = |pick: fn(&Second) -> u64| within(RATE_WINDOW_S).map(pick).sum::<u64>();
        let (auctions, bids, pinged) = (sum(|s| s.auctions), sum(|s| s.bids), sum(|s| s.pinged));
        let ratio = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        let mut latency = hdrhistogram::Histogram::<u32>::new_with_bounds(1, 60_000_000, 2).expect("constant bounds");
        for second in within(RATE_WINDOW_S) {
            let _ = latency.add(&second.latency);
        }
        let quantile_ms = |q: f64| (!latency.is_empty()).then(|| latency.value_at_quantile(q) as f64 / 1000.0);
        let today = if self.today.day == utc_day(now) { self.today } else { Today::default() };
        Figures {
            auctions_per_second: recent_auctions as f64 / THROUGHPUT_WINDOW_S as f64,
            bid_rate: ratio(bids, auctions),
            win_rate: ratio(sum(|s| s.sales), bids),
            timeout_rate: ratio(sum(|s| s.timeouts), pinged),
            p50_ms: quantile_ms(0.5),
            p99_ms: quantile_ms(0.99),
            today,
        }
    }

    /// The chart's minutes, oldest first, ending with the minute of `now`.
    pub fn minutes(&self, now: DateTime<Utc>) -> Vec<Minute> {
        let current = now.timestamp().div_euclid(60);
        (current - chart::MINUTES as i64 + 1..=current)
            .map(|minute| {
                let slot = self.minutes[minute.rem_euclid(chart::MINUTES as i64) as usize];
                if slot.at == minute {
                    slot
                } else {
                    Minute { at: minute, ..Minute::default() }
                }
            })
            .collect()
    }

    /// The latest auctions, newest first.
    pub fn recent(&self) -> impl Iterator<Item = &Arc<AuctionAudit>> {
        self.recent.iter()
    }
}

#[derive(Template)]
#[template(path = "console/figures.html")]
struct FiguresPart {
    aps: String,
    bid_rate: String,
    win_rate: String,
    timeout_rate: String,
    p50: String,
    p99: String,
    sales: u64,
    gross: Money,
    payouts: Money,
    margin: Money,
}

/// One row of the latest auctions.
pub struct AuctionRow {
    pub ping_id: String,
    pub at: String,
    pub campaign: String,
    pub seller: String,
    pub pinged: usize,
    pub bids: usize,
    pub result: String,
    pub elapsed_ms: String,
    pub test: bool,
}

impl AuctionRow {
    /// The row of one auction, with its sale once its lead sold.
    pub fn of(audit: &AuctionAudit) -> AuctionRow {
        let result = match (audit.first_sale(), &audit.quoted) {
            (Some(sale), _) => format!("sold at {} to {}", sale.price, sale.buyer),
            (None, Some(quote)) => format!("bid {} by {}", quote.price, quote.buyer),
            (None, None) => "no bid".to_owned(),
        };
        AuctionRow {
            ping_id: audit.ping_id.clone(),
            at: audit.received_at.format("%H:%M:%S").to_string(),
            campaign: audit.campaign.clone(),
            seller: audit.seller.clone(),
            pinged: audit.buyers.iter().filter(|b| b.outcome != "excluded").count(),
            bids: audit.buyers.iter().filter(|b| b.outcome == "bid").count(),
            result,
            elapsed_ms: format!("{:.1}", audit.elapsed.as_secs_f64() * 1000.0),
            test: audit.test,
        }
    }
}

#[derive(Template)]
#[template(path = "console/auction_rows.html")]
pub struct AuctionRows {
    pub rows: Vec<AuctionRow>,
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn millis(ms: Option<f64>) -> String {
    ms.map_or_else(|| "—".to_owned(), |ms| format!("{ms:.1} ms"))
}

/// Draws the frame of `now`.
pub fn draw(stats: &Stats, now: DateTime<Utc>) -> Frame {
    let f = stats.figures(now);
    let figures = FiguresPart {
        aps: format!("{:.1}", f.auctions_per_second),
        bid_rate: percent(f.bid_rate),
        win_rate: percent(f.win_rate),
        timeout_rate: percent(f.timeout_rate),
        p50: millis(f.p50_ms),
        p99: millis(f.p99_ms),
        sales: f.today.sales,
        gross: f.today.gross,
        payouts: f.today.payouts,
        margin: f.today.gross - f.today.payouts,
    };
    let figures = figures.render().unwrap_or_default();
    let chart = chart::svg(&stats.minutes(now));
    let auctions =
        AuctionRows { rows: stats.recent().map(|audit| AuctionRow::of(audit)).collect() }.render().unwrap_or_default();
    let mut events = String::with_capacity(figures.len() + chart.len() + auctions.len() + 128);
    for (name, data) in [("figures", &figures), ("chart", &chart), ("auctions", &auctions)] {
        super::sse::event(&mut events, name, data);
    }
    Frame { figures, chart, auctions, events: Bytes::from(events), drawn_at: Some(tokio::time::Instant::now()) }
}

/// Resolves once `stop` is true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Whether the live feed is still open.
#[derive(PartialEq)]
enum Feed {
    Open,
    Closed,
}

/// Takes in every event the feed holds for the dashboard, without waiting for more.
async fn read_feed(feed: &mut broadcast::Receiver<LiveEvent>, stats: &mut Stats, engine: &Engine) -> Feed {
    loop {
        match feed.try_recv() {
            Ok(LiveEvent::Auction(audit)) => stats.auction(audit, Utc::now()),
            Ok(LiveEvent::Sale { lead_id, price, payout, .. }) => stats.sale(&lead_id, price, payout, Utc::now()),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                tracing::debug!(missed, "dashboard fell behind the live feed; reading sales from the books");
                stats.read_books(engine, Utc::now()).await;
            }
            Err(broadcast::error::TryRecvError::Empty) => return Feed::Open,
            Err(broadcast::error::TryRecvError::Closed) => return Feed::Closed,
        }
    }
}

/// Starts the dashboard's task: it runs until `stop` turns true, taking in the live feed and drawing a frame
/// every [`TICK`] while an event stream is open, and at once when a page asks for one.
pub fn start(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) -> (Frames, JoinHandle<()>) {
    let (frames, latest) = watch::channel(Arc::new(Frame::default()));
    let wanted = Arc::new(Notify::new());
    let asked = Arc::clone(&wanted);
    let task = tokio::spawn(async move {
        // Subscribed before the books are read, so no sale falls between the two.
        let mut feed = engine.live.subscribe();
        let mut stats = Stats::default();
        stats.read_books(&engine, Utc::now()).await;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut read = tokio::time::interval(READ_FEED_EVERY);
        read.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let watched = tokio::select! {
                _ = read.tick() => {
                    if read_feed(&mut feed, &mut stats, &engine).await == Feed::Closed {
                        break;
                    }
                    continue;
                }
                // The pages' own receiver is one; every other is an open stream.
                _ = tick.tick() => frames.receiver_count() > 1,
                () = asked.notified() => true,
                () = stopped(&mut stop) => break,
            };
            let now = Utc::now();
            if stats.needs_reading(now) {
                stats.read_books(&engine, now).await;
            }
            if watched {
                // What the feed holds first, so a page asking right after an auction sees it.
                if read_feed(&mut feed, &mut stats, &engine).await == Feed::Closed {
                    break;
                }
                frames.send_replace(Arc::new(draw(&stats, Utc::now())));
            }
        }
    });
    (Frames { latest, wanted }, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{BuyerOutcome, SaleRecord};
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
    }

    fn auction(bid: bool, outcomes: &[&'static str], elapsed_ms: u64) -> Arc<AuctionAudit> {
        let buyers = outcomes.iter().map(|outcome| BuyerOutcome::new("b".into(), outcome)).collect();
        let quoted = bid.then(|| SaleRecord {
            buyer: "b".into(),
            lead_id: String::new(),
            price: Money::from_cents(1000),
            payout: Money::from_cents(900),
        });
        Arc::new(AuctionAudit::new(
            "p_1".into(),
            "auto".into(),
            "acme".into(),
            at(0),
            300,
            Duration::from_millis(elapsed_ms),
            false,
            buyers,
            quoted,
        ))
    }

    #[test]
    fn figures_count_their_windows() {
        let mut stats = Stats::default();
        // 20 auctions 30 s ago (in the minute's rates, not in auctions per second), 5 in the last 10 s.
        for _ in 0..20 {
            stats.auction(auction(false, &["no_bid", "timeout", "excluded"], 100), at(-30));
        }
        for _ in 0..5 {
            stats.auction(auction(true, &["bid", "bid"], 10), at(-2));
        }
        stats.sale("l_1", Money::from_cents(1000), Money::from_cents(900), at(-1));
        let figures = stats.figures(at(0));
        assert_eq!(figures.auctions_per_second, 0.5);
        assert_eq!(figures.bid_rate, Some(5.0 / 25.0));
        assert_eq!(figures.win_rate, Some(1.0 / 5.0));
        assert_eq!(figures.timeout_rate, Some(20.0 / 50.0), "excluded buyers were not pinged");
        assert_eq!(figures.p50_ms.map(|ms| ms.round()), Some(100.0));
        assert_eq!(
            figures.today,
            Today { day: utc_day(at(0)), sales: 1, gross: Money::from_cents(1000), payouts: Money::from_cents(900) }
        );
        let later = stats.figures(at(61));
        assert_eq!((later.auctions_per_second, later.bid_rate, later.p99_ms), (0.0, None, None), "a minute later");
        assert_eq!(later.today.sales, 1, "today's money stays for the day");
        assert_eq!(stats.figures(at(14 * 3600)).today.sales, 0, "a new UTC day starts at zero");
    }

    #[test]
    fn the_chart_keeps_an_hour_of_minutes() {
        let mut stats = Stats::default();
        stats.auction(auction(true, &[], 1), at(-3600));
        stats.auction(auction(true, &[], 1), at(-120));
        stats.sale("l_1", Money::from_cents(100), Money::from_cents(90), at(-60));
        let minutes = stats.minutes(at(0));
        assert_eq!(minutes.len(), chart::MINUTES);
        assert_eq!(minutes.iter().map(|m| m.auctions).sum::<u64>(), 1, "the auction an hour ago fell off");
        assert_eq!((minutes[57].auctions, minutes[58].sales, minutes[59].at), (1, 1, at(0).timestamp() / 60));
    }

    #[test]
    fn a_sale_the_books_already_counted_is_not_counted_again() {
        let mut stats = Stats::default();
        stats.counted.insert("l_seen".into());
        stats.sale("l_seen", Money::from_cents(100), Money::ZERO, at(0));
        stats.sale("l_new", Money::from_cents(100), Money::ZERO, at(0));
        stats.sale("l_seen", Money::from_cents(100), Money::ZERO, at(0));
        assert_eq!(stats.figures(at(0)).today.sales, 2, "skipped once, then counted");
    }

    #[test]
    fn the_list_keeps_the_latest_auctions_newest_first() {
        let mut stats = Stats::default();
        for n in 0..RECENT_AUCTIONS + 5 {
            stats.auction(auction(n % 2 == 0, &[], n as u64), at(0));
        }
        let recent: Vec<_> = stats.recent().map(|a| a.elapsed.as_millis()).collect();
        assert_eq!(recent.len(), RECENT_AUCTIONS);
        assert_eq!((recent[0], recent[RECENT_AUCTIONS - 1]), ((RECENT_AUCTIONS + 4) as u128, 5));
        let frame = draw(&stats, at(0));
        assert!(frame.auctions.contains("bid 10.00 by b") && frame.auctions.contains("no bid"));
        let events = String::from_utf8_lossy(&frame.events);
        assert!(events.starts_with("event: figures\ndata: ") && events.contains("\n\nevent: chart\ndata: <svg"));
    }

    fn engine() -> Arc<Engine> {
        let config = crate::config::parse(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nadmin_token = \"t\"\n\
             [[sellers]]\nid = \"acme\"\napi_key = \"k\"\n[[campaigns]]\nid = \"auto\"\nping_fields = [\"state\"]\nfloor = \"1.00\"\n",
        )
        .expect("valid");
        Arc::new(Engine::new(config, crate::ledger::Ledger::in_memory()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_opened_before_anything_was_drawn_gets_a_frame_at_once() {
        let (_stop, stopped) = watch::channel(false);
        let (frames, _task) = start(engine(), stopped);
        tokio::time::sleep(3 * TICK).await;
        let mut stream = frames.follow();
        assert!(stream.borrow_and_update().events.is_empty(), "nothing drawn yet");
        let started = tokio::time::Instant::now();
        stream.changed().await.expect("a frame");
        assert!(started.elapsed() < READ_FEED_EVERY, "drawn when asked, not at the next tick");
        assert!(String::from_utf8_lossy(&stream.borrow().events).starts_with("event: figures\n"));
    }

    /// Nobody watching: no frame is drawn. A page that asks gets one drawn then, holding the auction just
    /// answered; an open stream gets one every tick, until it closes.
    #[tokio::test(start_paused = true)]
    async fn it_draws_only_while_someone_looks() {
        let engine = engine();
        let (stop, stopped) = watch::channel(false);
        let (frames, task) = start(Arc::clone(&engine), stopped);
        let drawn_at = || frames.latest.borrow().drawn_at;

        tokio::time::sleep(5 * TICK).await;
        assert_eq!(drawn_at(), None, "drawn with nobody looking");

        engine.live.publish(LiveEvent::Auction(auction(true, &[], 7)));
        let frame = frames.fresh().await;
        assert!(frame.auctions.contains("p_1"), "{}", frame.auctions);
        let asked_at = frame.drawn_at.expect("drawn for the page");
        assert_eq!(Arc::as_ptr(&frames.fresh().await), Arc::as_ptr(&frame), "fresh enough: not drawn again");

        let stream = frames.follow();
        tokio::time::sleep(3 * TICK + READ_FEED_EVERY).await;
        let streamed_at = stream.borrow().drawn_at.expect("drawn");
        assert!(streamed_at >= asked_at + 2 * TICK, "drawn every tick while a stream is open");

        drop(stream);
        tokio::time::sleep(2 * TICK).await;
        let closed_at = drawn_at();
        tokio::time::sleep(5 * TICK).await;
        assert_eq!(drawn_at(), closed_at, "drawn after the last stream closed");

        stop.send_replace(true);
        task.await.expect("the task ends when told");
    }
}
