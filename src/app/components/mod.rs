pub mod chart;
pub mod cover;
pub mod error_notice;
pub mod keep_while_loading;
pub mod range_preview;
pub mod range_switch;
pub mod sign_in_prompt;
pub mod top_bar;
