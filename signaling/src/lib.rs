//! Cascade's signaling layer, independent of any transport.
//!
//! - [`protocol`]: the JSON messages exchanged over the WebSocket (serde types).
//! - [`error`]: the documented error codes carried by `error` messages.
//! - [`names`]: the one rule for room names and identities.
//! - [`negotiation`]: the sans-I/O offer/answer state machine of one participant
//!   ("perfect negotiation" with the server as the impolite peer).

pub mod error;
pub mod names;
pub mod negotiation;
pub mod protocol;

pub use error::ErrorCode;
pub use protocol::{ClientMessage, ServerMessage};
