//! What a component declares, read from its bytes before it is compiled: how many core
//! instances it creates, the memories and tables its modules define, the largest table, and
//! what the component imports.
//!
//! The runtime sizes its instance pool for the guests Rust builds (one core instance, one
//! memory, one table). A component built by componentize-py bundles CPython as ~38 core
//! instances sharing a memory and several tables; componentize-js a SpiderMonkey of a few.
//! Such a component does not fit a pool slot, so it is allocated on demand; the footprint is
//! what decides, and what `inspect` shows.

use wasmparser::{Instance, Parser, Payload};

/// What a component declares.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Footprint {
    /// Core module instantiations (each takes a core instance slot).
    pub core_instances: u32,
    /// Memories defined (not imported) by its core modules.
    pub memories: u32,
    /// Tables defined (not imported) by its core modules.
    pub tables: u32,
    /// The largest initial table size, in elements.
    pub max_table_elements: u64,
    /// The largest initial memory, in bytes.
    pub max_initial_memory: u64,
    /// The names the component itself imports (a guest must import nothing).
    pub imports: Vec<String>,
}

/// What one pool slot holds; a component that needs more is allocated on demand.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotLimits {
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
    pub table_elements: u64,
}

impl Footprint {
    /// The footprint of a component (or a core module: one instance). Bytes wasmparser cannot
    /// read give what was read so far; compiling them reports the error.
    pub fn of(bytes: &[u8]) -> Footprint {
        let mut f = Footprint::default();
        let mut depth = 0u32;
        let mut is_component = false;
        for payload in Parser::new(0).parse_all(bytes) {
            let Ok(payload) = payload else { break };
            match payload {
                Payload::Version { encoding, .. } => {
                    if depth == 0 {
                        is_component = matches!(encoding, wasmparser::Encoding::Component);
                    }
                    depth += 1;
                }
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::InstanceSection(r) => {
                    f.core_instances += r
                        .into_iter()
                        .filter(|i| matches!(i, Ok(Instance::Instantiate { .. })))
                        .count() as u32;
                }
                Payload::MemorySection(r) => {
                    for m in r.into_iter().flatten() {
                        f.memories += 1;
                        let page = 1u64 << m.page_size_log2.unwrap_or(16);
                        f.max_initial_memory =
                            f.max_initial_memory.max(m.initial.saturating_mul(page));
                    }
                }
                Payload::TableSection(r) => {
                    for t in r.into_iter().flatten() {
                        f.tables += 1;
                        f.max_table_elements = f.max_table_elements.max(t.ty.initial);
                    }
                }
                Payload::ComponentImportSection(r) if depth == 1 => {
                    // Type imports (the world's records) are names for types, not things a
                    // host provides.
                    f.imports.extend(
                        r.into_iter()
                            .flatten()
                            .filter(|i| !matches!(i.ty, wasmparser::ComponentTypeRef::Type(_)))
                            .map(|i| i.name.name.to_string()),
                    );
                }
                _ => {}
            }
        }
        if !is_component {
            f.core_instances = 1;
        }
        f
    }

    /// Whether one pool slot holds it.
    pub(crate) fn fits(&self, slot: &SlotLimits) -> bool {
        self.core_instances <= slot.core_instances
            && self.memories <= slot.memories
            && self.tables <= slot.tables
            && self.max_table_elements <= slot.table_elements
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_module_is_one_instance_and_counts_its_own_memories_and_tables() {
        // (module (memory 2) (table 5 funcref))
        let wasm = [
            0, 97, 115, 109, 1, 0, 0, 0, // preamble
            4, 4, 1, 0x70, 0, 5, // table section: one funcref table, min 5
            5, 3, 1, 0, 2, // memory section: one memory, min 2 pages
        ];
        let f = Footprint::of(&wasm);
        assert_eq!(
            f,
            Footprint {
                core_instances: 1,
                memories: 1,
                tables: 1,
                max_table_elements: 5,
                max_initial_memory: 2 << 16,
                imports: vec![],
            }
        );
        let slot = SlotLimits {
            core_instances: 1,
            memories: 1,
            tables: 1,
            table_elements: 4,
        };
        assert!(!f.fits(&slot), "5 table elements do not fit 4");
        assert!(f.fits(&SlotLimits {
            table_elements: 5,
            ..slot
        }));
    }

    /// A component that imports a function `clock: func()` (what a WASI build would import).
    const IMPORTS_A_CLOCK: &[u8] = &[
        0, 97, 115, 109, 13, 0, 1, 0, // component preamble
        7, 5, 1, 0x40, 0, 1, 0, // type section: func() with no results
        10, 10, 1, 0, 5, b'c', b'l', b'o', b'c', b'k', 1, 0, // import "clock": func type 0
    ];

    #[test]
    fn a_component_import_is_listed() {
        let f = Footprint::of(IMPORTS_A_CLOCK);
        assert_eq!(f.imports, ["clock"]);
        assert_eq!(f.core_instances, 0);
    }
}
