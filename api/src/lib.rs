//! Cascade's HTTP/WebSocket front end: configuration, access tokens, metrics and the server.

/// Writes `$value` as a `Debug` struct named `$name`: each listed field as itself, or as the
/// expression given after `=` (to redact a secret).
macro_rules! debug_struct {
    ($f:expr, $name:literal, $value:expr, { $($field:ident $(= $shown:expr)?),* $(,)? }) => {
        $f.debug_struct($name)
            $(.field(stringify!($field), debug_struct!(@shown $value, $field $(, $shown)?)))*
            .finish()
    };
    (@shown $value:expr, $field:ident) => {
        &$value.$field
    };
    (@shown $value:expr, $field:ident, $shown:expr) => {
        &$shown
    };
}

pub mod assets;
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
pub mod tls;
pub mod turn;
pub mod turn_credentials;
pub mod webhooks;
pub mod whip;
pub mod ws;
