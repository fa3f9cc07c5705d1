pub mod chart;
pub mod cover;
pub mod range_preview;
pub mod range_switch;
pub mod top_bar;
