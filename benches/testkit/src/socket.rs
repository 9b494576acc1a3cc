//! The signaling WebSocket: one writer task (with an optional keepalive), one reader task that
//! keeps every server message in an [`Inbox`] and hands offers, answers, candidates and refused
//! offers to the negotiator.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cascade_signaling::protocol::{ClientMessage, IceCandidate, ServerMessage};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::util::Watched;

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server `error` message, or (code `client_error`) a failure on the client's side.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorMsg {
    /// The error code (`unauthorized`, `room_full`, ...), or `client_error`.
    pub code: String,
    /// The explanation.
    pub message: String,
    /// The echoed `ref`, if any.
    pub reference: Option<Value>,
    /// The whole message (`Value::Null` for a client-side failure).
    pub raw: Value,
}

impl ErrorMsg {
    /// Code of client-side failures (timeouts, closed connection, webrtc errors).
    pub const CLIENT_ERROR: &'static str = "client_error";

    /// Reads a server `error` message; `None` if `msg` is not one.
    pub fn from_message(msg: &Value) -> Option<Self> {
        (msg["type"] == "error").then(|| Self {
            code: msg["code"].as_str().unwrap_or_default().to_owned(),
            message: msg["message"].as_str().unwrap_or_default().to_owned(),
            reference: msg.get("ref").filter(|r| !r.is_null()).cloned(),
            raw: msg.clone(),
        })
    }

    /// Wraps a client-side failure.
    pub fn client(err: anyhow::Error) -> Self {
        Self {
            code: Self::CLIENT_ERROR.to_owned(),
            message: format!("{err:#}"),
            reference: None,
            raw: Value::Null,
        }
    }

    /// Whether this came from the server (not a client-side failure).
    pub fn is_server_error(&self) -> bool {
        self.code != Self::CLIENT_ERROR
    }
}

impl fmt::Display for ErrorMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorMsg {}

/// How the WebSocket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// Close code of the server's close frame; `None` if the stream ended without one.
    pub code: Option<u16>,
    /// Close reason, or a description of how the stream ended.
    pub reason: String,
}

/// Server signaling the negotiator acts on.
pub(crate) enum Signal {
    /// A server offer and its `tracks` (mid -> Cascade track id).
    Offer {
        sdp: String,
        tracks: BTreeMap<String, String>,
    },
    /// The server's answer to the client's offer.
    Answer(String),
    /// A trickled server candidate.
    Candidate(IceCandidate),
    /// An `error` answering one of the client's offers (matched by a `ref` `offer-…`).
    OfferRejected(ErrorMsg),
}

impl Signal {
    /// The signal a server message carries, if any.
    fn of(value: &Value) -> Option<Self> {
        match serde_json::from_value(value.clone()).ok()? {
            ServerMessage::Offer { sdp, tracks } => Some(Self::Offer { sdp, tracks }),
            ServerMessage::Answer { sdp } => Some(Self::Answer(sdp)),
            ServerMessage::Candidate { candidate } => Some(Self::Candidate(candidate)),
            ServerMessage::Error {
                reference: Some(Value::String(r)),
                ..
            } if r.starts_with("offer-") => ErrorMsg::from_message(value).map(Self::OfferRejected),
            _ => None,
        }
    }
}

#[derive(Default)]
struct MessageState {
    pending: VecDeque<Value>,
    history: Vec<Value>,
    closed: Option<CloseInfo>,
}

/// Every server message received, and how the WebSocket ended.
#[derive(Default)]
pub(crate) struct Inbox(Watched<MessageState>);

impl Inbox {
    fn push(&self, value: Value) {
        self.0.update(|m| {
            m.history.push(value.clone());
            m.pending.push_back(value);
        });
    }

    fn set_closed(&self, info: CloseInfo) {
        self.0.update(|m| {
            m.closed.get_or_insert(info);
        });
    }

    /// Takes the first buffered or future message matching `pred`; fails on timeout, or once
    /// the WebSocket is closed and no buffered message matches.
    pub(crate) async fn next(
        &self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value> {
        let what = |m: &MessageState| {
            let types: Vec<_> = m.pending.iter().map(|v| v["type"].to_string()).collect();
            format!("a matching server message (unmatched buffered: {types:?})")
        };
        let check = |m: &mut MessageState| {
            if let Some(i) = m.pending.iter().position(&pred) {
                return Ok(m.pending.remove(i));
            }
            if let Some(c) = &m.closed {
                bail!("WebSocket closed ({c:?}) before a matching message arrived");
            }
            Ok(None)
        };
        self.0.wait(timeout, what, check).await
    }

    /// Waits until the WebSocket is closed (or broken).
    pub(crate) async fn wait_closed(&self, timeout: Duration) -> Result<CloseInfo> {
        let what = |_: &MessageState| "the WebSocket to close".to_owned();
        let check = |m: &mut MessageState| Ok(m.closed.clone());
        self.0.wait(timeout, what, check).await
    }

    /// Every message so far, in order.
    pub(crate) fn history(&self) -> Vec<Value> {
        self.0.lock().history.clone()
    }

    /// Messages not taken yet.
    pub(crate) fn pending(&self) -> Vec<Value> {
        self.0.lock().pending.iter().cloned().collect()
    }

    /// How the WebSocket ended, if it has.
    pub(crate) fn closed(&self) -> Option<CloseInfo> {
        self.0.lock().closed.clone()
    }
}

/// An open signaling WebSocket.
pub(crate) struct Socket {
    out: mpsc::UnboundedSender<Message>,
    tasks: [JoinHandle<()>; 2],
}

impl Socket {
    /// Connects to `url`; server messages go to `inbox`, signaling to `signals`. With
    /// `keepalive`, a `ping` is sent at that period (the first right away).
    pub(crate) async fn connect(
        url: &str,
        timeout: Duration,
        keepalive: Option<Duration>,
        inbox: Arc<Inbox>,
        signals: impl Fn(Signal) + Send + 'static,
    ) -> Result<Self> {
        let (ws, _response) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url))
            .await
            .with_context(|| format!("timed out connecting to {url}"))?
            .with_context(|| format!("WebSocket connect to {url}"))?;
        let (sink, stream) = ws.split();
        let (out, rx) = mpsc::unbounded_channel();
        let tasks = [
            tokio::spawn(write(sink, rx, keepalive)),
            tokio::spawn(read(stream, inbox, signals)),
        ];
        Ok(Self { out, tasks })
    }

    /// Queues a frame.
    pub(crate) fn send(&self, msg: Message) -> Result<()> {
        self.out
            .send(msg)
            .map_err(|_| anyhow!("WebSocket writer is gone"))
    }

    /// Queues a client message, with `reference` as its `ref` if given.
    pub(crate) fn send_message(&self, msg: &ClientMessage, reference: Option<&str>) -> Result<()> {
        let mut value = serde_json::to_value(msg).expect("client messages serialize");
        if let Some(r) = reference {
            value["ref"] = r.into();
        }
        self.send(Message::text(value.to_string()))
    }

    /// Stops reading and writing; the TCP connection just ends.
    pub(crate) fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.abort();
    }
}

/// Reads server frames: keeps every message and forwards signaling.
async fn read(
    mut stream: SplitStream<WsStream>,
    inbox: Arc<Inbox>,
    signals: impl Fn(Signal) + Send,
) {
    let closed = loop {
        let value = match stream.next().await {
            Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str())
                .unwrap_or_else(|_| json!({"type": "<not json>", "raw": text.as_str()})),
            Some(Ok(Message::Binary(b))) => json!({"type": "<binary>", "len": b.len()}),
            Some(Ok(Message::Close(frame))) => {
                break CloseInfo {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                };
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                break CloseInfo {
                    code: None,
                    reason: format!("WebSocket error: {e}"),
                };
            }
            None => {
                break CloseInfo {
                    code: None,
                    reason: "WebSocket stream ended without a close frame".to_owned(),
                };
            }
        };
        if let Some(signal) = Signal::of(&value) {
            signals(signal);
        }
        inbox.push(value);
    };
    inbox.set_closed(closed);
}

/// Writes queued frames (and keepalive pings) to the WebSocket.
async fn write(
    mut sink: SplitSink<WsStream, Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    keepalive: Option<Duration>,
) {
    let mut ping = keepalive.map(tokio::time::interval);
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => return,
            },
            _ = async { ping.as_mut().expect("keepalive").tick().await }, if ping.is_some() => {
                Message::text(serde_json::to_string(&ClientMessage::Ping).expect("serializes"))
            }
        };
        let close = matches!(msg, Message::Close(_));
        if sink.send(msg).await.is_err() || close {
            return;
        }
    }
}
