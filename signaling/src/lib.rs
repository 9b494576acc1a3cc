//! Cascade's signaling layer, independent of any transport.
//!
//! - [`protocol`]: the JSON messages exchanged over the WebSocket (serde types).
//! - [`error`]: the documented error codes carried by `error` messages.
//! - [`names`]: the one rule for room names and identities.
//! - [`negotiation`]: the sans-I/O offer/answer state machines of one participant
//!   ("perfect negotiation"): the server's impolite side and the client's polite side.

pub mod error;
pub mod names;
pub mod negotiation;
pub mod protocol;

pub use error::ErrorCode;
pub use protocol::{ClientMessage, ServerMessage};
