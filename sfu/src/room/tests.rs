//! The room model without sockets or workers: peers are made by a [`PeerFactory`] whose
//! mailboxes record the commands the room sends them.

use std::sync::Mutex;

use cascade_signaling::protocol::Permissions;

use super::*;
use crate::engine::peer::TrackInfo as EngineTrackInfo;
use crate::negotiation::remote::SectionKind;
use crate::seam::{Mailbox, PeerAddress, PeerCommand, PeerId};

/// Every command sent to any peer: (peer, what).
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<(PeerId, String)>>);

impl Mailbox for Recorder {
    fn send(&self, peer: PeerId, cmd: PeerCommand, _wait: bool) -> bool {
        let what = match cmd {
            PeerCommand::Subscribe(t) => format!("subscribe {}", t.id),
            PeerCommand::Unsubscribe(id) => format!("unsubscribe {id}"),
            PeerCommand::Close => "close".to_owned(),
            PeerCommand::RequestKeyframe(id) => format!("keyframe {id}"),
            other => format!("{other:?}"),
        };
        self.0.lock().unwrap().push((peer, what));
        true
    }
}

/// Peers numbered from 1, all on worker 0, recorded by one [`Recorder`].
#[derive(Default)]
struct FakePeers {
    next: Mutex<PeerId>,
    mailbox: Arc<Recorder>,
}

impl PeerFactory for FakePeers {
    fn create_peer(
        &self,
        _participant: &str,
        _events: mpsc::Sender<PeerEvent>,
    ) -> Result<PeerHandle, crate::MediaError> {
        let mut next = self.next.lock().unwrap();
        *next += 1;
        Ok(PeerHandle {
            peer: PeerAddress::new(*next, 0, self.mailbox.clone()),
        })
    }
}

struct Member {
    joined: Joined,
    outbox: mpsc::Receiver<ParticipantSignal>,
    _events: mpsc::Receiver<PeerEvent>,
}

impl Member {
    /// The messages sent to the member so far, by type.
    fn messages(&mut self) -> Vec<&'static str> {
        std::iter::from_fn(|| self.outbox.try_recv().ok())
            .filter_map(|s| match s {
                ParticipantSignal::Send(m) => Some(m.kind()),
                _ => None,
            })
            .collect()
    }
}

fn rooms() -> (Rooms, Arc<Recorder>) {
    let peers = Arc::new(FakePeers::default());
    let recorder = peers.mailbox.clone();
    let config = RoomConfig {
        max_participants: 0,
        empty_timeout: Duration::from_secs(30),
    };
    (Rooms::new(peers, config), recorder)
}

fn join(rooms: &Rooms, identity: &str) -> Member {
    let (outbox_tx, outbox) = mpsc::channel(SESSION_QUEUE);
    let (events_tx, events) = mpsc::channel(8);
    let joined = rooms
        .join(JoinRequest {
            room: "r".into(),
            identity: identity.into(),
            permissions: Permissions {
                can_publish: true,
                can_subscribe: true,
                can_publish_data: true,
            },
            auto_subscribe: true,
            kind: ParticipantKind::Websocket,
            outbox: outbox_tx,
            peer_events: events_tx,
        })
        .unwrap();
    Member {
        joined,
        outbox,
        _events: events,
    }
}

fn video_track(publisher: &Member) -> Arc<PublishedTrack> {
    Arc::new(PublishedTrack::new(
        new_id("TR"),
        publisher.joined.participant.clone(),
        TrackKind::Video,
        "video/VP8".into(),
        Some("1".into()),
        publisher.joined.peer.peer.clone(),
        EngineTrackInfo {
            kind: SectionKind::Video,
            codecs: Vec::new(),
            extensions: Vec::new(),
        },
    ))
}

fn commands(recorder: &Recorder) -> Vec<(PeerId, String)> {
    std::mem::take(&mut *recorder.0.lock().unwrap())
}

#[test]
fn peer_events_publish_subscribe_and_unpublish_through_the_room() {
    let (rooms, recorder) = rooms();
    let mut alice = join(&rooms, "alice");
    let mut bob = join(&rooms, "bob");
    let (a, b) = (alice.joined.peer.peer.id, bob.joined.peer.peer.id);
    alice.messages();
    bob.messages();

    let track = video_track(&alice);
    let published = Some(PeerEvent::TrackPublished(track.clone()));
    assert_eq!(
        rooms.apply_peer_event("r", &alice.joined.participant, published),
        Ok(())
    );
    assert_eq!(
        commands(&recorder),
        [(b, format!("subscribe {}", track.id))],
        "bob (auto-subscribe) receives it, alice does not"
    );
    assert_eq!(alice.messages(), ["track_published"]);
    assert!(bob.messages().contains(&"track_published"));
    assert_eq!(rooms.tracks("r").len(), 1);

    let ended = Some(PeerEvent::TrackUnpublished(track.id.clone()));
    assert_eq!(
        rooms.apply_peer_event("r", &alice.joined.participant, ended),
        Ok(())
    );
    assert_eq!(
        commands(&recorder),
        [(b, format!("unsubscribe {}", track.id))]
    );
    assert!(bob.messages().contains(&"track_unpublished"));
    assert!(rooms.tracks("r").is_empty());

    let closed = Some(PeerEvent::Closed("DTLS closed".into()));
    assert_eq!(
        rooms.apply_peer_event("r", &alice.joined.participant, closed),
        Err("DTLS closed".to_owned())
    );
    assert!(
        rooms
            .apply_peer_event("r", &bob.joined.participant, None)
            .is_err()
    );
    rooms.leave("r", &alice.joined.participant, "left");
    assert_eq!(commands(&recorder), [(a, "close".to_owned())]);
    assert!(bob.messages().contains(&"participant_left"));
}

#[test]
fn a_track_of_one_who_left_is_ignored_and_keyframe_requests_reach_its_publisher_throttled() {
    let (rooms, recorder) = rooms();
    let alice = join(&rooms, "alice");
    let _bob = join(&rooms, "bob");
    let track = video_track(&alice);
    // A track of someone who left the room is ignored.
    rooms.leave("r", &alice.joined.participant, "left");
    commands(&recorder);
    let late = Some(PeerEvent::TrackPublished(track.clone()));
    assert_eq!(
        rooms.apply_peer_event("r", &alice.joined.participant, late),
        Ok(())
    );
    assert!(rooms.tracks("r").is_empty());
    assert!(commands(&recorder).is_empty(), "nobody subscribed to it");
    // Keyframe requests go to the publisher's mailbox, throttled.
    let now = Instant::now();
    track.request_keyframe(now);
    track.request_keyframe(now);
    assert_eq!(
        commands(&recorder),
        [(alice.joined.peer.peer.id, format!("keyframe {}", track.id))]
    );
}
