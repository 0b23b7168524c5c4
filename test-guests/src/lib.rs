//! Paths of this repository's guests, built to core Wasm modules by this crate's build
//! script. Tests load them through the host's loader (which componentizes them).

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
