//! The host's one binding of the WIT worlds in `guest-sdk/wit`. No other host file declares
//! boundary types.

pub mod strategy {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit",
        world: "strategy",
    });
}

pub mod projector {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit",
        world: "projector",
    });
}
