//! Pages, one file each.

mod history;
mod library;
mod not_found;
mod stream;

pub use history::HistoryPage;
pub use library::LibraryPage;
pub use not_found::NotFound;
pub use stream::StreamPage;
