//! The browser pages and scripts of `web-demo/`, compiled into the binary: the demo at `/`, and
//! the client library at `/cascade-client.js` and at the versioned, immutable
//! `/lib/<version>/cascade-client.js`, with its modules beside it (`client/*.js`, imported
//! relatively). Every file is served with
//! `Access-Control-Allow-Origin: *`, so that an application's page on another origin can import
//! the library from the Cascade server.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// The versioned path prefix of the files, e.g. `/lib/0.1.0/`.
pub fn lib_prefix() -> String {
    format!("/lib/{}/", env!("CARGO_PKG_VERSION"))
}

/// The embedded files.
#[derive(rust_embed::RustEmbed)]
#[folder = "../web-demo/"]
#[exclude = "tests/*"]
#[exclude = "node_modules/*"]
#[exclude = "package*.json"]
#[exclude = "tsconfig.json"]
#[exclude = "test-results/*"]
struct Assets;

/// Any path the routes do not claim: the file of that name (`/` is `index.html`), revalidated
/// on every use (it changes with the server's version).
pub async fn file(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    serve(path, "no-cache")
}

/// `/lib/<version>/<path>`: the file of this version, cacheable for good; another version is a
/// 404 that says which one this server has.
pub async fn versioned(Path((version, path)): Path<(String, String)>) -> Response {
    if version != env!("CARGO_PKG_VERSION") {
        let message = format!(
            "this server serves version {} of its files, at {}",
            env!("CARGO_PKG_VERSION"),
            lib_prefix()
        );
        return with_cors((StatusCode::NOT_FOUND, message).into_response());
    }
    serve(&path, "public, max-age=31536000, immutable")
}

/// The embedded file at `path` with `cache_control`, or a 404.
fn serve(path: &str, cache_control: &'static str) -> Response {
    let response = match Assets::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            (
                [
                    (header::CONTENT_TYPE, mime.as_ref().to_owned()),
                    (header::CACHE_CONTROL, cache_control.to_owned()),
                ],
                file.data.into_owned(),
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    with_cors(response)
}

/// Adds `Access-Control-Allow-Origin: *` to `response`.
pub fn with_cors(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
