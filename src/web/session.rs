//! Admin page sessions. Logging in with an admin token sets one signed cookie (HttpOnly,
//! SameSite=Lax, Path=/admin, Secure when `public_url` is https) that names the token and
//! when the session ends (12 hours on). Every request checks that token again, so revoking it,
//! or changing the configured `admin_token`, ends its sessions at once; logging out records the
//! session's id as ended, so a copy of the cookie is refused too.
//!
//! Every admin form, the login form included, carries a CSRF token: an HMAC of the session's
//! random id. A POST without it, or with another session's, is 403.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::admin::tokens::{Authenticated, Credential};
use crate::admin::{Actor, AdminError, AdminTokens};
use crate::error::AppError;

/// The session cookie's name.
pub const COOKIE: &str = "baler_admin";
/// Where the cookie is sent: the admin pages only, never the API or public pages.
const COOKIE_PATH: &str = "/admin";
/// How long a session lasts after logging in.
const LIFETIME_SECS: i64 = 12 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// The keys sessions are signed with, from the key kept in the database
/// (`admin::keys::session_key`), so that sessions survive restarts and every web process
/// accepts every other's cookies.
#[derive(Clone)]
pub struct Sessions {
    cookie_key: Key,
    /// For CSRF tokens and the configured token's fingerprint; derived from the same key,
    /// kept apart from the cookie's signing key.
    mac_key: Arc<[u8]>,
    secure: bool,
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Key {
        state.sessions.cookie_key.clone()
    }
}

impl Sessions {
    /// `secure`: the site is served over https, so the cookie is only ever sent over it.
    pub fn new(master: &[u8], secure: bool) -> anyhow::Result<Sessions> {
        let cookie_key = Key::try_from(master)
            .map_err(|e| anyhow::anyhow!("the session key is not usable: {e}"))?;
        let mac_key = HmacSha256::new_from_slice(master)
            .expect("HMAC takes any key size")
            .chain_update(b"baler admin page: csrf and fingerprints")
            .finalize()
            .into_bytes();
        Ok(Sessions {
            cookie_key,
            mac_key: Arc::from(mac_key.as_slice()),
            secure,
        })
    }

    fn mac(&self, purpose: &str, message: &str) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.mac_key)
            .expect("HMAC takes any key size")
            .chain_update(purpose.as_bytes())
            .chain_update([0])
            .chain_update(message.as_bytes())
    }

    /// Stands for the configured token in a cookie without revealing it (it may be short
    /// enough to guess from a plain hash).
    fn fingerprint(&self, configured: &str) -> String {
        hex::encode(
            self.mac("configured admin_token", configured)
                .finalize()
                .into_bytes(),
        )
    }
}

/// What the cookie holds.
#[derive(Serialize, Deserialize)]
struct SessionData {
    /// Random; the CSRF token is derived from it. A new one on every login.
    sid: String,
    /// Unix seconds.
    expires: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signed_in: Option<SignedIn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flash: Option<Flash>,
}

/// The token a session was opened with.
#[derive(Serialize, Deserialize)]
enum SignedIn {
    Configured { fingerprint: String },
    Named { id: i64 },
}

/// A one-time message for the next page: what the last action did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    pub error: bool,
    pub message: String,
}

impl SessionData {
    fn fresh() -> Result<SessionData, AdminError> {
        Ok(SessionData {
            sid: hex::encode(crate::admin::random_bytes::<16>()?),
            expires: chrono::Utc::now().timestamp() + LIFETIME_SECS,
            signed_in: None,
            flash: None,
        })
    }

    fn decode(value: &str) -> Option<SessionData> {
        let json = URL_SAFE_NO_PAD.decode(value).ok()?;
        let data: SessionData = serde_json::from_slice(&json).ok()?;
        (data.expires > chrono::Utc::now().timestamp()).then_some(data)
    }

    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("session data serialises"))
    }
}

/// A visitor's session on the admin pages, signed in or not (an expired, forged or missing
/// cookie gives a fresh one). Hand it back in the response with [`Session::into_jar`].
pub struct Session {
    jar: SignedCookieJar,
    data: SessionData,
    sessions: Sessions,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Session, AppError> {
        let jar = SignedCookieJar::from_headers(&parts.headers, state.sessions.cookie_key.clone());
        let data = match jar.get(COOKIE).and_then(|c| SessionData::decode(c.value())) {
            Some(data) => data,
            None => SessionData::fresh()?,
        };
        Ok(Session {
            jar,
            data,
            sessions: state.sessions.clone(),
        })
    }
}

impl Session {
    /// The token every form of this session carries in its `csrf` field.
    pub fn csrf(&self) -> String {
        hex::encode(
            self.sessions
                .mac("csrf", &self.data.sid)
                .finalize()
                .into_bytes(),
        )
    }

    /// 403 unless `given` is this session's CSRF token (compared in constant time).
    fn check_csrf(&self, given: Option<&str>) -> Result<(), AppError> {
        let Some(given) = given.filter(|g| !g.is_empty()) else {
            return Err(AppError::Forbidden(
                "this form carries no CSRF token; reload the page and submit the form again".into(),
            ));
        };
        let given = hex::decode(given).unwrap_or_default();
        match self
            .sessions
            .mac("csrf", &self.data.sid)
            .verify_slice(&given)
        {
            Ok(()) => Ok(()),
            Err(_) => Err(AppError::Forbidden(
                "this form's CSRF token does not belong to your session; reload the page and \
                 submit the form again"
                    .into(),
            )),
        }
    }

    /// The session's id and when its cookie expires (Unix seconds).
    pub fn id(&self) -> (String, i64) {
        (self.data.sid.clone(), self.data.expires)
    }

    /// Who is signed in, if the session's token still holds and it was not logged out.
    pub async fn who(&self, tokens: &AdminTokens) -> Result<Option<Actor>, AppError> {
        if self.data.signed_in.is_some() && tokens.session_ended(&self.data.sid).await? {
            return Ok(None);
        }
        match &self.data.signed_in {
            None => Ok(None),
            Some(SignedIn::Named { id }) => Ok(tokens.named(*id).await?),
            Some(SignedIn::Configured { fingerprint }) => {
                let holds = tokens.configured().is_some_and(|configured| {
                    bool::from(
                        self.sessions
                            .fingerprint(configured)
                            .as_bytes()
                            .ct_eq(fingerprint.as_bytes()),
                    )
                });
                Ok(holds.then(|| Actor::token(crate::admin::tokens::CONFIGURED_NAME)))
            }
        }
    }

    /// A new signed-in session (a new id, so a CSRF token seen before login is worthless).
    pub fn sign_in(self, who: &Authenticated, tokens: &AdminTokens) -> Result<Session, AppError> {
        let signed_in = match who.credential {
            Credential::Named(id) => SignedIn::Named { id },
            Credential::Configured => SignedIn::Configured {
                fingerprint: self
                    .sessions
                    .fingerprint(tokens.configured().unwrap_or_default()),
            },
        };
        Ok(Session {
            data: SessionData {
                signed_in: Some(signed_in),
                ..SessionData::fresh()?
            },
            ..self
        })
    }

    /// The cookie removed.
    pub fn sign_out(self) -> SignedCookieJar {
        self.jar.remove(Cookie::build(COOKIE).path(COOKIE_PATH))
    }

    pub fn set_flash(&mut self, flash: Flash) {
        self.data.flash = Some(flash);
    }

    /// The message left by the last action, shown once.
    pub fn take_flash(&mut self) -> Option<Flash> {
        self.data.flash.take()
    }

    /// The session as a cookie to send back.
    pub fn into_jar(self) -> SignedCookieJar {
        let cookie = Cookie::build((COOKIE, self.data.encode()))
            .path(COOKIE_PATH)
            .http_only(true)
            // Lax, not Strict: a link from elsewhere then arrives with the session instead of
            // being sent to the login page, which would replace it. Every POST needs the CSRF
            // token, so Lax lets no other site act.
            .same_site(SameSite::Lax)
            .secure(self.sessions.secure);
        self.jar.add(cookie)
    }
}

/// A signed-in admin on the admin pages. Without a live session a GET is sent to the login
/// page (303) and any other method is 401.
pub struct AdminSession {
    pub session: Session,
    pub actor: Actor,
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<AdminSession, Response> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match session.who(&state.tokens).await {
            Ok(Some(actor)) => Ok(AdminSession { session, actor }),
            Ok(None) if matches!(parts.method, Method::GET | Method::HEAD) => {
                Err(Redirect::to("/admin/login").into_response())
            }
            Ok(None) => Err(AppError::Unauthorized(
                "log in at /admin/login first: admin forms need a session".into(),
            )
            .into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// The fields of a POSTed form (`application/x-www-form-urlencoded`).
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    fn parse(body: &[u8]) -> FormFields {
        FormFields(form_urlencoded::parse(body).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Reads the form and checks its CSRF token against `session`.
async fn checked_fields(
    session: &Session,
    parts: Parts,
    body: axum::body::Body,
    state: &AppState,
) -> Result<FormFields, Response> {
    let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
        .await
        .map_err(IntoResponse::into_response)?;
    let fields = FormFields::parse(&bytes);
    session
        .check_csrf(fields.get("csrf"))
        .map_err(IntoResponse::into_response)?;
    Ok(fields)
}

/// A form POSTed by anyone (the login form) whose CSRF token matched their session.
pub struct CheckedForm {
    pub session: Session,
    pub fields: FormFields,
}

impl FromRequest<AppState> for CheckedForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<CheckedForm, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields = checked_fields(&session, parts, body, state).await?;
        Ok(CheckedForm { session, fields })
    }
}

/// A form POSTed by a signed-in admin, its CSRF token checked: no session is 401, then a
/// missing or wrong CSRF token is 403.
pub struct AdminForm {
    pub session: Session,
    pub actor: Actor,
    pub fields: FormFields,
}

impl FromRequest<AppState> for AdminForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<AdminForm, Response> {
        let (mut parts, body) = req.into_parts();
        let AdminSession { session, actor } =
            AdminSession::from_request_parts(&mut parts, state).await?;
        let fields = checked_fields(&session, parts, body, state).await?;
        Ok(AdminForm {
            session,
            actor,
            fields,
        })
    }
}
