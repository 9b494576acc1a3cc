//! Command line and presets: what load to put on the server.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::media::Media;

/// Development API key of a server run without configuration.
const DEV_API_KEY: &str = "devkey";
/// Development API secret of a server run without configuration.
const DEV_API_SECRET: &str = "devsecret-cascade-development-only-0123456789";

/// Usual scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// A few audio-only speakers who hear each other, many listeners.
    AudioRoom,
    /// N participants, each publishing audio and video and receiving everyone else.
    Conference,
    /// One publisher (audio and video) to N receive-only viewers.
    Livestream,
}

/// Signaling transport of the synthetic clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Cascade's WebSocket JSON protocol.
    Ws,
    /// WHIP publishers and WHEP viewers (livestream shape: one publisher per room, viewers
    /// that do not publish).
    Whip,
}

/// `cascade-load`: drives a running Cascade server with synthetic publishers and subscribers
/// and reports forwarding rate, loss, jitter, latency, join times and the server's CPU time
/// per forwarded packet.
#[derive(Debug, Parser)]
#[command(name = "cascade-load", version)]
pub struct Args {
    /// WebSocket URL of the server.
    #[arg(long, default_value = "ws://127.0.0.1:7880/ws")]
    pub url: String,
    /// Scenario preset; explicit flags override its values.
    #[arg(long)]
    pub preset: Option<Preset>,
    /// Rooms, each with the same publishers and subscribers [default: 1].
    #[arg(long)]
    pub rooms: Option<u32>,
    /// Publishing participants per room [default: 1; audio-room 3; conference 4].
    #[arg(long)]
    pub publishers: Option<u32>,
    /// Receive-only participants per room [default: 10; audio-room 20; conference 0].
    #[arg(long)]
    pub subscribers: Option<u32>,
    /// Video bitrate per publisher in kbit/s, 0 = no video [default: 1000; audio-room 0].
    #[arg(long, value_name = "KBPS")]
    pub video_bitrate: Option<u32>,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Publish Opus-sized audio at 50 packets/s (on by default).
    #[arg(long, overrides_with = "no_audio")]
    pub audio: bool,
    /// Publish no audio.
    #[arg(long, overrides_with = "audio")]
    pub no_audio: bool,
    /// Length of the measurement window in seconds [default: 10; --quick 3].
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Pid of the server, to sample its CPU time and RSS from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the report as JSON on stdout (the table then goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// A short smoke run: 3 s window, short warm-up, 1 publisher and 2 subscribers unless
    /// given.
    #[arg(long)]
    pub quick: bool,
    /// Participants joining at the same time during the ramp-up.
    #[arg(long, default_value_t = 8)]
    pub join_concurrency: usize,
    /// Signaling transport.
    #[arg(long, value_enum, default_value = "ws")]
    pub transport: Transport,
    /// API key the tokens are issued by.
    #[arg(long, default_value = DEV_API_KEY)]
    pub api_key: String,
    /// API secret the tokens are signed with.
    #[arg(long, default_value = DEV_API_SECRET)]
    pub api_secret: String,
    /// Churn soak instead of a measurement run: for this many seconds, participants keep
    /// joining, publishing or subscribing and leaving over WebSocket and WHIP/WHEP; the server's
    /// RSS, fds, threads, rooms, participants and tracks are compared between the idle point
    /// after the warm-up and the end (needs --server-pid). Exits non-zero on growth.
    #[arg(long, value_name = "SECONDS")]
    pub soak: Option<u64>,
    /// Soak: participants present at once (WebSocket publishers and subscribers, WHIP
    /// publishers, WHEP viewers in turn).
    #[arg(long, default_value_t = 8)]
    pub soak_population: usize,
    /// Soak: mean time a participant stays, in milliseconds.
    #[arg(long, default_value_t = 4000)]
    pub soak_lifetime_ms: u64,
    /// Soak: churn before the baseline is taken, in seconds.
    #[arg(long, default_value_t = 60)]
    pub soak_warmup: u64,
    /// Soak: allowed RSS growth from the baseline to the end, percent.
    #[arg(long, default_value_t = 5.0)]
    pub soak_max_rss_growth_pct: f64,
}

/// The resolved load: presets and defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// The preset, if any.
    pub preset: Option<Preset>,
    /// Rooms.
    pub rooms: u32,
    /// Publishers per room.
    pub publishers: u32,
    /// Receive-only participants per room.
    pub subscribers: u32,
    /// Whether publishers also receive the other publishers (conference, audio room).
    pub publishers_receive: bool,
    /// Whether publishers send audio.
    pub audio: bool,
    /// Video bitrate in kbit/s (0 = no video).
    pub video_kbps: u32,
    /// Video frames per second.
    pub fps: u32,
    /// Measurement window.
    #[serde(serialize_with = "secs")]
    pub window: Duration,
    /// Settling time between the end of the ramp-up and the window.
    #[serde(serialize_with = "secs")]
    pub warmup: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Scenario {
    /// Applies the preset and the defaults to `args`.
    pub fn from_args(args: &Args) -> anyhow::Result<Self> {
        anyhow::ensure!(args.fps > 0, "--fps must be positive");
        // (publishers, subscribers, publishers receive, video kbps)
        let (p, s, receive, kbps) = match args.preset {
            Some(Preset::AudioRoom) => (3, 20, true, 0),
            Some(Preset::Conference) => (4, 0, true, 1000),
            Some(Preset::Livestream) => (1, 10, false, 1000),
            None if args.quick => (1, 2, false, 1000),
            None => (1, 10, false, 1000),
        };
        let scenario = Self {
            preset: args.preset,
            rooms: args.rooms.unwrap_or(1),
            publishers: args.publishers.unwrap_or(p),
            subscribers: args.subscribers.unwrap_or(s),
            publishers_receive: receive,
            audio: !args.no_audio,
            video_kbps: args.video_bitrate.unwrap_or(kbps),
            fps: args.fps,
            window: Duration::from_secs(args.seconds.unwrap_or(if args.quick { 3 } else { 10 })),
            warmup: Duration::from_millis(if args.quick { 500 } else { 2000 }),
        };
        anyhow::ensure!(
            scenario.rooms > 0 && scenario.publishers > 0,
            "need at least one room and one publisher"
        );
        anyhow::ensure!(
            scenario.audio || scenario.video_kbps > 0,
            "nothing to publish: no audio and no video"
        );
        anyhow::ensure!(
            scenario.receivers_per_room() > 0,
            "nobody receives: add subscribers"
        );
        anyhow::ensure!(
            args.transport == Transport::Ws
                || (scenario.publishers == 1 && !scenario.publishers_receive),
            "--transport whip needs one publisher per room and receive-only viewers (WHEP \
             viewers get one audio and one video stream)"
        );
        Ok(scenario)
    }

    /// What each publisher sends.
    pub fn media(&self) -> Vec<Media> {
        let mut media = vec![];
        if self.audio {
            media.push(Media::Audio);
        }
        if self.video_kbps > 0 {
            media.push(Media::Video {
                kbps: self.video_kbps,
                fps: self.fps,
            });
        }
        media
    }

    /// Tracks each publisher sends.
    pub fn tracks_per_publisher(&self) -> u32 {
        u32::from(self.audio) + u32::from(self.video_kbps > 0)
    }

    /// Participants per room that receive media.
    pub fn receivers_per_room(&self) -> u32 {
        self.subscribers
            + if self.publishers_receive {
                self.publishers
            } else {
                0
            }
    }

    /// Streams a receiver gets: every publisher's tracks, minus its own if it publishes.
    pub fn streams_per_receiver(&self, publishes: bool) -> u32 {
        (self.publishers - u32::from(publishes)) * self.tracks_per_publisher()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(argv: &[&str]) -> Scenario {
        let mut all = vec!["cascade-load"];
        all.extend_from_slice(argv);
        Scenario::from_args(&Args::parse_from(all)).unwrap()
    }

    #[test]
    fn presets_and_overrides() {
        let s = scenario(&["--preset", "livestream", "--subscribers", "50"]);
        assert_eq!(
            (s.publishers, s.subscribers, s.publishers_receive),
            (1, 50, false)
        );
        assert_eq!(s.streams_per_receiver(false), 2);
        let c = scenario(&["--preset", "conference", "--publishers", "5"]);
        assert_eq!(c.receivers_per_room(), 5);
        assert_eq!(c.streams_per_receiver(true), 8);
        let a = scenario(&["--preset", "audio-room", "--no-audio", "--audio"]);
        assert_eq!(
            (a.audio, a.video_kbps, a.tracks_per_publisher()),
            (true, 0, 1)
        );
        let q = scenario(&["--quick"]);
        assert_eq!((q.subscribers, q.window.as_secs()), (2, 3));
    }
}
