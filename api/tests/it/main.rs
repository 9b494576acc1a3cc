//! The api integration tests, linked as one binary (one link instead of one per file; the
//! build of the tests is CI's longest step). Each module is one area; `server` starts an
//! in-process Cascade and holds the shared clients. `tests/media_port.rs` stays a binary of
//! its own: it installs the process's tracing subscriber and counts every server's log lines.
//! Run in a network namespace (`unshare -n`), like every networked test.

#[path = "../server/mod.rs"]
mod server;

mod bad_input;
mod binary;
mod broadcast;
mod conference;
mod coturn;
mod data;
mod drain;
mod dual_stack;
mod edge_limits;
mod feedback;
mod http;
mod ice_restart;
mod inactive_m_lines;
mod lifecycle;
mod names;
mod rest_auth;
mod rest_participants;
mod rest_rooms;
mod resume;
mod session_limits;
mod stun_discovery;
mod tls;
mod turn_credentials;
mod turn_server;
mod webhooks;
mod whep;
mod whip_errors;
mod whip_limits;
