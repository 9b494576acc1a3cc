//! Cascade's HTTP/WebSocket front end: configuration, access tokens, metrics and the server.

pub mod auth;
pub mod config;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod rate_limit;
pub mod rest;
pub mod server;
pub mod state;
pub mod webhooks;
pub mod whip;
pub mod ws;
