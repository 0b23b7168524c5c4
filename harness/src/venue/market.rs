//! One instrument's market as the venue knows it: its top of book, last trade and mark.

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Top {
    pub bid: Option<i128>,
    pub ask: Option<i128>,
}

/// One instrument's market as the venue knows it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Market {
    pub top: Top,
    pub last_trade: Option<i128>,
    /// What positions are marked at (see the module doc); `None` until a price is known.
    pub mark: Option<i128>,
}

impl Market {
    pub fn update_mark(&mut self) {
        self.mark = match (self.top.bid, self.top.ask) {
            (Some(b), Some(a)) => Some((b + a) / 2),
            _ => self.last_trade.or(self.mark),
        };
    }
}

/// The market of instrument `id` takes an event's new top of book and trade price (if any),
/// and marks again.
pub(super) fn move_market(
    markets: &mut Vec<(u32, Market)>,
    id: u32,
    new_top: Option<Top>,
    trade_px: Option<i128>,
) {
    if new_top.is_none() && trade_px.is_none() {
        return;
    }
    let i = match markets.iter().position(|x| x.0 == id) {
        Some(i) => i,
        None => {
            markets.push((id, Market::default()));
            markets.len() - 1
        }
    };
    let m = &mut markets[i].1;
    if let Some(top) = new_top {
        m.top = top;
    }
    if trade_px.is_some() {
        m.last_trade = trade_px;
    }
    m.update_mark();
}
