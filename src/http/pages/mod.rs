//! Pages served to people: the join page (and its assets), the demo.

mod compress;
pub mod demo;
pub mod join;
pub mod report;
pub mod report_recordings;
