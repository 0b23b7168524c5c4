//! A test guest of the ABI v1 contract (before the instrument table), bound directly with
//! wit-bindgen to the v1 strategy world in `wit/`: what a guest built with an older
//! tapedeck-guest looks like to this host, which must refuse it by version and say to
//! rebuild.

#[cfg(target_arch = "wasm32")]
mod v1 {
    wit_bindgen::generate!({ path: "wit", world: "strategy" });

    struct Old;

    impl Guest for Old {
        fn init(_config: String) -> Result<(), String> {
            Ok(())
        }
        fn metadata() -> ModuleInfo {
            ModuleInfo {
                name: "abi-v1".into(),
                version: "0.1.0".into(),
                abi_version: 1,
            }
        }
        fn on_events(_batch: Vec<u8>) -> Vec<u8> {
            Vec::new()
        }
        fn snapshot() -> Vec<u8> {
            Vec::new()
        }
        fn restore(_state: Vec<u8>) -> Result<(), String> {
            Ok(())
        }
    }

    export!(Old);
}
