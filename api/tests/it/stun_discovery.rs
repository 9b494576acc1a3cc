//! `stun_server`: at start-up the server asks a STUN server (here a local responder claiming a
//! TEST-NET-3 address, never contacted) for its media port's public address and advertises it
//! beside its own, with its self-check (what the address is, and whether a datagram sent to it
//! comes back to the media socket); a STUN server that never answers delays start-up by a
//! bounded time only.

use crate::server;

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use cascade_sfu::stun_discovery::Assessment;
use rtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter};
use rtc::stun::xoraddr::XorMappedAddress;
use server::viewer_token;
use server::whip::{HttpPeer, RTCRtpTransceiverDirection, create};

/// The public address the responder claims the server has.
const MAPPED: &str = "203.0.113.7:40000";
/// How long the responder answers.
const RESPONDER_LIFETIME: Duration = Duration::from_secs(30);

/// A STUN responder on loopback answering every binding request with [`MAPPED`], for
/// [`RESPONDER_LIFETIME`]; its address.
fn stun_responder() -> SocketAddr {
    responder(Some(MAPPED.parse().unwrap()))
}

/// A STUN responder on loopback answering every binding request with `mapped`, or with the
/// request's real source address when `None` (as a real STUN server does), for
/// [`RESPONDER_LIFETIME`]; its address.
fn responder(mapped: Option<SocketAddr>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let started = Instant::now();
        let mut buf = [0u8; 1500];
        while started.elapsed() < RESPONDER_LIFETIME {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let mut request = Message::new();
            if request.unmarshal_binary(&buf[..n]).is_err() || request.typ != BINDING_REQUEST {
                continue;
            }
            let mapped = mapped.unwrap_or(from);
            let mut response = Message::new();
            response.transaction_id = request.transaction_id;
            let setters: Vec<Box<dyn Setter>> = vec![
                Box::new(BINDING_SUCCESS),
                Box::new(XorMappedAddress {
                    ip: mapped.ip(),
                    port: mapped.port(),
                }),
            ];
            response.build(&setters).unwrap();
            socket.send_to(&response.raw, from).unwrap();
        }
    });
    addr
}

/// The server's SDP answer to a WHEP viewer's offer.
async fn whep_answer(srv: &cascade_api::server::ServerHandle) -> Result<String> {
    let base = format!("http://{}", srv.http_addr);
    let viewer = HttpPeer::new(RTCRtpTransceiverDirection::Recvonly).await?;
    let token = viewer_token("stun", "viewer");
    Ok(
        create(&base, "/whep/stun", &token, viewer.offer(false).await?)
            .await?
            .answer,
    )
}

/// Whether `sdp` has a UDP host candidate for `addr`.
fn has_candidate(sdp: &str, addr: SocketAddr) -> bool {
    sdp.lines().any(|l| {
        let Some(rest) = l.strip_prefix("a=candidate:") else {
            return false;
        };
        // foundation component transport priority address port typ host
        let f: Vec<&str> = rest.split_whitespace().collect();
        f.len() >= 8
            && f[2].eq_ignore_ascii_case("udp")
            && f[4] == addr.ip().to_string()
            && f[5] == addr.port().to_string()
            && f[7] == "host"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mapped_address_is_advertised_beside_the_local_one() -> Result<()> {
    let stun = stun_responder();
    let srv = server::start_with(|c| c.stun_server = Some(stun.to_string())).await;
    let answer = whep_answer(&srv).await?;
    assert!(has_candidate(&answer, MAPPED.parse()?), "{answer}");
    let local = SocketAddr::new("127.0.0.1".parse()?, srv.udp_addr().port());
    assert!(has_candidate(&answer, local), "{answer}");
    let report = srv.state.media().stun_report().expect("a report");
    assert_eq!(report.mapped, MAPPED.parse::<SocketAddr>()?);
    assert_eq!(
        report.assessment,
        Assessment::PortChanged,
        "40000 is not the media port"
    );
    assert!(
        !report.reaches_socket,
        "203.0.113.7 is not reachable from the namespace"
    );
    srv.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_check_sees_a_mapped_address_that_reaches_the_media_socket() -> Result<()> {
    // A real STUN server's answer on loopback: the media socket's own address, which is not
    // among the advertised ones here, so the server checks and advertises it.
    let stun = responder(None);
    let srv = server::start_with(|c| {
        c.stun_server = Some(stun.to_string());
        c.public_ips = vec!["192.0.2.1".parse().unwrap()];
    })
    .await;
    let own = SocketAddr::new("127.0.0.1".parse()?, srv.udp_addr().port());
    let report = srv.state.media().stun_report().expect("a report");
    assert_eq!(report.mapped, own);
    assert_eq!(
        report.assessment,
        Assessment::NotPublic,
        "loopback is not public"
    );
    assert!(
        report.reaches_socket,
        "the probe came back to the media socket"
    );
    let answer = whep_answer(&srv).await?;
    assert!(has_candidate(&answer, own), "{answer}");
    srv.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stun_server_delays_start_up_a_bounded_time() -> Result<()> {
    let silent = UdpSocket::bind("127.0.0.1:0")?;
    let stun = silent.local_addr()?;
    let started = Instant::now();
    let srv = server::start_with(|c| c.stun_server = Some(stun.to_string())).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "started after {took:?}");
    let answer = whep_answer(&srv).await?;
    assert!(!has_candidate(&answer, MAPPED.parse()?), "{answer}");
    let local = SocketAddr::new("127.0.0.1".parse()?, srv.udp_addr().port());
    assert!(has_candidate(&answer, local), "{answer}");
    drop(silent);
    srv.shutdown().await;
    Ok(())
}
