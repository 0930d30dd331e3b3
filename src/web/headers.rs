//! Security headers. Every response says `nosniff` (a browser never guesses a type, so an
//! uploaded archive or a JSON answer is never run as a page) and keeps its URL from other
//! sites (`Referrer-Policy: same-origin`). The admin pages also refuse to be framed (against
//! clickjacking of their forms), are never cached (a shared machine's back button shows no
//! queue), and may load nothing but their own inline styles and post only to baler itself.
//! `web::server` puts these around every response, including 404s and timeouts.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, X_FRAME_OPTIONS};
use axum::http::{HeaderValue, Uri};
use axum::response::Response;

/// `X-Content-Type-Options` on every response.
pub const NOSNIFF: &str = "nosniff";
/// `Referrer-Policy` on every response.
pub const SAME_ORIGIN: &str = "same-origin";

/// What the admin templates (`templates/admin-*.html`) use: inline `<style>` blocks (base and
/// admin-style), forms that post to baler, `<meta http-equiv="refresh">` (which no directive
/// governs), links (navigation is not governed either). No script, font, image or frame;
/// `img-src 'self'` only lets the browser fetch the icon (`/favicon.svg`).
pub const ADMIN_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `/admin` and everything under it.
pub fn is_admin(path: &str) -> bool {
    path.strip_prefix("/admin")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `axum::middleware::map_response`: the admin pages' headers, decided by the path.
pub async fn admin_pages(uri: Uri, mut response: Response) -> Response {
    if is_admin(uri.path()) {
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(ADMIN_POLICY),
        );
        // For browsers that predate `frame-ancestors`.
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// True when an `If-None-Match` value lists `etag` (or is `*`): the client has these bytes.
/// Weak tags (`W/"…"`) compare by their value, as `If-None-Match` does.
pub fn lists_etag(value: &HeaderValue, etag: &str) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    value.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// The request's `If-Modified-Since`, when it holds a date.
pub fn if_modified_since(headers: &axum::http::HeaderMap) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = headers
        .get(axum::http::header::IF_MODIFIED_SINCE)?
        .to_str()
        .ok()?;
    Some(httpdate::parse_http_date(text).ok()?.into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn admin_is_a_path_segment() {
        for path in ["/admin", "/admin/", "/admin/queue", "/admin/login"] {
            assert!(super::is_admin(path), "{path}");
        }
        for path in ["/", "/administrator", "/projects/admin", "/api/v1/queue"] {
            assert!(!super::is_admin(path), "{path}");
        }
    }
}
