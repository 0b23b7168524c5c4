//! A test guest that misbehaves on purpose at a chosen seq: panics, spins forever, or
//! allocates without bound. Until then it counts events. The host must contain all three.

use serde::{Deserialize, Serialize};
use tapedeck_guest::{Ctx, Event, Strategy};

#[derive(Serialize, Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Behave,
    Panic,
    Spin,
    Hog,
}

#[derive(Serialize, Deserialize, Default, Clone, Copy)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mode: Mode,
    pub at_seq: u64,
}

#[derive(Serialize, Deserialize)]
pub struct Misbehave {
    cfg: Config,
    seen: u64,
    #[serde(skip)]
    hoard: Vec<Vec<u8>>,
}

impl Strategy for Misbehave {
    type Config = Config;

    fn new(cfg: Config) -> Result<Self, String> {
        Ok(Misbehave {
            cfg,
            seen: 0,
            hoard: Vec::new(),
        })
    }

    fn on_event(&mut self, ev: &Event<'_>, ctx: &mut Ctx<'_>) {
        self.seen += 1;
        if ev.header.seq != self.cfg.at_seq {
            return;
        }
        match self.cfg.mode {
            Mode::Behave => ctx.metric("seen", self.seen as f64),
            Mode::Panic => panic!("misbehave: panicking at seq {}", ev.header.seq),
            Mode::Spin => {
                let mut x = self.seen;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            Mode::Hog => loop {
                self.hoard.push(vec![1u8; 1 << 20]);
            },
        }
    }
}

tapedeck_guest::export_strategy!(Misbehave);
