//! A track as one subscriber receives it (mediasoup's consumer): the [`down_track`] that
//! rewrites each packet for the subscriber, its sequence/timestamp [`munger`] (continuous
//! across source changes) and the [`send_stats`] of its sender reports. Sans-I/O.

pub mod down_track;
pub mod munger;
pub mod send_stats;
