//! Reusable pieces of the page frame.

mod header;
mod pager;
mod status_bar;

pub use header::Header;
pub use pager::Pager;
pub use status_bar::StatusBar;
