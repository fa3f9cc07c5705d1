pub mod range_preview;
