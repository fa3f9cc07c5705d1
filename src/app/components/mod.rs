pub mod range_preview;
pub mod top_bar;
