//! The console's static files, embedded in the binary and served under their content hash
//! (`/assets/<first 16 hex digits of SHA-256>/<name>`) with a year-long, immutable cache: a new
//! build with a changed file has a new URL, so a browser never keeps a stale copy.
//!
//! Vendored: htmx 2 (`htmx.min.js`), Apache ECharts' "common" build (`echarts.common.min.js`: the
//! usual charts with legends, tooltips and zooming) and Pico CSS's classless stylesheet, each from
//! its npm package, with their
//! licences in `assets/licenses/`. `console.css` and `console.js` are the console's own.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    hash: String,
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        (
            $name,
            $type,
            include_bytes!(concat!("../../assets/", $name)) as &[u8],
        )
    };
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        asset!("htmx.min.js", "text/javascript; charset=utf-8"),
        asset!("echarts.common.min.js", "text/javascript; charset=utf-8"),
        asset!("console.js", "text/javascript; charset=utf-8"),
        asset!("pico.classless.min.css", "text/css; charset=utf-8"),
        asset!("console.css", "text/css; charset=utf-8"),
    ]
    .into_iter()
    .map(|(name, content_type, bytes)| Asset {
        name,
        content_type,
        bytes,
        hash: hex::encode(&Sha256::digest(bytes)[..8]),
    })
    .collect()
});

/// The URL of an embedded asset by its file name.
pub fn asset_url(name: &str) -> String {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => format!("/assets/{}/{}", a.hash, a.name),
        None => format!("/assets/missing/{name}"),
    }
}

/// `GET /assets/{hash}/{name}`: the file when the hash is its own, else 404 (an old page asking
/// for a file this build no longer has).
pub async fn serve(Path((hash, name)): Path<(String, String)>) -> Response {
    match ASSETS.iter().find(|a| a.name == name && a.hash == hash) {
        Some(a) => super::with_headers(
            a.bytes.into_response(),
            a.content_type,
            "public, max-age=31536000, immutable",
        ),
        None => crate::routes::ops::not_found().await.into_response(),
    }
}
