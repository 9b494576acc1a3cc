//! An HTTP client of a test server's endpoints (room API, drain, WHIP/WHEP, development
//! tokens), its credentials, and checks of the tokens the server mints.

use std::time::SystemTime;

use base64::Engine as _;
use cascade_api::auth;
use cascade_api::server::ServerHandle;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{KEY, SECRET, token_with};

/// How a request authenticates.
#[derive(Clone)]
pub enum Cred {
    /// No `Authorization` header.
    None,
    /// Basic API key and secret.
    Basic(String, String),
    /// A bearer token.
    Bearer(String),
    /// The raw `Authorization` header value.
    Raw(String),
}

/// The test servers' API key and secret, as Basic credentials.
pub fn basic() -> Cred {
    Cred::Basic(KEY.into(), SECRET.into())
}

/// The test servers' `key:secret` in standard base64, as in a Basic `Authorization` header.
pub fn basic_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}"))
}

/// An admin token of identity "admin" for `room`; `room` empty = every room.
pub fn admin_token(room: &str) -> String {
    token_with(room, "admin", |g| g.room_admin = true)
}

/// [`admin_token`] as a bearer credential.
pub fn admin(room: &str) -> Cred {
    Cred::Bearer(admin_token(room))
}

/// A response: status, raw body, the body as JSON (Null if none or not JSON), and headers.
pub struct Res {
    /// The status.
    pub status: StatusCode,
    /// The body as JSON, Null if empty or not JSON.
    pub body: Value,
    /// The body as text.
    pub text: String,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Res {
    /// The `error.code` of an error body, `<none>` if absent.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<none>")
    }

    /// Asserts an error response of the documented shape: `status`, `code` and a message.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "body: {}",
            self.body
        );
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "message in {}",
            self.body
        );
    }

    /// Asserts that a non-empty body is JSON (as every room API response is); returns `self`.
    #[track_caller]
    pub fn assert_json(self) -> Self {
        if !self.text.is_empty() {
            let ct = self
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(
                ct.starts_with("application/json"),
                "{}: content type {ct:?} of {:?}",
                self.status,
                self.text
            );
        }
        self
    }

    /// Asserts `status`; returns the JSON body.
    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }
}

/// Starts a test server ([`super::start`]) and a client of it.
pub async fn serve() -> (ServerHandle, Api) {
    let srv = super::start().await;
    let api = Api::new(&srv);
    (srv, api)
}

/// A client of one test server.
pub struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    /// A client of `srv`.
    pub fn new(srv: &ServerHandle) -> Self {
        Self {
            base: format!("http://{}", srv.http_addr),
            client: reqwest::Client::new(),
        }
    }

    /// Sends a request with an optional content type and body; any response is returned.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        cred: &Cred,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Res {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        req = match cred {
            Cred::None => req,
            Cred::Basic(u, p) => req.basic_auth(u, Some(p)),
            Cred::Bearer(t) => req.bearer_auth(t),
            Cred::Raw(v) => req.header("authorization", v),
        };
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        Res {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            headers,
        }
    }

    /// [`Api::request`] with a JSON body, if any.
    pub async fn request_json(
        &self,
        method: Method,
        path: &str,
        cred: &Cred,
        body: Option<Value>,
    ) -> Res {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        let ct = bytes.as_ref().map(|_| "application/json");
        self.request(method, path, cred, ct, bytes).await
    }

    /// A room API request with a JSON body, if any: [`Api::request_json`], and
    /// [`Res::assert_json`].
    pub async fn call(&self, method: Method, path: &str, cred: &Cred, body: Option<Value>) -> Res {
        self.request_json(method, path, cred, body)
            .await
            .assert_json()
    }

    /// A room API `GET`.
    pub async fn get(&self, path: &str, cred: &Cred) -> Res {
        self.call(Method::GET, path, cred, None).await
    }

    /// The bodies of the pages of a listing, from `first` (a path ending in a query) on,
    /// following `next_cursor`; each page must be 200. At most 100 pages.
    pub async fn pages(&self, first: &str, cred: &Cred) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut path = first.to_owned();
        while pages.len() < 100 {
            let page = self.get(&path, cred).await.ok(200).clone();
            let next = page["next_cursor"].as_str().map(str::to_owned);
            pages.push(page);
            match next {
                Some(c) => path = format!("{first}&cursor={c}"),
                None => return pages,
            }
        }
        panic!("more than 100 pages of {first}");
    }
}

/// Asserts that `token` verifies with `key` and `secret`, names `identity` in `room`, and
/// grants subscribing but not publishing.
#[track_caller]
pub fn assert_subscribe_only_token(
    token: &str,
    key: &str,
    secret: &str,
    identity: &str,
    room: &str,
) {
    let claims = auth::verify(token, key, secret, SystemTime::now()).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.video.room.as_str()),
        (identity, room)
    );
    assert!(!claims.video.can_publish && claims.video.can_subscribe);
}
