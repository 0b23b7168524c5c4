//! Queue position of a resting limit order on L2 data, as hftbacktest's queue models estimate
//! it (`RiskAverseQueueModel`, `ProbQueueModel` with its probability functions). Quantities
//! are exact (scale 9); the probabilistic models compute their split in f64 and round.
//!
//! - At placement the quantity ahead (`front`) is the level's quantity.
//! - A trade at the price takes its quantity from `front`; once `front` is below 0 the order
//!   can fill by `-front` (bounded by the trade's quantity and what the order has left).
//! - A level change: risk-averse clamps `front` to the new quantity; the probabilistic models
//!   take the decrease not explained by trades since the last change and split it between
//!   ahead and behind with probability `prob(front, back)` of it being behind.

use super::types::QueueModelConfig;

/// One unit of the instrument in the venue's scale-9 quantities.
const UNIT: f64 = 1e9;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct QueuePos {
    pub front: i128,
    cum_trade: i128,
}

#[derive(Debug, Clone)]
pub(crate) struct QueueModel(QueueModelConfig);

impl QueueModel {
    pub fn new(cfg: &QueueModelConfig) -> Self {
        QueueModel(cfg.clone())
    }

    pub fn new_order(&self, level_qty: i128) -> QueuePos {
        QueuePos {
            front: level_qty,
            cum_trade: 0,
        }
    }

    pub fn trade(&self, q: &mut QueuePos, qty: i128) {
        q.front -= qty;
        if !matches!(self.0, QueueModelConfig::RiskAverse) {
            q.cum_trade += qty;
        }
    }

    pub fn depth(&self, q: &mut QueuePos, prev: i128, new: i128) {
        if matches!(self.0, QueueModelConfig::RiskAverse) {
            q.front = q.front.min(new);
            return;
        }
        let chg = prev - new - q.cum_trade;
        q.cum_trade = 0;
        if chg < 0 {
            q.front = q.front.min(new);
            return;
        }
        // In units of the instrument, as hftbacktest computes them: the log models are not
        // scale-free (ln(1 + x)), and powers of scale-9 integers overflow.
        let front = q.front as f64 / UNIT;
        let back = (prev - q.front) as f64 / UNIT;
        let mut prob = self.prob(front, back);
        if prob.is_infinite() {
            prob = 1.0;
        }
        let chg = chg as f64 / UNIT;
        let est = front - (1.0 - prob) * chg + (back - prob * chg).min(0.0);
        // hftbacktest takes `est.min(new)`, and f64::min of NaN (0/0 at an empty level, or
        // after a partial fill) and `new` is `new`.
        q.front = match est.is_nan() {
            true => new,
            false => ((est * UNIT).round() as i128).min(new),
        };
    }

    fn prob(&self, front: f64, back: f64) -> f64 {
        match self.0 {
            QueueModelConfig::RiskAverse => 0.0,
            QueueModelConfig::ProbPower { n } => {
                let f = |x: f64| x.powf(n);
                f(back) / (f(back) + f(front))
            }
            QueueModelConfig::ProbPower2 { n } => back.powf(n) / (back + front).powf(n),
            QueueModelConfig::ProbPower3 { n } => 1.0 - (front / (front + back)).powf(n),
            QueueModelConfig::ProbLog => {
                let f = |x: f64| (1.0 + x).ln();
                f(back) / (f(back) + f(front))
            }
            QueueModelConfig::ProbLog2 => (1.0 + back).ln() / (1.0 + back + front).ln(),
        }
    }

    /// What the order may fill now: the quantity traded past it.
    pub fn filled(&self, q: &QueuePos) -> i128 {
        (-q.front).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_averse_advances_by_trades_and_clamps() {
        let m = QueueModel::new(&QueueModelConfig::RiskAverse);
        let mut q = m.new_order(10);
        m.trade(&mut q, 3);
        assert_eq!(q.front, 7);
        // Cancels behind or ahead: clamped to the level.
        m.depth(&mut q, 7, 5);
        assert_eq!(q.front, 5);
        // Growth behind does not move it.
        m.depth(&mut q, 5, 9);
        assert_eq!(q.front, 5);
        m.trade(&mut q, 8);
        assert_eq!(m.filled(&q), 3);
    }

    #[test]
    fn prob_power_splits_cancels() {
        // n = 1: prob behind = back / (back + front).
        let m = QueueModel::new(&QueueModelConfig::ProbPower { n: 1.0 });
        let mut q = m.new_order(4);
        // The level grows to 10 (6 behind), then 5 are cancelled: 6/10 behind.
        m.depth(&mut q, 4, 10);
        assert_eq!(q.front, 4);
        m.depth(&mut q, 10, 5);
        // est = 4 - (1 - 0.6) * 5 + min(6 - 3, 0) = 2
        assert_eq!(q.front, 2);
        // A trade of 1 at the price, then the level shows it (5 -> 4): no cancel to split.
        m.trade(&mut q, 1);
        m.depth(&mut q, 5, 4);
        assert_eq!(q.front, 1);
    }

    /// The order's queue ahead after: 1 unit ahead, the level grows to 4 (3 behind), then 1
    /// unit is cancelled.
    fn after_one_cancelled(cfg: QueueModelConfig) -> i128 {
        const U: i128 = 1_000_000_000;
        let m = QueueModel::new(&cfg);
        let mut q = m.new_order(U);
        m.depth(&mut q, U, 4 * U);
        m.depth(&mut q, 4 * U, 3 * U);
        q.front
    }

    #[test]
    fn prob_models_split_as_hftbacktest_computes_in_units() {
        // hftbacktest: est = front - (1 - p) * chg + min(back - p * chg, 0), front 1, back 3,
        // chg 1, in units (the log models are not scale-free).
        let want = |p: f64| ((1.0 - (1.0 - p)) * 1e9_f64).round() as i128;
        let (ln2, ln4, ln5) = (2f64.ln(), 4f64.ln(), 5f64.ln());
        let cases = [
            (QueueModelConfig::ProbLog, ln4 / (ln4 + ln2)),
            (QueueModelConfig::ProbLog2, ln4 / ln5),
            (QueueModelConfig::ProbPower { n: 3.0 }, 27.0 / 28.0),
            (QueueModelConfig::ProbPower2 { n: 2.0 }, 9.0 / 16.0),
            (QueueModelConfig::ProbPower3 { n: 2.0 }, 1.0 - 1.0 / 16.0),
        ];
        for (cfg, p) in cases {
            assert_eq!(after_one_cancelled(cfg.clone()), want(p), "{cfg:?}");
        }
        // ProbLog: 0.667 of the cancel behind, not ~0.5 as with scale-9 integers.
        assert_eq!(want(ln4 / (ln4 + ln2)), 666_666_667);
        // Large powers stay finite in units (they overflowed to inf/inf with integers).
        assert!(after_one_cancelled(QueueModelConfig::ProbPower { n: 40.0 }) > 0);
    }

    #[test]
    fn a_nan_estimate_takes_the_level_as_hftbacktest_does() {
        // A partial fill leaves front below 0: (-1)^0.5 is NaN, so the estimate is NaN and
        // hftbacktest's `est.min(new)` is the level's new quantity (here 0, not -1 unit).
        let m = QueueModel::new(&QueueModelConfig::ProbPower { n: 0.5 });
        let mut q = QueuePos {
            front: -1_000_000_000,
            cum_trade: 0,
        };
        m.depth(&mut q, 1_000_000_000, 0);
        assert_eq!(q.front, 0);
    }
}
