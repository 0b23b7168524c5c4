//! The realistic venue's matching ([`super::types::VenueModel`]), with hftbacktest's
//! `PartialFillExchange` semantics on an L2 book ([`Book`]):
//!
//! - An intent arrives `latency_ns` + a feed latency sample + an order latency sample after
//!   its event. The feed sample is drawn once per event (every intent of an event was decided
//!   when the strategy saw it), and both paths keep their order as a connection does: an
//!   event is seen no earlier than the one before it, and an intent arrives no earlier than
//!   the one sent before it (so a cancel never overtakes its order, as in hftbacktest's order
//!   bus). The draws are keyed by the event and the intent's place among its intents, not by
//!   the draws before them: two strategies on the same tape (a regression's baseline and
//!   candidate) get the same latencies for the same event's first, second, .. intent whatever
//!   else they sent (common random numbers). Arrivals are handled in arrival order between events: those before an event's
//!   time meet the book as the previous event left it; those at its time or with no latency
//!   meet it as this event leaves it. A fill on arrival carries the arrival time.
//! - A market order walks the book from the touch, level by level, filling each level's
//!   quantity (taker), within the model's `market_band` if it has one; what is left expires. A marketable limit order walks up to its price:
//!   IOC lets the rest expire, FOK fills only if the levels up to its price hold all of it
//!   (else expires whole), post-only expires; GTC fills the levels before its price and then,
//!   without own impact, the whole rest at its price as taker (hftbacktest's rule: the order
//!   cannot rest on a book it cannot change), with own impact the rest rests at its price.
//! - A resting order's queue position starts at its level's quantity and moves per
//!   [`QueueModel`]. It fills in full (maker, at its price) when the opposite best reaches
//!   its price or a trade of the other side goes through its price, and in part when trades
//!   at its price have used up the quantity ahead: `min(−front, trade qty, left)`.
//! - Trades take resting orders of the side their aggressor hit (a sell-initiated trade,
//!   buy orders); a trade with no aggressor, either side's.
//! - A cancel removes the named orders placed before it, when it arrives.
//! - Own impact (optional): taker fills take the quantity off the levels they hit.

use tapedeck_guest::codec::Payload;

use super::book::Book;
use super::latency::{Rng, Sampler};
use super::queue::{QueueModel, QueuePos};
use super::types::VenueModel;
use crate::event::TifName;

/// One execution for the accounts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exec {
    pub order_seq: u64,
    pub client_order_id: u64,
    pub instrument: u32,
    pub buy: bool,
    pub price: i128,
    pub qty: i128,
    pub maker: bool,
    pub time_ns: i64,
}

/// An order as the model keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub order_seq: u64,
    pub client_order_id: u64,
    pub instrument: u32,
    pub buy: bool,
    pub price: i128,
    /// What is left.
    pub qty: i128,
    pub market: bool,
    pub tif: TifName,
    pub arrive: i64,
    q: QueuePos,
}

impl Order {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        order_seq: u64,
        client_order_id: u64,
        instrument: u32,
        buy: bool,
        price: i128,
        qty: i128,
        market: bool,
        tif: TifName,
    ) -> Self {
        Order {
            order_seq,
            client_order_id,
            instrument,
            buy,
            price,
            qty,
            market,
            tif,
            arrive: 0,
            q: QueuePos::default(),
        }
    }
}

fn to9(m: i64, s: u8) -> i128 {
    let m = m as i128;
    if s <= 9 {
        m * 10i128.pow((9 - s) as u32)
    } else {
        m / 10i128.pow((s - 9) as u32)
    }
}

#[derive(Debug)]
pub(crate) struct Matcher {
    queue: QueueModel,
    own_impact: bool,
    /// Market orders' band from the touch, scale 9 (exclusive).
    band: Option<i128>,
    base_latency: i64,
    feed: Option<Sampler>,
    order: Option<Sampler>,
    seed: u64,
    /// The last event intents were sent on: its seq, when the strategy saw it, and how many
    /// intents it sent so far.
    seen: Option<(u64, i64, u64)>,
    /// When the last intent sent arrives (intents keep their order on the way).
    last_arrival: i64,
    books: Vec<(u32, Book)>,
    /// On their way, by (arrival, seq).
    pending: Vec<Order>,
    /// Cancels on their way: (arrival, the cancel's seq, client order id), by arrival.
    cancels: Vec<(i64, u64, u64)>,
    resting: Vec<Order>,
    /// Executions since the last drain.
    pub execs: Vec<Exec>,
    /// (client order id, arrival) of the orders sent in this batch.
    pub arrivals: Vec<(u64, i64)>,
}

impl Matcher {
    pub fn new(m: &VenueModel, base_latency: i64) -> Self {
        Matcher {
            queue: QueueModel::new(&m.queue),
            own_impact: m.own_impact,
            band: m.market_band.map(|b| (b * 1e9).round() as i128),
            base_latency,
            feed: m.feed_latency.as_ref().map(Sampler::new),
            order: m.order_latency.as_ref().map(Sampler::new),
            seed: m.seed,
            seen: None,
            last_arrival: i64::MIN,
            books: Vec::new(),
            pending: Vec::new(),
            cancels: Vec::new(),
            resting: Vec::new(),
            execs: Vec::new(),
            arrivals: Vec::new(),
        }
    }

    pub fn open_orders(&self) -> usize {
        self.resting.len()
    }

    /// The generator of draw `k` of event `seq` (0: its feed latency; 1, 2, ..: its intents').
    fn rng(&self, seq: u64, k: u64) -> Rng {
        Rng::new(
            self.seed
                .wrapping_add(seq.wrapping_mul(0xD1B5_4A32_D192_ED03))
                .wrapping_add(k.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7)),
        )
    }

    /// When an intent sent on event `seq` (at `time_ns`) arrives at the venue.
    fn arrival(&mut self, seq: u64, time_ns: i64) -> i64 {
        let (seen, k) = match self.seen {
            Some((s, at, k)) if s == seq => (at, k + 1),
            prev => {
                let feed = self
                    .feed
                    .as_ref()
                    .map_or(0, |f| f.sample(&mut self.rng(seq, 0)));
                ((time_ns + feed).max(prev.map_or(i64::MIN, |p| p.1)), 1)
            }
        };
        self.seen = Some((seq, seen, k));
        let order = self
            .order
            .as_ref()
            .map_or(0, |o| o.sample(&mut self.rng(seq, k)));
        let arrive = (seen + self.base_latency + order).max(self.last_arrival);
        self.last_arrival = arrive;
        arrive
    }

    fn book_index(&mut self, id: u32) -> usize {
        match self.books.iter().position(|b| b.0 == id) {
            Some(i) => i,
            None => {
                self.books.push((id, Book::default()));
                self.books.len() - 1
            }
        }
    }

    /// The best bid and ask of `id`'s book, if it has one.
    pub fn top(&self, id: u32) -> Option<(Option<i128>, Option<i128>)> {
        self.books
            .iter()
            .find(|b| b.0 == id)
            .map(|b| (b.1.best_bid(), b.1.best_ask()))
    }

    /// An order sent at `time_ns`.
    pub fn send(&mut self, mut o: Order, time_ns: i64) {
        o.arrive = self.arrival(o.order_seq, time_ns);
        self.arrivals.push((o.client_order_id, o.arrive));
        let at = self
            .pending
            .partition_point(|p| (p.arrive, p.order_seq) <= (o.arrive, o.order_seq));
        self.pending.insert(at, o);
    }

    /// A cancel of `client_order_id` sent at `time_ns` by decision `seq`.
    pub fn send_cancel(&mut self, seq: u64, client_order_id: u64, time_ns: i64) {
        let arrive = self.arrival(seq, time_ns);
        let at = self
            .cancels
            .partition_point(|c| (c.0, c.1) <= (arrive, seq));
        self.cancels.insert(at, (arrive, seq, client_order_id));
    }

    /// Handles the arrivals before `t` (`inclusive`: at `t` too), in arrival order.
    pub fn arrive(&mut self, t: i64, inclusive: bool) {
        let due = |a: i64| if inclusive { a <= t } else { a < t };
        loop {
            let o = self
                .pending
                .first()
                .filter(|o| due(o.arrive))
                .map(|o| (o.arrive, o.order_seq));
            let c = self
                .cancels
                .first()
                .filter(|c| due(c.0))
                .map(|c| (c.0, c.1));
            match (o, c) {
                (Some(o), Some(c)) if c < o => self.cancel_first(),
                (Some(_), _) => {
                    let o = self.pending.remove(0);
                    self.accept(o);
                }
                (None, Some(_)) => self.cancel_first(),
                (None, None) => break,
            }
        }
    }

    fn cancel_first(&mut self) {
        let (_, seq, coid) = self.cancels.remove(0);
        self.resting
            .retain(|r| r.client_order_id != coid || r.order_seq > seq);
    }

    /// A new order at the venue.
    fn accept(&mut self, mut o: Order) {
        let (t, price) = (o.arrive, o.price);
        let bi = self.book_index(o.instrument);
        let book = &self.books[bi].1;
        let opposite = if o.buy {
            book.best_ask()
        } else {
            book.best_bid()
        };
        if o.market {
            // Within the band: short of touch ± band.
            let limit = match (self.band, opposite) {
                (Some(b), Some(p)) if o.buy => Some(p + b - 1),
                (Some(b), Some(p)) => Some(p - b + 1),
                _ => None,
            };
            self.walk(bi, &mut o, limit, t);
            return;
        }
        let marketable = opposite.is_some_and(|p| if o.buy { o.price >= p } else { o.price <= p });
        if !marketable {
            if matches!(o.tif, TifName::Gtc | TifName::PostOnly) {
                o.q = self.queue.new_order(book.qty_at(o.buy, o.price));
                self.resting.push(o);
            }
            return;
        }
        match o.tif {
            TifName::PostOnly => {}
            TifName::Ioc => self.walk(bi, &mut o, Some(price), t),
            TifName::Fok => {
                let have: i128 = book.levels(o.buy, Some(o.price)).iter().map(|l| l.1).sum();
                if have >= o.qty {
                    self.walk(bi, &mut o, Some(price), t);
                }
            }
            TifName::Gtc if self.own_impact => {
                self.walk(bi, &mut o, Some(price), t);
                if o.qty > 0 {
                    o.q = self
                        .queue
                        .new_order(self.books[bi].1.qty_at(o.buy, o.price));
                    self.resting.push(o);
                }
            }
            TifName::Gtc => {
                // The levels before its price, then the rest at its price.
                let before = if o.buy { o.price - 1 } else { o.price + 1 };
                self.walk(bi, &mut o, Some(before), t);
                if o.qty > 0 {
                    let qty = o.qty;
                    self.exec(&mut o, price, qty, false, t);
                }
            }
        }
    }

    /// Fills `o` level by level up to `limit` (inclusive), as taker.
    fn walk(&mut self, bi: usize, o: &mut Order, limit: Option<i128>, t: i64) {
        let levels = self.books[bi].1.levels(o.buy, limit);
        for (px, avail) in levels {
            if o.qty <= 0 {
                break;
            }
            let q = avail.min(o.qty);
            if q <= 0 {
                continue;
            }
            self.exec(o, px, q, false, t);
            if self.own_impact {
                self.books[bi].1.take(!o.buy, px, q);
            }
        }
    }

    fn exec(&mut self, o: &mut Order, price: i128, qty: i128, maker: bool, t: i64) {
        o.qty -= qty;
        self.execs.push(Exec {
            order_seq: o.order_seq,
            client_order_id: o.client_order_id,
            instrument: o.instrument,
            buy: o.buy,
            price,
            qty,
            maker,
            time_ns: t,
        });
    }

    /// A market event of instrument `id` at time `t`: the book moves, resting orders fill.
    pub fn on_market(&mut self, id: u32, t: i64, payload: &Payload, s: u8, qs: u8) {
        match payload {
            Payload::Quote(q) => {
                let bi = self.book_index(id);
                if self.books[bi].1.depth {
                    return;
                }
                self.books[bi].1.quote(
                    (to9(q.bid_px, s), to9(q.bid_qty, qs)),
                    (to9(q.ask_px, s), to9(q.ask_qty, qs)),
                );
                self.requeue_all(bi);
                self.crossed(bi, t);
            }
            Payload::BookSnapshot(b) => {
                let bi = self.book_index(id);
                let book = &mut self.books[bi].1;
                book.depth = true;
                // Each level with orders once (a level change moves all its orders).
                let before: std::collections::BTreeSet<(bool, i128, i128)> = self
                    .resting
                    .iter()
                    .filter(|o| o.instrument == id)
                    .map(|o| (o.buy, o.price, book.qty_at(o.buy, o.price)))
                    .collect();
                book.clear();
                for l in b.bids.iter() {
                    book.update(true, to9(l.price, s), to9(l.qty, qs));
                }
                for l in b.asks.iter() {
                    book.update(false, to9(l.price, s), to9(l.qty, qs));
                }
                for (buy, px, prev) in before {
                    let new = self.books[bi].1.qty_at(buy, px);
                    self.level_changed(id, buy, px, prev, new);
                }
                self.crossed(bi, t);
            }
            Payload::BookDelta(d) => {
                let bi = self.book_index(id);
                self.books[bi].1.depth = true;
                for (bid, levels) in [(true, &d.bids), (false, &d.asks)] {
                    for l in levels.iter() {
                        let px = to9(l.price, s);
                        let (prev, new) = self.books[bi].1.update(bid, px, to9(l.qty, qs));
                        if !self.resting.is_empty() {
                            self.level_changed(id, bid, px, prev, new);
                        }
                    }
                }
                self.crossed(bi, t);
            }
            Payload::Trade(tr) => {
                if self.resting.is_empty() {
                    return;
                }
                let (px, qty) = (to9(tr.price, s), to9(tr.qty, qs));
                use tapedeck_guest::codec::Aggressor;
                let (buys, sells) = match tr.aggressor {
                    Aggressor::Sell => (true, false),
                    Aggressor::Buy => (false, true),
                    Aggressor::Unknown => (true, true),
                };
                let mut i = 0;
                while i < self.resting.len() {
                    let o = &mut self.resting[i];
                    let hit = o.instrument == id && if o.buy { buys } else { sells };
                    let through = if o.buy { o.price > px } else { o.price < px };
                    let fill = if !hit {
                        0
                    } else if through {
                        o.qty
                    } else if o.price == px {
                        self.queue.trade(&mut o.q, qty);
                        self.queue.filled(&o.q).min(qty).min(o.qty)
                    } else {
                        0
                    };
                    if fill > 0 {
                        let mut o = self.resting[i].clone();
                        let price = o.price;
                        self.exec(&mut o, price, fill, true, t);
                        if o.qty > 0 {
                            self.resting[i] = o;
                            i += 1;
                        } else {
                            self.resting.remove(i);
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            _ => {}
        }
    }

    fn level_changed(&mut self, id: u32, bid: bool, px: i128, prev: i128, new: i128) {
        for o in self.resting.iter_mut() {
            if o.instrument == id && o.buy == bid && o.price == px {
                self.queue.depth(&mut o.q, prev, new);
            }
        }
    }

    /// A quote replaced a one-level book: every order's level may have changed.
    fn requeue_all(&mut self, bi: usize) {
        let id = self.books[bi].0;
        let book = &self.books[bi].1;
        for o in self.resting.iter_mut().filter(|o| o.instrument == id) {
            let new = book.qty_at(o.buy, o.price);
            let prev = o.q.front.max(new);
            self.queue.depth(&mut o.q, prev, new);
        }
    }

    /// Resting orders the opposite best has reached fill in full, at their price.
    fn crossed(&mut self, bi: usize, t: i64) {
        if self.resting.is_empty() {
            return;
        }
        let (id, book) = (self.books[bi].0, &self.books[bi].1);
        let (bid, ask) = (book.best_bid(), book.best_ask());
        let mut i = 0;
        while i < self.resting.len() {
            let o = &self.resting[i];
            let cross = o.instrument == id
                && if o.buy {
                    ask.is_some_and(|a| a <= o.price)
                } else {
                    bid.is_some_and(|b| b >= o.price)
                };
            if cross {
                let mut o = self.resting.remove(i);
                let (price, qty) = (o.price, o.qty);
                self.exec(&mut o, price, qty, true, t);
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::Latency;
    use std::collections::BTreeMap;

    /// Feed and order latencies anywhere from 0 to 1 s: drawn per message and taken as they
    /// come, an order sent at t and its cancel sent 1 µs later would often arrive the other
    /// way round, and the order would rest for ever.
    fn wide() -> Matcher {
        let wide = Latency::Empirical {
            quantiles_ns: vec![0, 1_000_000_000],
        };
        let m = VenueModel {
            feed_latency: Some(wide.clone()),
            order_latency: Some(wide),
            ..VenueModel::default()
        };
        Matcher::new(&m, 0)
    }

    fn buy(seq: u64, coid: u64) -> Order {
        let px = 100_000_000_000;
        Order::new(seq, coid, 1, true, px, 1_000_000_000, false, TifName::Gtc)
    }

    #[test]
    fn a_cancel_never_overtakes_its_order() {
        let mut x = wide();
        for i in 0..200u64 {
            let t = i as i64 * 1000;
            x.send(buy(2 * i, i), t);
            x.send_cancel(2 * i + 1, i, t + 1);
        }
        // Arrivals in the order sent.
        let arrivals: Vec<i64> = x.pending.iter().map(|o| o.arrive).collect();
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
        x.arrive(i64::MAX, true);
        assert_eq!(x.open_orders(), 0, "orders left after their cancels");
    }

    #[test]
    fn the_same_event_gets_the_same_latencies_whatever_else_was_sent() {
        // Events 1 s apart, latencies under 1 ms: no arrival waits for an earlier one.
        let narrow = Latency::Empirical {
            quantiles_ns: vec![0, 1_000_000],
        };
        let m = VenueModel {
            feed_latency: Some(narrow.clone()),
            order_latency: Some(narrow),
            seed: 3,
            ..VenueModel::default()
        };
        let (mut a, mut b) = (Matcher::new(&m, 0), Matcher::new(&m, 0));
        for e in 1..100u64 {
            let t = e as i64 * 1_000_000_000;
            a.send(buy(e, e), t);
            // The other strategy sends more on some events, and nothing on others.
            if e % 3 != 0 {
                b.send(buy(e, e), t);
            }
            if e % 2 == 0 {
                b.send_cancel(e, 1_000 + e, t);
            }
        }
        let first = |x: &Matcher| -> BTreeMap<u64, i64> {
            x.pending.iter().map(|o| (o.order_seq, o.arrive)).collect()
        };
        let (fa, fb) = (first(&a), first(&b));
        assert_eq!(fb.len(), 66);
        assert!(fb.iter().all(|(seq, t)| fa[seq] == *t));
        // And they are drawn: not one latency for all.
        let lat: std::collections::BTreeSet<i64> = fa
            .iter()
            .map(|(seq, t)| t - *seq as i64 * 1_000_000_000)
            .collect();
        assert!(lat.len() > 50, "{} latencies", lat.len());
    }

    #[test]
    fn the_feed_latency_is_drawn_once_per_event() {
        let wide = Latency::Empirical {
            quantiles_ns: vec![0, 1_000_000_000],
        };
        let m = VenueModel {
            feed_latency: Some(wide),
            ..VenueModel::default()
        };
        let mut x = Matcher::new(&m, 250);
        // Three intents of event 7, then one of event 8 sent at the same time.
        for coid in 0..3 {
            x.send(buy(7, coid), 7_000);
        }
        x.send(buy(8, 3), 7_000);
        let a: Vec<i64> = x.pending.iter().map(|o| o.arrive).collect();
        assert_eq!((a[0], a[1]), (a[2], a[2]), "{a:?}");
        assert!(a[0] >= 7_250 && a[3] >= a[0], "{a:?}");
    }
}
