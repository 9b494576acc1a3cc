//! A published track as the engine receives it (mediasoup's producer): the [`up_track`] each
//! packet enters once, and what it is made of: the track's one [`packet_cache`] (shared by all
//! its subscribers' retransmissions), the [`nack_generator`] that asks the publisher for lost
//! packets, and the [`receive_stats`] of its receiver reports. Sans-I/O.

pub mod nack_generator;
pub mod packet_cache;
pub mod receive_stats;
pub mod up_track;
