//! The `CASCADE_*` environment variables: one per configuration key, lists comma-separated,
//! empty values unset; every value gets a typed error naming its variable.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use anyhow::anyhow;
use clap::ValueEnum;
use figment::value::Value;
use serde::Serialize;

use super::{Layer, LogFormat};

/// The variables of `env` that are set, as a configuration layer.
pub(super) fn layer(env: &BTreeMap<String, String>) -> anyhow::Result<Layer> {
    let mut layer = Layer::default();
    /// Sets each key to its variable's value, parsed by its parser.
    macro_rules! read {
        ($($key:literal $name:literal $parse:expr;)*) => {$(
            layer.set($key, var(env, $name, $parse)?);
        )*};
    }
    read! {
        "http_addr"              "CASCADE_HTTP_ADDR"              parsed::<SocketAddr>;
        "public_url"             "CASCADE_PUBLIC_URL"             string;
        "tls_cert"               "CASCADE_TLS_CERT"               string;
        "tls_key"                "CASCADE_TLS_KEY"                string;
        "tls_self_signed"        "CASCADE_TLS_SELF_SIGNED"        parsed::<bool>;
        "tls_handshake_timeout"  "CASCADE_TLS_HANDSHAKE_TIMEOUT"  duration;
        "udp_port"               "CASCADE_UDP_PORT"               parsed::<u16>;
        "ice_tcp"                "CASCADE_ICE_TCP"                parsed::<bool>;
        "public_ips"             "CASCADE_PUBLIC_IP"              list::<IpAddr>;
        "stun_server"            "CASCADE_STUN_SERVER"            string;
        "api_key"                "CASCADE_API_KEY"                string;
        "api_secret"             "CASCADE_API_SECRET"             string;
        "room_empty_timeout"     "CASCADE_ROOM_EMPTY_TIMEOUT"     duration;
        "max_participants"       "CASCADE_MAX_PARTICIPANTS"       parsed::<u32>;
        "log_format"             "CASCADE_LOG_FORMAT"             log_format;
        "workers"                "CASCADE_WORKERS"                parsed::<usize>;
        "ice_servers"            "CASCADE_ICE_SERVERS"            list::<String>;
        "turn"                   "CASCADE_TURN"                   parsed::<bool>;
        "turn_udp_port"          "CASCADE_TURN_UDP_PORT"          parsed::<u16>;
        "turn_tcp_port"          "CASCADE_TURN_TCP_PORT"          parsed::<u16>;
        "turn_tls_port"          "CASCADE_TURN_TLS_PORT"          parsed::<u16>;
        "turn_relay_ip"          "CASCADE_TURN_RELAY_IP"          parsed::<IpAddr>;
        "turn_relay_ports"       "CASCADE_TURN_RELAY_PORTS"       string;
        "turn_max_allocations"   "CASCADE_TURN_MAX_ALLOCATIONS"   parsed::<usize>;
        "turn_realm"             "CASCADE_TURN_REALM"             string;
        "turn_secret"            "CASCADE_TURN_SECRET"            string;
        "turn_urls"              "CASCADE_TURN_URLS"              list::<String>;
        "turn_credential_ttl"    "CASCADE_TURN_CREDENTIAL_TTL"    duration;
        "webhook_urls"           "CASCADE_WEBHOOK_URLS"           list::<String>;
        "webhook_secret"         "CASCADE_WEBHOOK_SECRET"         string;
        "webhook_timeout"        "CASCADE_WEBHOOK_TIMEOUT"        duration;
        "webhook_max_attempts"   "CASCADE_WEBHOOK_MAX_ATTEMPTS"   parsed::<u32>;
        "session_rate_limit"     "CASCADE_SESSION_RATE_LIMIT"     parsed::<u32>;
        "max_connections"        "CASCADE_MAX_CONNECTIONS"        parsed::<usize>;
        "max_connections_per_ip" "CASCADE_MAX_CONNECTIONS_PER_IP" parsed::<usize>;
        "header_timeout"         "CASCADE_HEADER_TIMEOUT"         duration;
        "body_timeout"           "CASCADE_BODY_TIMEOUT"           duration;
        "drain_timeout"          "CASCADE_DRAIN_TIMEOUT"          duration;
        "message_rate_limit"     "CASCADE_MESSAGE_RATE_LIMIT"     parsed::<u32>;
        "data_rate_limit"        "CASCADE_DATA_RATE_LIMIT"        parsed::<u32>;
        "resume_grace"           "CASCADE_RESUME_GRACE"           duration;
    }
    Ok(layer)
}

/// The value of the variable `name`, parsed; unset or empty is `None`; an error names the
/// variable.
fn var<T: Serialize, E: fmt::Display>(
    env: &BTreeMap<String, String>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> anyhow::Result<Option<Value>> {
    let Some(v) = env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let value = parse(v).map_err(|e| anyhow!("invalid {name}={v:?}: {e}"))?;
    Ok(Some(
        Value::serialize(value).expect("configuration values serialize"),
    ))
}

/// A value of a type that parses from a string.
fn parsed<T: FromStr>(s: &str) -> Result<T, T::Err> {
    s.parse()
}

/// A string, as given.
fn string(s: &str) -> Result<String, Infallible> {
    Ok(s.to_owned())
}

/// A duration ("1m 30s"), written as in the TOML file.
fn duration(s: &str) -> Result<String, humantime::DurationError> {
    humantime::parse_duration(s).map(|d| humantime::format_duration(d).to_string())
}

/// A log format, in any case.
fn log_format(s: &str) -> Result<LogFormat, String> {
    LogFormat::from_str(s, true)
}

/// A comma-separated list; empty items are skipped.
fn list<T: FromStr>(s: &str) -> Result<Vec<T>, T::Err> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::parse)
        .collect()
}
