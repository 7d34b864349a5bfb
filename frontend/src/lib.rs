//! Browser entry point. `wasm-bindgen` exports [`hydrate`], which the server-rendered page's
//! hydration script calls once `/pkg/hanzo-live.wasm` has loaded.

/// Attaches the client-side reactive system to the HTML the server rendered.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
