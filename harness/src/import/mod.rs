//! Importers that turn venue captures into envelopes in a store.

pub mod binance;
