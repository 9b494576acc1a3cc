//! The layering, defaults and errors of the configuration.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::*;

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("cascade").chain(args.iter().copied())).unwrap()
}

fn env(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A TOML file in the temp dir, removed on drop.
struct TempToml(PathBuf);

impl TempToml {
    fn new(name: &str, contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "cascade-config-test-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempToml {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn cli_definition_is_valid() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let config = load_with_env(&cli(&[]), &env(&[])).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(
        config.http_addr,
        "0.0.0.0:7880".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.room_empty_timeout, Duration::from_secs(30));
    assert!(config.is_dev_secret());
}

#[test]
fn cli_beats_env_beats_file_beats_defaults() {
    let file = TempToml::new(
        "precedence",
        r#"
        udp_port = 1001
        api_key = "filekey"
        max_participants = 5
        room_empty_timeout = "1m"
        "#,
    );
    let env = env(&[
        ("CASCADE_UDP_PORT", "1002"),
        ("CASCADE_API_KEY", "envkey"),
        ("CASCADE_ROOM_EMPTY_TIMEOUT", "2m 30s"),
    ]);
    let config =
        load_with_env(&cli(&["--config", file.arg(), "--udp-port", "1003"]), &env).unwrap();
    assert_eq!(config.udp_port, 1003, "CLI wins over env and file");
    assert_eq!(config.api_key, "envkey", "env wins over file");
    assert_eq!(config.room_empty_timeout, Duration::from_secs(150));
    assert_eq!(config.max_participants, 5, "file wins over default");
    assert_eq!(config.workers, 0, "default when unset everywhere");
}

#[test]
fn lists_are_repeatable_and_comma_separated() {
    let config = load_with_env(
        &cli(&[
            "--public-ip",
            "203.0.113.1,203.0.113.2",
            "--public-ip",
            "2001:db8::1",
        ]),
        &env(&[("CASCADE_ICE_SERVERS", "stun:a.example:3478, turn:b.example")]),
    )
    .unwrap();
    let ips: Vec<IpAddr> = ["203.0.113.1", "203.0.113.2", "2001:db8::1"]
        .map(|ip| ip.parse().unwrap())
        .into();
    assert_eq!(config.public_ips, ips);
    assert_eq!(
        config.ice_servers,
        ["stun:a.example:3478", "turn:b.example"]
    );

    let config = load_with_env(&cli(&[]), &env(&[("CASCADE_PUBLIC_IP", "198.51.100.7")])).unwrap();
    assert_eq!(
        config.public_ips,
        ["198.51.100.7".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn every_env_variable_is_read() {
    let config = load_with_env(
        &cli(&[]),
        &env(&[
            ("CASCADE_HTTP_ADDR", "127.0.0.1:9000"),
            ("CASCADE_UDP_PORT", "0"),
            (
                "CASCADE_API_SECRET",
                "an-operator-secret-of-at-least-32-bytes",
            ),
            ("CASCADE_MAX_PARTICIPANTS", "0"),
            ("CASCADE_LOG_FORMAT", "JSON"),
            ("CASCADE_WORKERS", "3"),
        ]),
    )
    .unwrap();
    assert_eq!(
        config.http_addr,
        "127.0.0.1:9000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.udp_port, 0);
    assert!(!config.is_dev_secret());
    assert_eq!(config.max_participants, 0);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.workers, 3);
}

#[test]
fn token_subcommand_takes_config_and_key_flags() {
    let cli = cli(&[
        "token",
        "--room",
        "demo",
        "--identity",
        "alice",
        "--no-publish",
        "--api-key",
        "k",
    ]);
    let Some(Command::Token(args)) = &cli.command else {
        panic!("expected token subcommand");
    };
    assert_eq!(
        (args.room.as_str(), args.identity.as_str()),
        ("demo", "alice")
    );
    assert!(args.no_publish && !args.no_subscribe && !args.admin);
    assert_eq!(args.ttl, Duration::from_secs(6 * 3600));
    assert_eq!(load_with_env(&cli, &env(&[])).unwrap().api_key, "k");
}

#[test]
fn invalid_values_are_errors() {
    let err = |cli: &Cli, vars: &[(&str, &str)]| {
        format!("{:#}", load_with_env(cli, &env(vars)).unwrap_err())
    };
    let e = err(&cli(&[]), &[("CASCADE_UDP_PORT", "seventy")]);
    assert!(e.contains("CASCADE_UDP_PORT"), "{e}");
    let e = err(&cli(&[]), &[("CASCADE_API_SECRET", "short")]);
    assert!(e.contains("at least 32 bytes"), "{e}");
    let e = err(&cli(&[]), &[("CASCADE_ICE_SERVERS", "http://x")]);
    assert!(e.contains("stun:"), "{e}");
    let e = err(&cli(&["--public-ip", "0.0.0.0"]), &[]);
    assert!(e.contains("unspecified"), "{e}");

    let file = TempToml::new("bad-type", "udp_port = \"many\"");
    let e = err(&cli(&["--config", file.arg()]), &[]);
    assert!(e.contains("udp_port"), "{e}");
    let file = TempToml::new("unknown-key", "udp_prot = 1");
    let e = err(&cli(&["--config", file.arg()]), &[]);
    assert!(e.contains("udp_prot"), "{e}");
    let e = err(&cli(&["--config", "/nonexistent/cascade.toml"]), &[]);
    assert!(e.contains("cascade.toml"), "{e}");

    assert!(Cli::try_parse_from(["cascade", "--udp-port", "70000"]).is_err());
}

#[test]
fn webhook_options_are_read_from_every_layer() {
    let config = load_with_env(&cli(&[]), &env(&[])).unwrap();
    assert!(config.webhook_urls.is_empty());
    assert_eq!(config.webhook_key(), DEFAULT_API_SECRET);
    assert_eq!(config.webhook_timeout, Duration::from_secs(5));
    assert_eq!(config.webhook_max_attempts, 5);

    let file = TempToml::new(
        "webhooks",
        r#"
        webhook_urls = ["https://hooks.example/a", "http://10.0.0.1:8080/b?x=1,2"]
        webhook_timeout = "3s"
        webhook_max_attempts = 2
        "#,
    );
    let config = load_with_env(&cli(&["--config", file.arg()]), &env(&[])).unwrap();
    assert_eq!(
        config.webhook_urls,
        ["https://hooks.example/a", "http://10.0.0.1:8080/b?x=1,2"]
    );
    assert_eq!(config.webhook_timeout, Duration::from_secs(3));
    assert_eq!(config.webhook_max_attempts, 2);

    let config = load_with_env(
        &cli(&["--webhook-max-attempts", "9"]),
        &env(&[
            (
                "CASCADE_WEBHOOK_URLS",
                "http://127.0.0.1:9/hook, https://h.example/",
            ),
            (
                "CASCADE_WEBHOOK_SECRET",
                "a-webhook-secret-of-at-least-32-bytes",
            ),
            ("CASCADE_WEBHOOK_TIMEOUT", "750ms"),
            ("CASCADE_WEBHOOK_MAX_ATTEMPTS", "3"),
        ]),
    )
    .unwrap();
    assert_eq!(
        config.webhook_urls,
        ["http://127.0.0.1:9/hook", "https://h.example/"]
    );
    assert_eq!(
        config.webhook_key(),
        "a-webhook-secret-of-at-least-32-bytes"
    );
    assert_eq!(config.webhook_timeout, Duration::from_millis(750));
    assert_eq!(config.webhook_max_attempts, 9, "CLI wins over env");
    assert!(!format!("{config:?}").contains("a-webhook-secret"));
}

#[test]
fn invalid_webhook_options_are_errors() {
    let err =
        |vars: &[(&str, &str)]| format!("{:#}", load_with_env(&cli(&[]), &env(vars)).unwrap_err());
    for bad in ["ftp://h.example/", "not a url", "http://", "/relative/path"] {
        let e = err(&[("CASCADE_WEBHOOK_URLS", bad)]);
        assert!(e.contains("webhook URL"), "{bad}: {e}");
    }
    let e = err(&[("CASCADE_WEBHOOK_SECRET", "short")]);
    assert!(e.contains("webhook_secret"), "{e}");
    let e = err(&[("CASCADE_WEBHOOK_TIMEOUT", "0s")]);
    assert!(e.contains("webhook_timeout"), "{e}");
    let e = err(&[("CASCADE_WEBHOOK_MAX_ATTEMPTS", "0")]);
    assert!(e.contains("webhook_max_attempts"), "{e}");
}

#[test]
fn edge_and_drain_options_are_read_from_every_layer() {
    let toml = "max_connections = 500\nheader_timeout = \"3s\"\ndrain_timeout = \"2m\"\n";
    let file = TempToml::new("edge", toml);
    let config = load_with_env(
        &cli(&["--config", file.arg(), "--body-timeout", "4s"]),
        &env(&[
            ("CASCADE_MAX_CONNECTIONS_PER_IP", "8"),
            ("CASCADE_DRAIN_TIMEOUT", "5s"),
        ]),
    )
    .unwrap();
    assert_eq!(config.max_connections, 500);
    assert_eq!(config.max_connections_per_ip, 8);
    assert_eq!(config.header_timeout, Duration::from_secs(3));
    assert_eq!(config.body_timeout, Duration::from_secs(4));
    assert_eq!(
        config.drain_timeout,
        Duration::from_secs(5),
        "env wins over file"
    );
    let defaults = Config::default();
    assert_eq!(
        (defaults.max_connections, defaults.max_connections_per_ip),
        (10_000, 256)
    );
    for var in ["CASCADE_HEADER_TIMEOUT", "CASCADE_BODY_TIMEOUT"] {
        let e = load_with_env(&cli(&[]), &env(&[(var, "0s")])).unwrap_err();
        assert!(
            format!("{e:#}").contains("_timeout must be"),
            "{var}: {e:#}"
        );
    }
}

#[test]
fn session_rate_limits_are_read_from_every_layer() {
    let file = TempToml::new("rates", "message_rate_limit = 20\ndata_rate_limit = 1000\n");
    let config = load_with_env(&cli(&["--config", file.arg()]), &env(&[])).unwrap();
    assert_eq!(
        (config.message_rate_limit, config.data_rate_limit),
        (20, 1000)
    );
    let config = load_with_env(
        &cli(&["--config", file.arg(), "--data-rate-limit", "0"]),
        &env(&[("CASCADE_MESSAGE_RATE_LIMIT", "7")]),
    )
    .unwrap();
    assert_eq!((config.message_rate_limit, config.data_rate_limit), (7, 0));
    let defaults = Config::default();
    assert_eq!(
        (defaults.message_rate_limit, defaults.data_rate_limit),
        (50, 262_144)
    );
    assert!(load_with_env(&cli(&[]), &env(&[("CASCADE_DATA_RATE_LIMIT", "-1")])).is_err());
}

#[test]
fn webhook_urls_must_be_absolute_http() {
    assert!(parse_webhook_url("http://127.0.0.1:8080/hook").is_ok());
    assert!(parse_webhook_url("https://hooks.example/cascade?k=v").is_ok());
    for bad in ["ftp://h/", "hooks.example/x", "", "http://", "mailto:a@b"] {
        assert!(parse_webhook_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn turn_options_are_read_from_every_layer() {
    let defaults = load_with_env(&cli(&[]), &env(&[])).unwrap();
    assert_eq!(defaults.turn_secret, None);
    assert!(defaults.turn_urls.is_empty());
    assert_eq!(defaults.turn_credential_ttl, Duration::from_secs(24 * 3600));

    let file = TempToml::new(
        "turn",
        r#"
        turn_secret = "file-turn-secret"
        turn_urls = ["turn:t.example:3478?transport=udp", "turns:t.example:5349"]
        turn_credential_ttl = "12h"
        "#,
    );
    let config = load_with_env(&cli(&["--config", file.arg()]), &env(&[])).unwrap();
    assert_eq!(config.turn_secret.as_deref(), Some("file-turn-secret"));
    assert_eq!(
        config.turn_urls,
        ["turn:t.example:3478?transport=udp", "turns:t.example:5349"]
    );
    assert_eq!(config.turn_credential_ttl, Duration::from_secs(12 * 3600));

    let vars = [
        ("CASCADE_TURN_SECRET", "env-turn-secret"),
        ("CASCADE_TURN_URLS", "turn:a.example, turns:b.example"),
        ("CASCADE_TURN_CREDENTIAL_TTL", "90m"),
    ];
    let config = load_with_env(&cli(&["--config", file.arg()]), &env(&vars)).unwrap();
    assert_eq!(config.turn_secret.as_deref(), Some("env-turn-secret"));
    assert_eq!(config.turn_urls, ["turn:a.example", "turns:b.example"]);
    assert_eq!(config.turn_credential_ttl, Duration::from_secs(90 * 60));
    assert!(!format!("{config:?}").contains("env-turn-secret"));

    let flags = [
        "--config",
        file.arg(),
        "--turn-secret",
        "flag-turn-secret",
        "--turn-url",
        "turn:c.example,turn:d.example",
        "--turn-url",
        "turns:e.example",
        "--turn-credential-ttl",
        "1h",
    ];
    let config = load_with_env(&cli(&flags), &env(&vars)).unwrap();
    assert_eq!(config.turn_secret.as_deref(), Some("flag-turn-secret"));
    assert_eq!(
        config.turn_urls,
        ["turn:c.example", "turn:d.example", "turns:e.example"]
    );
    assert_eq!(config.turn_credential_ttl, Duration::from_secs(3600));
    assert!(!format!("{config:?}").contains("flag-turn-secret"));
}

#[test]
fn invalid_turn_options_are_errors() {
    let err =
        |vars: &[(&str, &str)]| format!("{:#}", load_with_env(&cli(&[]), &env(vars)).unwrap_err());
    let e = err(&[("CASCADE_TURN_URLS", "turn:t.example")]);
    assert!(e.contains("turn_secret is not"), "{e}");
    let e = err(&[("CASCADE_TURN_SECRET", "s")]);
    assert!(e.contains("neither turn_urls nor turn is"), "{e}");
    // The embedded server: a secret alone is fine, and so is no secret (one is generated);
    // but external URLs need a secret they can share.
    assert!(load_with_env(&cli(&["--turn"]), &env(&[("CASCADE_TURN_SECRET", "s")])).is_ok());
    assert!(load_with_env(&cli(&["--turn"]), &env(&[])).is_ok());
    let e = format!(
        "{:#}",
        load_with_env(&cli(&["--turn"]), &env(&[("CASCADE_TURN_URLS", "turn:t")])).unwrap_err()
    );
    assert!(e.contains("turn_secret is not"), "{e}");
    let secret = ("CASCADE_TURN_SECRET", "s");
    for bad in ["stun:t.example", "http://t.example", "t.example:3478"] {
        let e = err(&[secret, ("CASCADE_TURN_URLS", bad)]);
        assert!(e.contains("must start with turn: or turns:"), "{bad}: {e}");
    }
    let urls = ("CASCADE_TURN_URLS", "turn:t.example");
    for ttl in ["0s", "8days"] {
        let e = err(&[secret, urls, ("CASCADE_TURN_CREDENTIAL_TTL", ttl)]);
        assert!(e.contains("turn_credential_ttl must be"), "{ttl}: {e}");
    }
    let e = err(&[("CASCADE_TURN_CREDENTIAL_TTL", "soon")]);
    assert!(e.contains("CASCADE_TURN_CREDENTIAL_TTL"), "{e}");
    let file = TempToml::new(
        "empty-turn-secret",
        "turn_secret = \"\"\nturn_urls = [\"turn:t\"]",
    );
    let e = format!(
        "{:#}",
        load_with_env(&cli(&["--config", file.arg()]), &env(&[])).unwrap_err()
    );
    assert!(e.contains("turn_secret must not be empty"), "{e}");
    assert!(
        load_with_env(
            &cli(&[]),
            &env(&[secret, urls, ("CASCADE_TURN_CREDENTIAL_TTL", "7days")])
        )
        .is_ok()
    );
}

#[test]
fn embedded_turn_options_are_read_from_every_layer() {
    let defaults = load_with_env(&cli(&[]), &env(&[])).unwrap();
    assert!(!defaults.turn, "off by default");
    assert_eq!(defaults.turn_udp_port, 3478);
    assert_eq!(defaults.turn_tcp_port, 3478);
    assert_eq!(defaults.turn_tls_port, None);
    assert_eq!(defaults.turn_relay_ip, None);
    assert_eq!(defaults.turn_relay_port_range().unwrap(), None);
    assert_eq!(defaults.turn_max_allocations, 1000);
    assert_eq!(defaults.turn_realm, "cascade");

    let file = TempToml::new(
        "embedded-turn",
        r#"
        turn = true
        turn_udp_port = 3000
        turn_tcp_port = 3001
        turn_tls_port = 5349
        turn_relay_ip = "10.0.0.5"
        turn_relay_ports = "40000-40099"
        turn_max_allocations = 50
        turn_realm = "file.example"
        "#,
    );
    let file_cli = ["--config", file.arg()];
    let config = load_with_env(&cli(&file_cli), &env(&[])).unwrap();
    assert!(config.turn);
    assert_eq!(
        (
            config.turn_udp_port,
            config.turn_tcp_port,
            config.turn_tls_port
        ),
        (3000, 3001, Some(5349))
    );
    assert_eq!(config.turn_relay_ip, Some("10.0.0.5".parse().unwrap()));
    assert_eq!(config.turn_relay_port_range().unwrap(), Some(40000..=40099));
    assert_eq!(config.turn_max_allocations, 50);
    assert_eq!(config.turn_realm, "file.example");

    let vars = [
        ("CASCADE_TURN", "false"),
        ("CASCADE_TURN_UDP_PORT", "4000"),
        ("CASCADE_TURN_TCP_PORT", "4001"),
        ("CASCADE_TURN_TLS_PORT", "4002"),
        ("CASCADE_TURN_RELAY_IP", "10.0.0.6"),
        ("CASCADE_TURN_RELAY_PORTS", "41000-41000"),
        ("CASCADE_TURN_MAX_ALLOCATIONS", "60"),
        ("CASCADE_TURN_REALM", "env.example"),
    ];
    let config = load_with_env(&cli(&file_cli), &env(&vars)).unwrap();
    assert!(!config.turn);
    assert_eq!(
        (
            config.turn_udp_port,
            config.turn_tcp_port,
            config.turn_tls_port
        ),
        (4000, 4001, Some(4002))
    );
    assert_eq!(config.turn_relay_ip, Some("10.0.0.6".parse().unwrap()));
    assert_eq!(config.turn_relay_port_range().unwrap(), Some(41000..=41000));
    assert_eq!(config.turn_max_allocations, 60);
    assert_eq!(config.turn_realm, "env.example");

    let flags = [
        "--config",
        file.arg(),
        "--turn",
        "--turn-udp-port",
        "0",
        "--turn-tcp-port",
        "0",
        "--turn-tls-port",
        "0",
        "--turn-relay-ip",
        "127.0.0.1",
        "--turn-relay-ports",
        "42000-42010",
        "--turn-max-allocations",
        "70",
        "--turn-realm",
        "flag.example",
    ];
    let config = load_with_env(&cli(&flags), &env(&vars)).unwrap();
    assert!(config.turn, "the flag beats CASCADE_TURN=false");
    assert_eq!(
        (
            config.turn_udp_port,
            config.turn_tcp_port,
            config.turn_tls_port
        ),
        (0, 0, Some(0))
    );
    assert_eq!(config.turn_relay_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(config.turn_relay_port_range().unwrap(), Some(42000..=42010));
    assert_eq!(config.turn_max_allocations, 70);
    assert_eq!(config.turn_realm, "flag.example");
    let config = load_with_env(&cli(&["--turn=false"]), &env(&[("CASCADE_TURN", "1")]));
    assert!(config.is_err(), "CASCADE_TURN is a bool: true or false");
    let config = load_with_env(&cli(&["--turn=false"]), &env(&[("CASCADE_TURN", "true")]));
    assert!(!config.unwrap().turn);
}

#[test]
fn invalid_embedded_turn_options_are_errors() {
    let err = |flags: &[&str]| {
        let mut all = vec!["--turn"];
        all.extend_from_slice(flags);
        format!("{:#}", load_with_env(&cli(&all), &env(&[])).unwrap_err())
    };
    for ports in ["", "40000", "40000-", "2-1", "0-10", "a-b", "1-70000"] {
        let e = err(&["--turn-relay-ports", ports]);
        assert!(e.contains("turn_relay_ports"), "{ports}: {e}");
    }
    let e = err(&["--turn-max-allocations", "0"]);
    assert!(e.contains("turn_max_allocations must be at least 1"), "{e}");
    let e = err(&["--turn-realm", ""]);
    assert!(e.contains("turn_realm must not be empty"), "{e}");
    let e = err(&["--turn-relay-ip", "::1"]);
    assert!(e.contains("must be IPv4"), "{e}");
    let e = err(&["--udp-port", "3478"]);
    assert!(e.contains("turn_udp_port and udp_port"), "{e}");
    let e = err(&["--turn-tcp-port", "5349", "--turn-tls-port", "5349"]);
    assert!(e.contains("turn_tls_port and turn_tcp_port"), "{e}");
    // Ephemeral ports never clash.
    let flags = ["--turn", "--udp-port", "0", "--turn-udp-port", "0"];
    assert!(load_with_env(&cli(&flags), &env(&[])).is_ok());
    let e = format!(
        "{:#}",
        load_with_env(&cli(&[]), &env(&[("CASCADE_TURN_UDP_PORT", "x")])).unwrap_err()
    );
    assert!(e.contains("CASCADE_TURN_UDP_PORT"), "{e}");
}

#[test]
fn stun_server_is_read_from_every_layer_and_resolved() {
    let config = load_with_env(&cli(&[]), &env(&[])).unwrap();
    assert_eq!(config.stun_server, None);
    assert_eq!(config.resolve_stun_server().unwrap(), None);

    let file = TempToml::new("stun", "stun_server = \"127.0.0.1:3478\"");
    let config = load_with_env(&cli(&["--config", file.arg()]), &env(&[])).unwrap();
    assert_eq!(config.stun_server.as_deref(), Some("127.0.0.1:3478"));
    let config = load_with_env(
        &cli(&["--config", file.arg()]),
        &env(&[("CASCADE_STUN_SERVER", "localhost:3479")]),
    )
    .unwrap();
    assert_eq!(config.stun_server.as_deref(), Some("localhost:3479"));
    assert_eq!(
        config.resolve_stun_server().unwrap(),
        Some("127.0.0.1:3479".parse().unwrap()),
        "the host is resolved to its IPv4 address"
    );
    let config = load_with_env(
        &cli(&["--stun-server", "192.0.2.1:19302"]),
        &env(&[("CASCADE_STUN_SERVER", "localhost:3479")]),
    )
    .unwrap();
    assert_eq!(
        config.resolve_stun_server().unwrap(),
        Some("192.0.2.1:19302".parse().unwrap())
    );
}

#[test]
fn invalid_stun_server_is_an_error() {
    for bad in [
        "stun.example.org",
        ":3478",
        "host:port",
        "host:70000",
        "stun:host:x",
    ] {
        let e = load_with_env(&cli(&["--stun-server", bad]), &env(&[])).unwrap_err();
        assert!(format!("{e:#}").contains("HOST:PORT"), "{bad}: {e:#}");
    }
    let config = Config {
        stun_server: Some("no-such-host.invalid:3478".into()),
        ..Config::default()
    };
    let e = config.resolve_stun_server().unwrap_err();
    assert!(format!("{e:#}").contains("does not resolve"), "{e:#}");
}

#[test]
fn tls_and_public_url_options_are_read_from_every_layer() {
    let defaults = load_with_env(&cli(&[]), &env(&[])).unwrap();
    assert!(!defaults.tls_enabled());
    assert_eq!(defaults.public_url, None);
    assert_eq!(defaults.tls_handshake_timeout, Duration::from_secs(10));

    let file = TempToml::new(
        "tls",
        "tls_cert = \"/etc/cascade/cert.pem\"\ntls_key = \"/etc/cascade/key.pem\"\n\
         tls_handshake_timeout = \"3s\"\npublic_url = \"https://sfu.example.com\"",
    );
    let config = load_with_env(&cli(&["--config", file.arg()]), &env(&[])).unwrap();
    assert!(config.tls_enabled());
    assert_eq!(
        config.tls_cert,
        Some(PathBuf::from("/etc/cascade/cert.pem"))
    );
    assert_eq!(config.tls_key, Some(PathBuf::from("/etc/cascade/key.pem")));
    assert_eq!(config.tls_handshake_timeout, Duration::from_secs(3));
    assert_eq!(
        config.public_url.as_deref(),
        Some("https://sfu.example.com")
    );

    let config = load_with_env(
        &cli(&["--config", file.arg(), "--tls-handshake-timeout", "5s"]),
        &env(&[
            ("CASCADE_TLS_CERT", "/env/cert.pem"),
            ("CASCADE_TLS_KEY", "/env/key.pem"),
            ("CASCADE_PUBLIC_URL", "https://env.example:8443"),
            ("CASCADE_TLS_HANDSHAKE_TIMEOUT", "7s"),
        ]),
    )
    .unwrap();
    assert_eq!(config.tls_cert, Some(PathBuf::from("/env/cert.pem")));
    assert_eq!(
        config.public_url.as_deref(),
        Some("https://env.example:8443")
    );
    assert_eq!(config.tls_handshake_timeout, Duration::from_secs(5));

    let config = load_with_env(&cli(&[]), &env(&[("CASCADE_TLS_SELF_SIGNED", "true")])).unwrap();
    assert!(config.tls_self_signed && config.tls_enabled());
    let config = load_with_env(&cli(&["--tls-self-signed"]), &env(&[])).unwrap();
    assert!(config.tls_self_signed);
}

#[test]
fn invalid_tls_and_public_url_options_are_errors() {
    let err = |args: &[&str], vars: &[(&str, &str)]| {
        format!("{:#}", load_with_env(&cli(args), &env(vars)).unwrap_err())
    };
    let e = err(&["--tls-cert", "c.pem"], &[]);
    assert!(e.contains("tls_key is not"), "{e}");
    let e = err(&["--tls-key", "k.pem"], &[]);
    assert!(e.contains("tls_cert is not"), "{e}");
    let e = err(
        &[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-self-signed",
        ],
        &[],
    );
    assert!(e.contains("exclude each other"), "{e}");
    let e = err(&["--tls-handshake-timeout", "0s"], &[]);
    assert!(e.contains("tls_handshake_timeout must be"), "{e}");
    let e = err(&[], &[("CASCADE_TLS_SELF_SIGNED", "maybe")]);
    assert!(e.contains("CASCADE_TLS_SELF_SIGNED"), "{e}");
    for bad in [
        "sfu.example.com",
        "ftp://sfu.example.com",
        "https://sfu.example.com/room",
        "https://sfu.example.com/?x=1",
    ] {
        let e = err(&["--public-url", bad], &[]);
        assert!(e.contains("public_url"), "{bad}: {e}");
    }
}

#[test]
fn resume_grace_is_read_from_every_layer() {
    assert_eq!(
        load_with_env(&cli(&[]), &env(&[])).unwrap().resume_grace,
        Duration::from_secs(20)
    );
    let file = TempToml::new("resume", "resume_grace = \"45s\"");
    let config = load_with_env(&cli(&["--config", file.arg()]), &env(&[])).unwrap();
    assert_eq!(config.resume_grace, Duration::from_secs(45));
    let config = load_with_env(
        &cli(&["--config", file.arg()]),
        &env(&[("CASCADE_RESUME_GRACE", "5s")]),
    )
    .unwrap();
    assert_eq!(config.resume_grace, Duration::from_secs(5));
    let config = load_with_env(
        &cli(&["--resume-grace", "0s"]),
        &env(&[("CASCADE_RESUME_GRACE", "5s")]),
    )
    .unwrap();
    assert_eq!(config.resume_grace, Duration::ZERO);
}

#[test]
fn ice_tcp_is_read_from_every_layer_and_its_port_must_be_free_of_the_others() {
    assert!(Config::default().ice_tcp, "on by default");
    let load = |flags: &[&str], vars: &[(&str, &str)]| load_with_env(&cli(flags), &env(vars));
    assert!(!load(&["--ice-tcp=false"], &[]).unwrap().ice_tcp);
    assert!(!load(&[], &[("CASCADE_ICE_TCP", "false")]).unwrap().ice_tcp);
    let file = TempToml::new("ice-tcp", "ice_tcp = false");
    assert!(!load(&["--config", file.arg()], &[]).unwrap().ice_tcp);
    assert!(
        load(&["--config", file.arg(), "--ice-tcp"], &[])
            .unwrap()
            .ice_tcp,
        "the flag wins"
    );
    let err = |flags: &[&str]| format!("{:#}", load(flags, &[]).unwrap_err());
    let e = err(&["--http-addr", "0.0.0.0:7882"]);
    assert!(e.contains("ICE-TCP listens on udp_port"), "{e}");
    let e = err(&[
        "--turn",
        "--turn-udp-port",
        "3479",
        "--turn-tcp-port",
        "7882",
    ]);
    assert!(e.contains("turn_tcp_port and udp_port"), "{e}");
    let e = err(&["--turn", "--turn-tls-port", "7882"]);
    assert!(e.contains("turn_tls_port and udp_port"), "{e}");
    // Without ICE-TCP the media port is UDP only: the same TCP number is free for others.
    let flags = ["--ice-tcp=false", "--http-addr", "0.0.0.0:7882"];
    assert!(load(&flags, &[]).is_ok());
}
