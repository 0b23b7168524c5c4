//! A curve for plots in bounded memory: points `(time, value)` pushed in time order are kept
//! at a stride that doubles whenever [`CAPACITY`] points are held (every other point is
//! dropped then), plus the last point pushed. The points kept depend only on the sequence
//! pushed, so a report drawn from them is a function of the run.

use serde::Serialize;

/// Points held at most (before the last one).
pub const CAPACITY: usize = 2048;

#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Curve {
    points: Vec<(i64, f64)>,
    /// Keep one point in `stride`.
    stride: u64,
    pushed: u64,
    last: Option<(i64, f64)>,
}

impl Curve {
    pub fn new() -> Self {
        Curve {
            points: Vec::new(),
            stride: 1,
            pushed: 0,
            last: None,
        }
    }

    pub fn push(&mut self, t: i64, v: f64) {
        if self.pushed.is_multiple_of(self.stride.max(1)) {
            if self.points.len() == CAPACITY {
                let mut i = 0;
                self.points.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride = self.stride.max(1) * 2;
            }
            if self.pushed.is_multiple_of(self.stride) {
                self.points.push((t, v));
            }
        }
        self.pushed += 1;
        self.last = Some((t, v));
    }

    /// The points kept, ending with the last one pushed.
    pub fn points(&self) -> Vec<(i64, f64)> {
        let mut v = self.points.clone();
        if let Some(l) = self.last
            && v.last() != Some(&l)
        {
            v.push(l);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_curve_holds_a_bounded_evenly_strided_sample_and_the_last_point() {
        let mut c = Curve::new();
        let n = CAPACITY as i64 * 5 + 3;
        for t in 0..n {
            c.push(t, t as f64);
        }
        let p = c.points();
        assert!(p.len() <= CAPACITY + 1, "{}", p.len());
        assert!(p.len() > CAPACITY / 2, "{}", p.len());
        assert_eq!(p[0], (0, 0.0));
        assert_eq!(*p.last().unwrap(), (n - 1, (n - 1) as f64));
        // Evenly strided before the last point.
        let step = p[1].0 - p[0].0;
        assert!(p[..p.len() - 1].windows(2).all(|w| w[1].0 - w[0].0 == step));
        // Few points: all of them.
        let mut c = Curve::new();
        c.push(1, 1.0);
        c.push(2, 2.0);
        assert_eq!(c.points(), [(1, 1.0), (2, 2.0)]);
    }
}
