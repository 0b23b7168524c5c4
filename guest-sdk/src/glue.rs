//! Support for the export macros; not API. On `wasm32` this is the one place the guest side
//! binds the WIT worlds (with `wit-bindgen`); natively the macros only type-check.

use crate::{Projector, Strategy};

pub fn assert_strategy<T: Strategy>() {}
pub fn assert_projector<T: Projector>() {}

/// Holds a module's one guest instance. Wasm guests are single-threaded and the host never
/// re-enters an instance, so the cell is never borrowed twice.
pub struct Slot<T>(core::cell::UnsafeCell<Option<T>>);

// SAFETY: only instantiated on wasm32 guests, which have exactly one thread.
unsafe impl<T> Sync for Slot<T> {}

impl<T> Slot<T> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(core::cell::UnsafeCell::new(None))
    }

    pub fn set(&self, value: T) {
        // SAFETY: see the type's comment: no other borrow can be live.
        unsafe { *self.0.get() = Some(value) }
    }

    #[allow(clippy::mut_from_ref)]
    pub fn get(&self) -> &mut T {
        // SAFETY: see the type's comment: no other borrow can be live.
        match unsafe { &mut *self.0.get() } {
            Some(v) => v,
            None => panic!("tapedeck-guest: the host called the module before `init`"),
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use wit_bindgen;

#[cfg(all(
    target_arch = "wasm32",
    feature = "strategy",
    not(feature = "projector")
))]
pub mod strategy_world {
    wit_bindgen::generate!({
        path: "wit",
        world: "strategy",
        pub_export_macro: true,
        export_macro_name: "__export_strategy_world",
        default_bindings_module: "tapedeck_guest::glue::strategy_world",
        runtime_path: "tapedeck_guest::glue::wit_bindgen::rt",
    });
}

#[cfg(all(
    target_arch = "wasm32",
    feature = "projector",
    not(feature = "strategy")
))]
pub mod projector_world {
    wit_bindgen::generate!({
        path: "wit",
        world: "projector",
        pub_export_macro: true,
        export_macro_name: "__export_projector_world",
        default_bindings_module: "tapedeck_guest::glue::projector_world",
        runtime_path: "tapedeck_guest::glue::wit_bindgen::rt",
    });
}

#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_strategy_wasm {
    ($ty:ty, $abi:expr) => {};
}

#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_projector_wasm {
    ($ty:ty) => {};
}

#[cfg(all(target_arch = "wasm32", feature = "strategy", feature = "projector"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_strategy_wasm {
    ($ty:ty, $abi:expr) => {
        compile_error!(
            "tapedeck-guest has both the `strategy` and `projector` features on: a module exports one world. Build each guest crate on its own (`tapedeck build <crate-dir>`) and enable only `strategy` for a strategy."
        );
    };
}

#[cfg(all(target_arch = "wasm32", feature = "strategy", feature = "projector"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_projector_wasm {
    ($ty:ty) => {
        compile_error!(
            "tapedeck-guest has both the `strategy` and `projector` features on: a module exports one world. Build each guest crate on its own (`tapedeck build <crate-dir>`) and enable only `projector` for a projector."
        );
    };
}

#[cfg(all(target_arch = "wasm32", not(feature = "strategy")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_strategy_wasm {
    ($ty:ty, $abi:expr) => {
        compile_error!(
            "export_strategy! needs the `strategy` feature of tapedeck-guest: in Cargo.toml write `tapedeck-guest = { version = \"..\", features = [\"strategy\"] }`"
        );
    };
}

#[cfg(all(target_arch = "wasm32", not(feature = "projector")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_projector_wasm {
    ($ty:ty) => {
        compile_error!(
            "export_projector! needs the `projector` feature of tapedeck-guest: in Cargo.toml write `tapedeck-guest = { version = \"..\", features = [\"projector\"] }`"
        );
    };
}

#[cfg(all(
    target_arch = "wasm32",
    feature = "strategy",
    not(feature = "projector")
))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_strategy_wasm {
    ($ty:ty, $abi:expr) => {
        const _: () = {
            use $crate::glue::strategy_world as __w;
            static __SLOT: $crate::glue::Slot<$crate::driver::StrategyDriver<$ty>> = $crate::glue::Slot::new();
            struct __TapedeckGuest;
            impl __w::Guest for __TapedeckGuest {
                fn init(config: String) -> Result<(), String> {
                    __SLOT.set($crate::driver::StrategyDriver::<$ty>::init(&config)?);
                    Ok(())
                }
                fn metadata() -> __w::ModuleInfo {
                    __w::ModuleInfo {
                        name: env!("CARGO_PKG_NAME").into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        abi_version: $abi,
                    }
                }
                fn set_instruments(table: Vec<__w::Instrument>) {
                    __SLOT.get().set_instruments($crate::Instruments::new(
                        table.into_iter().map(|i| (i.id, i.symbol)),
                    ));
                }
                fn on_events(batch: Vec<u8>) -> Vec<u8> {
                    __SLOT.get().on_events(&batch).to_vec()
                }
                fn snapshot() -> Vec<u8> {
                    __SLOT.get().snapshot()
                }
                fn restore(state: Vec<u8>) -> Result<(), String> {
                    __SLOT.set($crate::driver::StrategyDriver::<$ty>::restore(&state)?);
                    Ok(())
                }
            }
            $crate::glue::strategy_world::__export_strategy_world!(__TapedeckGuest with_types_in $crate::glue::strategy_world);
        };
    };
}

#[cfg(all(
    target_arch = "wasm32",
    feature = "projector",
    not(feature = "strategy")
))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_projector_wasm {
    ($ty:ty) => {
        const _: () = {
            use $crate::glue::projector_world as __w;
            static __SLOT: $crate::glue::Slot<$crate::driver::ProjectorDriver<$ty>> = $crate::glue::Slot::new();
            struct __TapedeckGuest;
            impl __w::Guest for __TapedeckGuest {
                fn init(config: String) -> Result<(), String> {
                    __SLOT.set($crate::driver::ProjectorDriver::<$ty>::init(&config)?);
                    Ok(())
                }
                fn metadata() -> __w::ModuleInfo {
                    __w::ModuleInfo {
                        name: env!("CARGO_PKG_NAME").into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        abi_version: $crate::ABI_VERSION,
                    }
                }
                fn set_instruments(table: Vec<__w::Instrument>) {
                    __SLOT.get().set_instruments($crate::Instruments::new(
                        table.into_iter().map(|i| (i.id, i.symbol)),
                    ));
                }
                fn on_events(batch: Vec<u8>) -> Vec<u8> {
                    __SLOT.get().on_events(&batch).to_vec()
                }
                fn snapshot() -> Vec<u8> {
                    __SLOT.get().snapshot()
                }
                fn restore(state: Vec<u8>) -> Result<(), String> {
                    __SLOT.set($crate::driver::ProjectorDriver::<$ty>::restore(&state)?);
                    Ok(())
                }
                fn state() -> Vec<u8> {
                    __SLOT.get().state()
                }
            }
            $crate::glue::projector_world::__export_projector_world!(__TapedeckGuest with_types_in $crate::glue::projector_world);
        };
    };
}
