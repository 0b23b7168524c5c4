//! Seeded synthetic market data: the same seed gives the same events on every machine.

use tapedeck_guest::codec::{EventBatchWriter, EventHeader, Payload, Quote};

/// SplitMix64: tiny, fast, and fully determined by its seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// Random-walk quotes on `instruments` instruments (ids 1..=n) of one stream, prices at scale
/// 2, quantities at scale 3, one event per microsecond from 2024-01-01.
#[derive(Debug, Clone)]
pub struct QuoteGen {
    rng: SplitMix64,
    mids: Vec<i64>,
    seq: u64,
    pub stream: u32,
}

pub const PX_SCALE: u8 = 2;
pub const QTY_SCALE: u8 = 3;
const T0_NS: i64 = 1_704_067_200_000_000_000;

impl QuoteGen {
    pub fn new(seed: u64, instruments: u32) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mids = (0..instruments)
            .map(|_| 10_000 + rng.below(90_000) as i64)
            .collect();
        QuoteGen {
            rng,
            mids,
            seq: 0,
            stream: 1,
        }
    }

    pub fn next_quote(&mut self) -> (EventHeader, Quote) {
        let i = self.rng.below(self.mids.len() as u64) as usize;
        let r = self.rng.next_u64();
        // Steps of -2..=2 ticks, a spread of 1..=4 ticks, sizes of 0.001..4.096.
        let mid = &mut self.mids[i];
        *mid = (*mid + (r % 5) as i64 - 2).max(100);
        let spread = 1 + ((r >> 8) % 4) as i64;
        self.seq += 1;
        let header = EventHeader {
            stream: self.stream,
            instrument: i as u32 + 1,
            seq: self.seq,
            time_ns: T0_NS + self.seq as i64 * 1_000,
            px_scale: PX_SCALE,
            qty_scale: QTY_SCALE,
        };
        let quote = Quote {
            bid_px: *mid - spread / 2,
            bid_qty: 1 + ((r >> 16) % 4096) as i64,
            ask_px: *mid - spread / 2 + spread,
            ask_qty: 1 + ((r >> 32) % 4096) as i64,
        };
        (header, quote)
    }

    /// The next `n` quotes as one batch, written into `buf` (cleared first; pass the last
    /// batch's buffer back to reuse it).
    pub fn next_batch(&mut self, n: usize, buf: Vec<u8>) -> Vec<u8> {
        let mut w = EventBatchWriter::new(buf);
        for _ in 0..n {
            let (h, q) = self.next_quote();
            w.push(&h, &Payload::Quote(q));
        }
        w.finish()
    }

    /// `events` quotes packed into batches of `batch` events.
    pub fn batches(&mut self, events: u64, batch: usize) -> Vec<Vec<u8>> {
        let batch = batch.max(1) as u64;
        let mut out = Vec::with_capacity(events.div_ceil(batch) as usize);
        let mut left = events;
        while left > 0 {
            let n = left.min(batch);
            out.push(self.next_batch(n as usize, Vec::with_capacity(16 + 64 * n as usize)));
            left -= n;
        }
        out
    }
}
