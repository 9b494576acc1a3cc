//! RTP packets read and rewritten in place: the engine's [`view`] of a packet. Sans-I/O.

pub mod view;
