//! Request and response bodies of the room API, validation of names, and pagination.

use std::borrow::Cow;

use base64::Engine as _;
use cascade_sfu::room::{ParticipantKind, ParticipantSummary, RoomSummary};
use cascade_signaling::names;
use cascade_signaling::protocol::{Permissions, TrackInfo, TrackKind};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;

/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest page.
pub const MAX_PAGE: u32 = 1000;
/// Longest `empty_timeout_secs` of a room (7 days).
pub const MAX_EMPTY_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
/// Most identities a data message may be addressed to.
pub const MAX_DATA_IDENTITIES: usize = 1000;
/// Longest token lifetime (30 days).
pub const MAX_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;
/// Token lifetime when `ttl_secs` is not given (6 hours).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 6 * 3600;

/// Checks a room name, identity or track id against the name rule
/// ([`cascade_signaling::names`]): 400 `invalid_name`.
pub fn validate_name(what: &str, value: &str) -> Result<(), ApiError> {
    Ok(names::validate(what, value)?)
}

/// A room: the room model's [`RoomSummary`], documented as the `Room` schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RoomBody(pub RoomSummary);

impl From<RoomSummary> for RoomBody {
    fn from(room: RoomSummary) -> Self {
        Self(room)
    }
}

impl ToSchema for RoomBody {
    fn name() -> Cow<'static, str> {
        "Room".into()
    }
}

impl utoipa::PartialSchema for RoomBody {
    fn schema() -> RefOr<Schema> {
        use KnownFormat::{Int32, Int64};
        let fields = [
            ("name", None, "Room name."),
            (
                "num_participants",
                Some(Int32),
                "Participants now in the room.",
            ),
            ("num_tracks", Some(Int32), "Tracks now published."),
            (
                "max_participants",
                Some(Int32),
                "Most participants; 0 = unlimited.",
            ),
            (
                "empty_timeout_secs",
                Some(Int64),
                "Seconds the room lives once empty.",
            ),
            (
                "created_at",
                Some(Int64),
                "Creation time, seconds since the Unix epoch.",
            ),
        ];
        let room = ObjectBuilder::new().description(Some("A room."));
        let room = fields
            .into_iter()
            .fold(room, |room, (name, format, description)| {
                let field = match format {
                    None => ObjectBuilder::new().schema_type(Type::String),
                    Some(format) => ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(format)))
                        .minimum(Some(0)),
                };
                room.property(name, field.description(Some(description)))
                    .required(name)
            });
        room.into()
    }
}

/// A page of rooms, sorted by name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoomList {
    /// The rooms of this page.
    pub rooms: Vec<RoomBody>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /api/rooms`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    /// Room name: 1 to 128 bytes of UTF-8, no control characters, no whitespace at either end,
    /// not `.` or `..` (docs/rest.md, Names).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"
    )]
    pub name: String,
    /// Most participants; 0 = unlimited. Default: the server's `max_participants`.
    pub max_participants: Option<u32>,
    /// Seconds the room lives once empty, at most 604800. Default: the server's
    /// `room_empty_timeout`.
    #[schema(minimum = 0, maximum = 604800)]
    pub empty_timeout_secs: Option<u64>,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = TrackKind)]
pub enum Kind {
    /// An audio track.
    Audio,
    /// A video track.
    Video,
}

/// A published track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Track)]
pub struct TrackBody {
    /// Server-assigned id (`TR_…`).
    pub id: String,
    /// Id of the publishing participant.
    pub participant: String,
    /// Audio or video.
    pub kind: Kind,
    /// Codec mime type, e.g. `video/VP8`; null until known.
    pub codec: Option<String>,
    /// Whether the track is muted (by its publisher or an administrator).
    pub muted: bool,
}

impl From<TrackInfo> for TrackBody {
    fn from(t: TrackInfo) -> Self {
        Self {
            id: t.id,
            participant: t.participant,
            kind: match t.kind {
                TrackKind::Audio => Kind::Audio,
                TrackKind::Video => Kind::Video,
            },
            codec: t.codec,
            muted: t.muted,
        }
    }
}

/// How a participant is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ParticipantKind)]
pub enum Connection {
    /// The WebSocket signaling protocol.
    Websocket,
    /// A WHIP publisher.
    Whip,
    /// A WHEP viewer.
    Whep,
}

/// What a participant may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Permissions)]
pub struct PermissionsBody {
    /// May publish tracks.
    pub can_publish: bool,
    /// May subscribe to tracks.
    pub can_subscribe: bool,
    /// May send data messages.
    pub can_publish_data: bool,
}

impl From<Permissions> for PermissionsBody {
    fn from(p: Permissions) -> Self {
        Self {
            can_publish: p.can_publish,
            can_subscribe: p.can_subscribe,
            can_publish_data: p.can_publish_data,
        }
    }
}

/// A participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Participant)]
pub struct ParticipantBody {
    /// Server-assigned id (`PA_…`).
    pub id: String,
    /// Identity from its token (unique in the room).
    pub identity: String,
    /// How it is connected.
    pub kind: Connection,
    /// What it may do.
    pub permissions: PermissionsBody,
    /// Its published tracks.
    pub tracks: Vec<TrackBody>,
    /// Join time, seconds since the Unix epoch.
    pub joined_at: u64,
}

impl From<ParticipantSummary> for ParticipantBody {
    fn from(p: ParticipantSummary) -> Self {
        Self {
            id: p.id,
            identity: p.identity,
            kind: match p.kind {
                ParticipantKind::Websocket => Connection::Websocket,
                ParticipantKind::Whip => Connection::Whip,
                ParticipantKind::Whep => Connection::Whep,
            },
            permissions: p.permissions.into(),
            tracks: p.tracks.into_iter().map(Into::into).collect(),
            joined_at: p.joined_at,
        }
    }
}

/// A page of participants, sorted by identity.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ParticipantList {
    /// The participants of this page.
    pub participants: Vec<ParticipantBody>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `PATCH /api/rooms/{room}/participants/{identity}`: the fields to change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateParticipant {
    /// Permissions to change; absent flags keep their value.
    pub permissions: Option<PermissionsPatch>,
}

/// A partial set of permissions.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionsPatch {
    /// May publish tracks; revoking it unpublishes the participant's tracks.
    pub can_publish: Option<bool>,
    /// May subscribe to tracks; revoking it ends its subscriptions.
    pub can_subscribe: Option<bool>,
    /// May send data messages.
    pub can_publish_data: Option<bool>,
}

impl PermissionsPatch {
    /// `current` with this patch applied.
    pub fn apply(&self, current: Permissions) -> Permissions {
        Permissions {
            can_publish: self.can_publish.unwrap_or(current.can_publish),
            can_subscribe: self.can_subscribe.unwrap_or(current.can_subscribe),
            can_publish_data: self.can_publish_data.unwrap_or(current.can_publish_data),
        }
    }
}

/// `PATCH /api/rooms/{room}/participants/{identity}/tracks/{track}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTrack {
    /// Mute (stop forwarding; the publisher cannot unmute it) or unmute the track.
    pub muted: bool,
}

/// `POST /api/rooms/{room}/data`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendData {
    /// Any JSON value; participants receive it as `data {participant: "server", identity:
    /// "server", payload}`.
    pub payload: serde_json::Value,
    /// Only these identities (absent or empty: everyone in the room); at most 1000.
    #[serde(default)]
    #[schema(value_type = IdentityList, inline)]
    pub identities: Vec<String>,
}

/// The schema of [`SendData::identities`]: at most 1000 identities under the name rule.
struct IdentityList;

impl utoipa::PartialSchema for IdentityList {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::ArrayBuilder;
        ArrayBuilder::new()
            .items(super::params::name_schema())
            .max_items(Some(MAX_DATA_IDENTITIES))
            .into()
    }
}

impl ToSchema for IdentityList {}

/// The result of `POST /api/rooms/{room}/data`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DataSent {
    /// How many participants it was sent to.
    pub recipients: u32,
}

/// `POST /api/tokens`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The room the token is for: 1 to 128 bytes of UTF-8, no control characters, no
    /// whitespace at either end, not `.` or `..` (docs/rest.md, Names). May be empty only for
    /// an admin token (`room_admin: true`) of every room, which needs full access to mint.
    #[schema(
        max_length = 128,
        pattern = r"^$|^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"
    )]
    pub room: String,
    /// The participant identity (`sub`): 1 to 128 bytes of UTF-8, no control characters, no
    /// whitespace at either end, not `.` or `..` (docs/rest.md, Names).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"
    )]
    pub identity: String,
    /// Lifetime in seconds, 1 to 2592000 (30 days); default 21600 (6 hours).
    #[schema(minimum = 1, maximum = 2592000)]
    pub ttl_secs: Option<u64>,
    /// What the token allows; absent flags take their defaults.
    #[serde(default)]
    pub grants: GrantsPatch,
}

/// Token grants; absent flags take their defaults.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantsPatch {
    /// May join the room (default true).
    pub room_join: Option<bool>,
    /// May publish media (default true).
    pub can_publish: Option<bool>,
    /// May subscribe to media (default true).
    pub can_subscribe: Option<bool>,
    /// May send data messages (default true).
    pub can_publish_data: Option<bool>,
    /// May administer the room through this API (default false).
    pub room_admin: Option<bool>,
}

/// A minted token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenBody {
    /// The access token (HS256 JWT).
    pub token: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
}

/// A development token (`GET /api/dev/token`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DevTokenBody {
    /// The access token (HS256 JWT).
    pub token: String,
}

/// What a page needs to know of the server (`GET /api/info`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServerInfoBody {
    /// The server's version.
    pub version: String,
    /// The URL users reach the server at (`public_url`), for invite links; `null` when not
    /// configured (then a page's own origin is the best guess).
    pub public_url: Option<String>,
    /// Whether `GET /api/dev/token` hands out tokens (the built-in development secret is in
    /// use); when false, pages need a token from the application's backend.
    pub dev_tokens: bool,
}

/// `?limit=&cursor=` of list endpoints.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Most items to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone)]
pub struct Page {
    /// Most items.
    pub limit: usize,
    /// Items sort after this key.
    pub after: Option<String>,
}

impl PageQuery {
    /// Checks the limit and decodes the cursor.
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::invalid(format!("limit must be 1 to {MAX_PAGE}")));
        }
        let after = match &self.cursor {
            None => None,
            Some(c) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| ApiError::invalid("cursor is not one this server issued"))?,
            ),
        };
        Ok(Page {
            limit: limit as usize,
            after,
        })
    }
}

/// One page of `items` (sorted by `key`, ascending, keys unique), as bodies, and the next
/// cursor.
pub fn paginate<T, B: From<T>>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> &str,
    page: &Page,
) -> (Vec<B>, Option<String>) {
    items.sort_by(|a, b| key(a).cmp(key(b)));
    let start = match &page.after {
        Some(after) => items.partition_point(|t| key(t) <= after.as_str()),
        None => 0,
    };
    let mut rest: Vec<T> = items.drain(start..).collect();
    let more = rest.len() > page.limit;
    rest.truncate(page.limit);
    let next = more.then(|| rest.last().map(|t| cursor(key(t)))).flatten();
    (rest.into_iter().map(B::from).collect(), next)
}

fn cursor(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_invalid_name() {
        assert!(validate_name("room", "a").is_ok());
        let e = validate_name("room", "a\nb").unwrap_err();
        assert_eq!((e.status.as_u16(), &*e.code), (400, "invalid_name"));
    }

    #[test]
    fn pages_walk_everything_once() {
        let items: Vec<String> = (0..25).map(|i| format!("r{i:02}")).rev().collect();
        let mut seen: Vec<String> = Vec::new();
        let mut q = PageQuery {
            limit: Some(10),
            cursor: None,
        };
        loop {
            let page = q.page().unwrap();
            let (got, next) = paginate(items.clone(), |s| s.as_str(), &page);
            seen.extend(got);
            match next {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        let mut want = items.clone();
        want.sort();
        assert_eq!(seen, want);
        // An exactly full last page has no next cursor.
        let page = PageQuery {
            limit: Some(25),
            cursor: None,
        }
        .page()
        .unwrap();
        let (_, next): (Vec<String>, _) = paginate(items, |s| s.as_str(), &page);
        assert!(next.is_none());
    }

    #[test]
    fn bad_pages() {
        for q in [
            PageQuery {
                limit: Some(0),
                cursor: None,
            },
            PageQuery {
                limit: Some(1001),
                cursor: None,
            },
            PageQuery {
                limit: None,
                cursor: Some("!!".into()),
            },
        ] {
            assert!(q.page().is_err());
        }
    }
}
