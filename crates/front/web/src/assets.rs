//! The web phone's files (`web/` at the repository root), compiled into the binary and
//! served on the HTTP port: the phone page at `/` (with its `app.js` and `app.css`), the JS
//! SDK at `/switchboard.js`, the VideoIO shim at `/videoio.js` and its example page at
//! `/examples/videoio-phone.html`. Nothing is read from disk at run time.
//!
//! Every response carries an `ETag` (answered with `304` on `If-None-Match`) and
//! `Cache-Control: no-cache`, so browsers revalidate and pick up a new binary's files at
//! once. The two scripts other sites may load (`switchboard.js`, `videoio.js`) are served
//! with `Access-Control-Allow-Origin: *`: loading them is harmless, and the `/phone`
//! WebSocket still checks the page's `Origin` (docs/web-api.md §7).

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The phone page's policy: its own scripts and styles only, WebSockets to any server (the
/// sign-in form can name another one), no framing by other sites.
const PHONE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; \
    frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Where it is served.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
    /// Other sites may load it (`Access-Control-Allow-Origin: *`).
    pub cross_origin: bool,
    /// A `Content-Security-Policy`, for pages.
    pub csp: Option<&'static str>,
}

/// Every file, in the order of `web/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        body: include_str!("../../../../web/index.html"),
        cross_origin: false,
        csp: Some(PHONE_CSP),
    },
    Asset {
        path: "/index.html",
        content_type: HTML,
        body: include_str!("../../../../web/index.html"),
        cross_origin: false,
        csp: Some(PHONE_CSP),
    },
    Asset {
        path: "/app.js",
        content_type: JS,
        body: include_str!("../../../../web/app.js"),
        cross_origin: false,
        csp: None,
    },
    Asset {
        path: "/app.css",
        content_type: CSS,
        body: include_str!("../../../../web/app.css"),
        cross_origin: false,
        csp: None,
    },
    Asset {
        path: "/switchboard.js",
        content_type: JS,
        body: include_str!("../../../../web/switchboard.js"),
        cross_origin: true,
        csp: None,
    },
    Asset {
        path: "/videoio.js",
        content_type: JS,
        body: include_str!("../../../../web/videoio.js"),
        cross_origin: true,
        csp: None,
    },
    Asset {
        // A Flash-era page: inline scripts and onclick handlers, so no CSP.
        path: "/examples/videoio-phone.html",
        content_type: HTML,
        body: include_str!("../../../../web/examples/videoio-phone.html"),
        cross_origin: false,
        csp: None,
    },
];

/// The router serving [`ASSETS`] (GET and HEAD).
pub fn router() -> Router {
    let mut router = Router::new();
    for asset in ASSETS {
        let etag = etag(asset.body);
        router = router.route(
            asset.path,
            get(move |headers: HeaderMap| {
                let etag = etag.clone();
                async move { respond(asset, &etag, &headers) }
            }),
        );
    }
    router
}

/// A strong validator from the content (64-bit FNV-1a).
fn etag(body: &str) -> HeaderValue {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    HeaderValue::from_str(&format!("\"{h:016x}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn respond(asset: &Asset, etag: &HeaderValue, request: &HeaderMap) -> Response {
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/").as_bytes() == etag.as_bytes()
        });
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if asset.cross_origin {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Some(csp) = asset.csp {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
    }
    (StatusCode::OK, headers, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn asset(path: &str) -> &'static Asset {
        ASSETS
            .iter()
            .find(|a| a.path == path)
            .unwrap_or_else(|| panic!("no asset {path}"))
    }

    #[test]
    fn every_file_is_there_with_its_type() {
        for (path, ty, needle) in [
            ("/", HTML, "<title>Switchboard Phone</title>"),
            ("/app.js", JS, "from './switchboard.js'"),
            ("/app.css", CSS, ".keypad"),
            ("/switchboard.js", JS, "export class Phone"),
            ("/videoio.js", JS, "onCreationComplete"),
            ("/examples/videoio-phone.html", HTML, "src=\"/videoio.js\""),
        ] {
            let a = asset(path);
            assert_eq!(a.content_type, ty, "{path}");
            assert!(a.body.contains(needle), "{path} lacks {needle}");
        }
    }

    #[test]
    fn etag_follows_content() {
        assert_eq!(etag("a"), etag("a"));
        assert_ne!(etag("a"), etag("b"));
        let v = etag(asset("/").body);
        let s = v.to_str().unwrap_or_default();
        assert!(
            s.starts_with('"') && s.ends_with('"') && s.len() == 18,
            "{s}"
        );
    }

    #[test]
    fn responses_carry_type_validator_and_policy() {
        let a = asset("/");
        let tag = etag(a.body);
        let r = respond(a, &tag, &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(h[header::CONTENT_TYPE], HTML);
        assert_eq!(h[header::ETAG], tag);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));

        let sdk = asset("/switchboard.js");
        let r = respond(sdk, &etag(sdk.body), &HeaderMap::new());
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(!r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }

    #[test]
    fn if_none_match_gets_304() {
        let a = asset("/videoio.js");
        let tag = etag(a.body);
        let mut req = HeaderMap::new();
        req.insert(header::IF_NONE_MATCH, tag.clone());
        assert_eq!(respond(a, &tag, &req).status(), StatusCode::NOT_MODIFIED);
        req.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"other\", W/\"x\""),
        );
        assert_eq!(respond(a, &tag, &req).status(), StatusCode::OK);
        let weak = HeaderValue::from_str(&format!("\"x\", W/{}", tag.to_str().unwrap_or_default()))
            .unwrap_or(HeaderValue::from_static(""));
        req.insert(header::IF_NONE_MATCH, weak);
        assert_eq!(respond(a, &tag, &req).status(), StatusCode::NOT_MODIFIED);
    }

    /// Through a real listener: routes, HEAD, and 404 for anything else.
    #[tokio::test]
    async fn served_over_http() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router()).await;
        });
        let get = |req: String| async move {
            let mut s = tokio::net::TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}"));
            s.write_all(req.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("write: {e}"));
            let mut out = String::new();
            s.read_to_string(&mut out)
                .await
                .unwrap_or_else(|e| panic!("read: {e}"));
            out
        };
        let req = |method: &str, path: &str| {
            format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        };
        let r = get(req("GET", "/examples/videoio-phone.html")).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.to_ascii_lowercase().contains("content-type: text/html"));
        assert!(r.ends_with(asset("/examples/videoio-phone.html").body));
        let r = get(req("HEAD", "/switchboard.js")).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(
            r.to_ascii_lowercase()
                .contains("content-type: text/javascript")
        );
        assert!(!r.contains("export class Phone"));
        let r = get(req("GET", "/nope.js")).await;
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    }
}
