//! Reusable pieces of the page frame.

mod header;
mod pager;
mod prompt_dock;
mod rename_form;
mod status_bar;

pub use header::Header;
pub use pager::Pager;
pub use prompt_dock::PromptDock;
pub use rename_form::RenameForm;
pub use status_bar::StatusBar;
