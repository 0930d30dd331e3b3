//! One error type, two faces: an HTML page for browsers and JSON for hosts and API clients.
//! Internal errors are logged once with their cause chain; users see no internals.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::admin::{AdminError, RetryAfter};
use crate::queue::QueueError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    NotFound(#[from] Missing),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// Another server (a repository host's API) refused or failed what baler asked of it.
    #[error("{0}")]
    BadGateway(String),
    /// 429 with `Retry-After` (whole seconds) in both faces.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_seconds: u64,
    },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// What a request named that does not exist (404), each in its own words.
#[derive(Debug, thiserror::Error)]
pub enum Missing {
    #[error("no project named {0:?}")]
    Project(String),
    #[error("{project} has no release {version:?}")]
    Release { project: String, version: String },
    /// A document not rendered yet: the web server renders every one when it starts.
    #[error("{0} is not published yet")]
    Document(String),
    /// A page of a project's history past its last.
    #[error("{project} has no page {page} of releases")]
    Page { project: String, page: usize },
    #[error("{project} has no file {file:?}")]
    File { project: String, file: String },
    /// A Composer metadata file: `p2/{vendor}/{file}`.
    #[error("no package {vendor}/{file}")]
    Package { vendor: String, file: String },
    #[error("no queue item {0}")]
    QueueItem(i64),
    /// A signature or provenance of a release made while signing was off (`baler sign --all`
    /// signs it), or a public key where signing is off.
    #[error("{what} is not signed")]
    Signature { what: String },
    #[error("{project} {version} has no provenance: it was built before baler recorded one")]
    Provenance { project: String, version: String },
    #[error("this server does not sign releases (no [signing] minisign_key_file)")]
    SigningKey,
    /// What an admin action names (a project, a token), in the action's own words.
    #[error("{0}")]
    ActionTarget(String),
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<QueueError> for AppError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::NotFound(id) => Missing::QueueItem(id).into(),
            QueueError::Conflict(_) => AppError::Conflict(e.to_string()),
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<crate::connect::ConnectError> for AppError {
    fn from(e: crate::connect::ConnectError) -> Self {
        use crate::connect::ConnectError;
        match e {
            ConnectError::Admin(e) => e.into(),
            ConnectError::Setup(m) => AppError::BadRequest(m),
            host @ (ConnectError::Host { .. } | ConnectError::Unreachable { .. }) => {
                AppError::BadGateway(host.to_string())
            }
        }
    }
}

impl From<AdminError> for AppError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Queue(e) => e.into(),
            AdminError::NotFound(m) => Missing::ActionTarget(m).into(),
            AdminError::Conflict(m) => AppError::Conflict(m),
            AdminError::Invalid(m) => AppError::BadRequest(m),
            other => AppError::Internal(other.into()),
        }
    }
}

/// An address over its budget of failed admin authentications.
impl From<RetryAfter> for AppError {
    fn from(wait: RetryAfter) -> Self {
        let seconds = wait.seconds();
        AppError::TooManyRequests {
            message: format!(
                "too many failed admin authentications from your address: no token from it is \
                 checked for {seconds} s"
            ),
            retry_after_seconds: seconds,
        }
    }
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Sets the headers the status needs (`Retry-After` for a 429) on either face.
    fn headers(&self, response: &mut Response) {
        if let AppError::TooManyRequests {
            retry_after_seconds,
            ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
        }
    }

    /// Internal errors are logged once, with their cause chain; the user sees none of it.
    fn log(&self) {
        if let AppError::Internal(e) = self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
    }
}

/// The error page.
#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage {
    code: u16,
    message: String,
}

/// The HTML face, for pages.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let page = ErrorPage {
            code: status.as_u16(),
            message: self.to_string(),
        };
        let mut response = match askama::Template::render(&page) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, page.message).into_response(),
        };
        self.headers(&mut response);
        response
    }
}

/// The JSON face, for webhooks and the API: `{"error": "..."}` with the right status.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        let mut response = (
            status,
            Json(serde_json::json!({ "error": self.0.to_string() })),
        )
            .into_response();
        self.0.headers(&mut response);
        response
    }
}
