pub mod artist;
pub mod dashboard;
pub mod distributed;
pub mod history;
pub mod landing;
pub mod listening;
pub mod not_found;
pub mod settings;
