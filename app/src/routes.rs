//! Pages, one file each.

mod not_found;
mod stream;

pub use not_found::NotFound;
pub use stream::StreamPage;
