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
        let front = q.front as f64;
        let back = (prev - q.front) as f64;
        let mut prob = self.prob(front, back);
        if prob.is_infinite() {
            prob = 1.0;
        }
        let chg = chg as f64;
        let est = front - (1.0 - prob) * chg + (back - prob * chg).min(0.0);
        // NaN (0/0 at an empty level) keeps the order where it is, as f64::min does.
        let est = if est.is_nan() { front } else { est };
        q.front = (est.round() as i128).min(new);
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

    #[test]
    fn prob_log_is_between() {
        let m = QueueModel::new(&QueueModelConfig::ProbLog);
        let mut q = m.new_order(1_000_000_000);
        m.depth(&mut q, 1_000_000_000, 3_000_000_000);
        m.depth(&mut q, 3_000_000_000, 2_000_000_000);
        assert!(q.front > 0 && q.front < 1_000_000_000, "{}", q.front);
    }
}
