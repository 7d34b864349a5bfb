//! Reusable pieces of the page frame.

mod header;
mod status_bar;

pub use header::Header;
pub use status_bar::StatusBar;
