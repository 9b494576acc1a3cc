//! The `CASCADE_*` environment variables: one per configuration key, lists comma-separated,
//! empty values unset; every value gets a typed error naming its variable.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use anyhow::anyhow;
use clap::ValueEnum;
use humantime::parse_duration;

use super::{Layer, LogFormat};

/// The variables of `env` that are set, as a configuration layer.
pub(super) fn layer(env: &BTreeMap<String, String>) -> anyhow::Result<Layer> {
    let string = |s: &str| Ok::<_, std::convert::Infallible>(s.to_owned());
    let mut layer = Layer::default();
    layer.set(
        "http_addr",
        read(env, "CASCADE_HTTP_ADDR", str::parse::<SocketAddr>)?,
    );
    layer.set(
        "udp_port",
        read(env, "CASCADE_UDP_PORT", str::parse::<u16>)?,
    );
    layer.set(
        "public_ips",
        read(env, "CASCADE_PUBLIC_IP", list::<IpAddr>)?,
    );
    layer.set("api_key", read(env, "CASCADE_API_KEY", string)?);
    layer.set("api_secret", read(env, "CASCADE_API_SECRET", string)?);
    let room_empty_timeout = read(env, "CASCADE_ROOM_EMPTY_TIMEOUT", parse_duration)?;
    layer.set_duration("room_empty_timeout", room_empty_timeout);
    layer.set(
        "max_participants",
        read(env, "CASCADE_MAX_PARTICIPANTS", str::parse::<u32>)?,
    );
    let log_format = read(env, "CASCADE_LOG_FORMAT", |s| LogFormat::from_str(s, true))?;
    layer.set("log_format", log_format);
    layer.set(
        "workers",
        read(env, "CASCADE_WORKERS", str::parse::<usize>)?,
    );
    layer.set(
        "ice_servers",
        read(env, "CASCADE_ICE_SERVERS", list::<String>)?,
    );
    layer.set(
        "webhook_urls",
        read(env, "CASCADE_WEBHOOK_URLS", list::<String>)?,
    );
    layer.set(
        "webhook_secret",
        read(env, "CASCADE_WEBHOOK_SECRET", string)?,
    );
    let webhook_timeout = read(env, "CASCADE_WEBHOOK_TIMEOUT", parse_duration)?;
    layer.set_duration("webhook_timeout", webhook_timeout);
    let attempts = read(env, "CASCADE_WEBHOOK_MAX_ATTEMPTS", str::parse::<u32>)?;
    layer.set("webhook_max_attempts", attempts);
    let session_rate = read(env, "CASCADE_SESSION_RATE_LIMIT", str::parse::<u32>)?;
    layer.set("session_rate_limit", session_rate);
    let connections = read(env, "CASCADE_MAX_CONNECTIONS", str::parse::<usize>)?;
    layer.set("max_connections", connections);
    let per_ip = read(env, "CASCADE_MAX_CONNECTIONS_PER_IP", str::parse::<usize>)?;
    layer.set("max_connections_per_ip", per_ip);
    let header_timeout = read(env, "CASCADE_HEADER_TIMEOUT", parse_duration)?;
    layer.set_duration("header_timeout", header_timeout);
    layer.set_duration(
        "body_timeout",
        read(env, "CASCADE_BODY_TIMEOUT", parse_duration)?,
    );
    layer.set_duration(
        "drain_timeout",
        read(env, "CASCADE_DRAIN_TIMEOUT", parse_duration)?,
    );
    let message_rate = read(env, "CASCADE_MESSAGE_RATE_LIMIT", str::parse::<u32>)?;
    layer.set("message_rate_limit", message_rate);
    let data_rate = read(env, "CASCADE_DATA_RATE_LIMIT", str::parse::<u32>)?;
    layer.set("data_rate_limit", data_rate);
    Ok(layer)
}

/// The value of the variable `name`, parsed; unset or empty is `None`; an error names the
/// variable.
fn read<T, E: fmt::Display>(
    env: &BTreeMap<String, String>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> anyhow::Result<Option<T>> {
    match env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse(v)
            .map(Some)
            .map_err(|e| anyhow!("invalid {name}={v:?}: {e}")),
    }
}

/// A comma-separated list; empty items are skipped.
fn list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, T::Err> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::parse)
        .collect()
}
