//! Pure types shared by the server and the browser. Input is parsed once at the boundary;
//! past it, values are valid by construction.

pub mod artist;
pub mod chart;
pub mod dashboard;
pub mod distributed;
pub mod history;
pub mod listening;
pub mod names;
pub mod sync;
mod time_range;
pub mod top;
pub mod trending;

pub use sync::{SyncProgress, SyncStatus};
pub use time_range::{TimeRange, UnknownTimeRange};
pub use top::{genre_shares, ArtistRef, GenreShare, Genres, TopArtist, TopPayload, TopTrack};
