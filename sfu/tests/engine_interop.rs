//! Cascade's own engine against stacks it did not write: an aiortc publisher sends camera-like
//! video and audio through an [`EngineServer`] (real UDP on loopback: ICE-lite, DTLS, SRTP, the
//! router), and an aiortc viewer and a Chromium page must decode its frames. aiortc uses the
//! WHIP/WHEP client of the browser tests (`web-demo/tests/aiortc_client.py`), Chromium
//! `web-demo/tests/whep_viewer_page.mjs`; a minimal HTTP front here hands their offers to the
//! engine. Chromium also publishes and receives VP8, VP9 and H.264 in turn
//! (`web-demo/tests/engine_codecs_page.mjs`), each decoded in that codec, and VP8 in three
//! simulcast layers without signaled SSRCs (the first layer is forwarded).
//!
//! A GStreamer webrtcbin (libnice) publisher (`web-demo/tests/gst_whip_client.py`) is decoded
//! by an aiortc viewer the same way; libnice ignores loopback interfaces, so that test gives
//! the namespace 127.0.0.2 on a veth for the engine (and removes it).
//!
//! Needs aiortc: `CASCADE_PYTHON`, else `target/ci-venv/bin/python` (made by `.ci/run`), and
//! Debian's python3 with GStreamer. Run as root in a network namespace with only loopback
//! (`.ci/run` does): `unshare -n bash -c 'ip link set lo up; cargo test -p cascade-sfu --test
//! engine_interop'`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cascade_sfu::engine::udp_server::EngineServer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let path = std::env::var_os("CASCADE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/ci-venv/bin/python"));
    assert!(
        path.exists(),
        "{path:?} not found: run .ci/run's install step or set CASCADE_PYTHON"
    );
    path
}

/// Reads one HTTP request: method, path and body.
fn read_request(stream: &mut TcpStream) -> Option<(String, String, String)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut length = 0;
    for _ in 0..100 {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, String::from_utf8(body).ok()?))
}

/// WHIP/WHEP as far as the aiortc client needs it: POST an offer (the answer, a resource),
/// PATCH candidates (ICE-lite needs none: 204), DELETE the resource (the peer leaves).
fn serve(engine: &EngineServer, stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Some((method, path, body)) = read_request(stream) else {
        return;
    };
    let resource = |path: &str| path.strip_prefix("/resource/")?.parse::<usize>().ok();
    let (status, headers, body) = match method.as_str() {
        "POST" if path.starts_with("/whip/") || path.starts_with("/whep/") => {
            match engine.join(&body) {
                Ok((peer, answer)) => (
                    "201 Created",
                    format!(
                        "Location: /resource/{peer}\r\nETag: \"1\"\r\nContent-Type: application/sdp\r\n"
                    ),
                    answer,
                ),
                Err(e) => ("400 Bad Request", String::new(), e),
            }
        }
        "PATCH" if resource(&path).is_some() => ("204 No Content", String::new(), String::new()),
        // A page of this origin for the Chromium viewer (a secure context on 127.0.0.1).
        "GET" if path == "/blank" => (
            "200 OK",
            "Content-Type: text/html\r\n".to_owned(),
            "<!doctype html><title>blank</title>".to_owned(),
        ),
        "DELETE" => match resource(&path) {
            Some(peer) => {
                engine.leave(peer);
                ("200 OK", String::new(), String::new())
            }
            None => ("404 Not Found", String::new(), String::new()),
        },
        _ => ("404 Not Found", String::new(), String::new()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// Serves HTTP for `engine` until `stop` is set.
fn http_front(engine: Arc<EngineServer>, listener: TcpListener, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                serve(&engine, &mut stream);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn aiortc(mode: &str, base: &str, extra: &[&str]) -> Child {
    let client = root().join("web-demo/tests/aiortc_client.py");
    let mut args = vec![mode, base, "token", "--room", "interop"];
    args.extend_from_slice(extra);
    spawn(&python(), &client, &args)
}

fn spawn(program: &std::path::Path, script: &std::path::Path, args: &[&str]) -> Child {
    Command::new(program)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client started")
}

/// Forwards a child's stdout lines to a channel, from a thread that ends with it.
fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let mut out = BufReader::new(child.stdout.take().expect("stdout piped"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while out.read_line(&mut line).is_ok_and(|n| n > 0) {
            let _ = tx.send(std::mem::take(&mut line));
        }
    });
    rx
}

/// Waits (bounded) for a publisher's `{"event": "connected"}` line.
fn wait_connected(lines: &std::sync::mpsc::Receiver<String>, publisher: Child, who: &str) -> Child {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(l) if l.contains("\"connected\"") => return publisher,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let (_, stderr) = finish(publisher, Duration::ZERO);
    panic!("the {who} publisher did not connect to the engine:\n{stderr}");
}

/// A new engine on `udp` behind an HTTP front: the front's base URL, its stop flag and its
/// thread (which owns the engine).
fn engine_with_front(udp: SocketAddr) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let engine = Arc::new(EngineServer::start(udp).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let front = {
        let stop = stop.clone();
        std::thread::spawn(move || http_front(engine, listener, stop))
    };
    (base, stop, front)
}

/// Checks a viewer's result line: ok, at least `video` and `audio` frames of 320x240.
fn check_viewer(lines: &[serde_json::Value], stderr: &str, video: u64, audio: u64) {
    let result = lines
        .last()
        .unwrap_or_else(|| panic!("no result from the viewer:\n{stderr}"));
    assert_eq!(result["ok"], true, "viewer: {result}\n{stderr}");
    assert!(
        result["video_frames"].as_u64().unwrap() >= video,
        "{result}"
    );
    assert!(
        result["audio_frames"].as_u64().unwrap() >= audio,
        "{result}"
    );
    assert_eq!(
        result["video_sizes"],
        serde_json::json!([[320, 240]]),
        "{result}"
    );
    assert_eq!(result["delete_status"], 200);
}

/// The JSON lines a client printed, once it exits (killed after `timeout`).
fn finish(mut child: Child, timeout: Duration) -> (Vec<serde_json::Value>, String) {
    let deadline = Instant::now() + timeout;
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("client output");
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (lines, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn aiortc_publishes_through_the_engine_and_aiortc_and_chromium_viewers_decode() {
    let (base, stop, front) = engine_with_front(SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut publisher = aiortc("publish", &base, &["--seconds", "60"]);
    let lines = lines_of(&mut publisher);
    let mut publisher = wait_connected(&lines, publisher, "aiortc");

    let viewer = aiortc(
        "view",
        &base,
        &["--seconds", "20", "--min-video", "30", "--min-audio", "30"],
    );
    let (viewed, stderr) = finish(viewer, Duration::from_secs(40));
    let chromium = Command::new("node")
        .current_dir(root().join("web-demo"))
        .args(["tests/whep_viewer_page.mjs", &base, "interop", "30", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node started");
    let (in_chromium, chromium_stderr) = finish(chromium, Duration::from_secs(60));
    drop(publisher.stdin.take()); // the publisher ends its session and exits
    let (_, pub_stderr) = finish(publisher, Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    front.join().unwrap();

    check_viewer(&viewed, &stderr, 30, 30);
    let page = in_chromium
        .last()
        .unwrap_or_else(|| panic!("no result from Chromium:\n{chromium_stderr}"));
    assert_eq!(page["ok"], true, "Chromium: {page}\n{chromium_stderr}");
    assert_eq!(page["width"], 320, "{page}");
    assert_eq!(page["height"], 240, "{page}");
    assert!(page["audioPackets"].as_u64().unwrap_or(0) > 0, "{page}");
    let published: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let published = published.last().expect("the publisher's result");
    assert_eq!(
        published["ok"], true,
        "publisher: {published}\n{pub_stderr}"
    );
    assert_eq!(published["delete_status"], 200);
}

/// 127.0.0.2 on a veth, for libnice (which ignores loopback interfaces); removed when dropped.
struct LibniceAddress;

impl LibniceAddress {
    fn add() -> Self {
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().expect("ip");
            assert!(
                status.success(),
                "ip {args:?} failed: run as root in a fresh network namespace"
            );
        };
        let links = Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .expect("ip");
        let links = String::from_utf8_lossy(&links.stdout);
        assert_eq!(
            links.lines().count(),
            1,
            "run in a network namespace with only lo: {links}"
        );
        ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        let added = Self;
        ip(&["link", "set", "v1", "up"]);
        ip(&["addr", "add", "127.0.0.2/32", "dev", "v0"]);
        ip(&["link", "set", "v0", "up"]);
        added
    }
}

impl Drop for LibniceAddress {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", "v0"]).status();
    }
}

#[test]
fn a_gstreamer_webrtcbin_publisher_through_the_engine_is_decoded_by_aiortc() {
    let _address = LibniceAddress::add();
    let (base, stop, front) = engine_with_front(SocketAddr::from(([127, 0, 0, 2], 0)));
    let client = root().join("web-demo/tests/gst_whip_client.py");
    let mut publisher = spawn(
        std::path::Path::new("/usr/bin/python3"),
        &client,
        &[&base, "token", "--room", "interop", "--seconds", "60"],
    );
    let lines = lines_of(&mut publisher);
    let mut publisher = wait_connected(&lines, publisher, "GStreamer");

    let viewer = aiortc(
        "view",
        &base,
        &["--seconds", "20", "--min-video", "30", "--min-audio", "0"],
    );
    let (viewed, stderr) = finish(viewer, Duration::from_secs(40));
    drop(publisher.stdin.take());
    let (_, pub_stderr) = finish(publisher, Duration::from_secs(15));
    stop.store(true, Ordering::Relaxed);
    front.join().unwrap();

    check_viewer(&viewed, &stderr, 30, 0);
    let published: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let published = published.last().expect("the publisher's result");
    assert_eq!(
        published["ok"], true,
        "publisher: {published}\n{pub_stderr}"
    );
}

#[test]
fn chromium_sends_and_receives_vp8_vp9_h264_and_simulcast_through_the_engine() {
    let (base, stop, front) = engine_with_front(SocketAddr::from(([127, 0, 0, 1], 0)));
    let page = Command::new("node")
        .current_dir(root().join("web-demo"))
        .args([
            "tests/engine_codecs_page.mjs",
            &base,
            "30",
            "20",
            "VP8",
            "VP9",
            "H264",
            "VP8-simulcast",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node started");
    let (lines, stderr) = finish(page, Duration::from_secs(120));
    stop.store(true, Ordering::Relaxed);
    front.join().unwrap();
    for codec in ["VP8", "VP9", "H264", "VP8-simulcast"] {
        let result = lines
            .iter()
            .find(|l| l["codec"] == codec)
            .unwrap_or_else(|| panic!("no result for {codec}: {lines:?}\n{stderr}"));
        assert_eq!(result["ok"], true, "{result}\n{stderr}");
    }
}
