//! placeholder
pub struct TurnServer;
