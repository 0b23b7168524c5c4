//! A test guest that claims an ABI version this host does not speak: the host must refuse
//! to load it, naming both versions.

use serde::{Deserialize, Serialize};
use tapedeck_guest::{Ctx, Event, Strategy};

#[derive(Serialize, Deserialize, Default)]
pub struct AbiSkew;

impl Strategy for AbiSkew {
    type Config = ();

    fn new(_: ()) -> Result<Self, String> {
        Ok(AbiSkew)
    }

    fn on_event(&mut self, _: &Event<'_>, _: &mut Ctx<'_>) {}
}

tapedeck_guest::export_strategy!(AbiSkew, abi_version = tapedeck_guest::ABI_VERSION + 1);
