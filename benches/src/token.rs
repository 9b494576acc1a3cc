//! Access tokens minted locally: HS256 JWTs with Cascade's claims (docs/protocol.md §6).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// Token lifetime: long enough for any run.
const TTL_SECS: u64 = 6 * 3600;

/// The `video` grants.
#[derive(Serialize)]
struct Grants<'a> {
    room: &'a str,
    room_join: bool,
    can_publish: bool,
    can_subscribe: bool,
    can_publish_data: bool,
}

/// The claims Cascade verifies.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    video: Grants<'a>,
}

/// Signs tokens with one API key and secret.
pub struct Minter {
    key: String,
    secret: EncodingKey,
}

impl Minter {
    /// A minter for tokens issued by `key` and signed with `secret`.
    pub fn new(key: &str, secret: &str) -> Self {
        Self {
            key: key.to_owned(),
            secret: EncodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// A token for `identity` in `room`; `publish` grants publishing.
    pub fn mint(&self, room: &str, identity: &str, publish: bool) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims = Claims {
            iss: &self.key,
            sub: identity,
            exp: now + TTL_SECS,
            nbf: now,
            iat: now,
            video: Grants {
                room,
                room_join: true,
                can_publish: publish,
                can_subscribe: true,
                can_publish_data: false,
            },
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.secret,
        )?)
    }
}
