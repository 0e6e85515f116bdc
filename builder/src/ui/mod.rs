//! The dashboard, served by roleoutd under `/ui/`: pages rendered on the
//! server with Tera, readable without JavaScript, for the members of the
//! directory's admins group.
//!
//! Signing in is an LDAP bind as the user ([`Directory::sign_in`]),
//! followed by a check that the account is a member of `cn=admins`; the
//! session keeps that bound connection, so everything a page reads or
//! changes is done as the admin, under the directory's access rules
//! (roleoutd's own account can never enable a machine; an admin approving
//! one from the dashboard can). The password is not kept once the
//! connection is bound, except by the connection itself to bind again
//! after the directory restarts.
//!
//! Sessions are named by a random 256-bit id in a cookie that scripts
//! cannot read (`HttpOnly`), sent only to `/ui` on same-site requests
//! (`SameSite=Strict`) and, with TLS, only over TLS (`Secure`). A session
//! ends after [`IDLE`] without a request or [`LIFETIME`] after sign-in,
//! whichever comes first, and at sign-out. Sessions live in the memory of
//! the roleoutd that made them: behind a balancer, the dashboard needs
//! affinity to one instance (machines' sessions do not).
//!
//! Every form carries a CSRF token: the session's own random token, or
//! before sign-in a random value that must also be in a cookie of its own.
//! A POST without the right token, or whose `Origin` is another site, is
//! refused before anything is done.

mod pages;
pub mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cookie::{Cookie, SameSite};
use ring::rand::{SecureRandom, SystemRandom};
use roleout_directory::{Directory, Secret};
use serde::Serialize;
use tera::Tera;

use crate::server::metrics::AuthKind;
use crate::server::state::ServerState;

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, however busy.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// At most this many sessions are kept; the least recently used goes
/// first.
const MAX_SESSIONS: usize = 256;

/// The largest form body read.
const MAX_FORM: usize = 16 * 1024;

const SESSION_COOKIE: &str = "roleout_session";
const SIGN_IN_COOKIE: &str = "roleout_sign_in";

/// The templates, each compiled into roleoutd.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("page.html", include_str!("templates/page.html")),
    ("log.html", include_str!("templates/log.html")),
];

/// The dashboard's templates and sessions.
pub struct Dashboard {
    tera: Tera,
    sessions: Mutex<HashMap<String, Arc<UiSession>>>,
    random: SystemRandom,
    /// Whether cookies are marked `Secure` (roleoutd serves TLS).
    secure: bool,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

/// A signed-in admin.
pub struct UiSession {
    /// The name typed at sign-in.
    pub user: String,
    /// The account's DN.
    pub dn: String,
    /// The directory, bound as the account.
    pub directory: Directory,
    /// The token every form of this session carries.
    pub csrf: String,
    started: Instant,
    last_used: Mutex<Instant>,
}

impl UiSession {
    fn expired(&self, now: Instant) -> bool {
        let last = *self
            .last_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        now.duration_since(self.started) >= LIFETIME || now.duration_since(last) >= IDLE
    }
}

/// The templates could not be compiled (a defect of the build).
#[derive(Debug, thiserror::Error)]
#[error("the dashboard's templates do not compile: {0}")]
pub struct TemplateError(String);

impl Dashboard {
    /// The dashboard, with cookies marked `Secure` when `secure`.
    pub fn new(secure: bool) -> Result<Dashboard, TemplateError> {
        let mut tera = Tera::default();
        tera.add_raw_templates(TEMPLATES.iter().copied())
            .map_err(|error| TemplateError(format!("{error:?}")))?;
        Ok(Dashboard {
            tera,
            sessions: Mutex::new(HashMap::new()),
            random: SystemRandom::new(),
            secure,
        })
    }

    fn token(&self) -> Option<String> {
        let mut bytes = [0u8; 32];
        self.random.fill(&mut bytes).ok()?;
        Some(hex::encode(bytes))
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<UiSession>>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live session named by the request's cookie, its use recorded.
    fn session(&self, headers: &HeaderMap) -> Option<Arc<UiSession>> {
        let id = cookie_value(headers, SESSION_COOKIE)?;
        let now = Instant::now();
        let mut sessions = self.sessions();
        let session = sessions.get(&id)?.clone();
        if session.expired(now) {
            sessions.remove(&id);
            return None;
        }
        *session
            .last_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
        Some(session)
    }

    fn keep(&self, id: String, session: UiSession) {
        let now = Instant::now();
        let mut sessions = self.sessions();
        sessions.retain(|_, kept| !kept.expired(now));
        while sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, kept)| {
                    *kept
                        .last_used
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                })
                .map(|(id, _)| id.clone());
            match oldest {
                Some(oldest) => {
                    sessions.remove(&oldest);
                }
                None => break,
            }
        }
        sessions.insert(id, Arc::new(session));
    }

    fn forget(&self, headers: &HeaderMap) -> Option<Arc<UiSession>> {
        let id = cookie_value(headers, SESSION_COOKIE)?;
        self.sessions().remove(&id)
    }

    fn cookie(&self, name: &'static str, value: String, max_age: Duration) -> HeaderValue {
        let cookie = Cookie::build((name, value))
            .path("/ui")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
            ))
            .build();
        HeaderValue::from_str(&cookie.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("roleout_invalid=; Path=/ui"))
    }

    fn render(&self, template: &str, context: &tera::Context) -> Response {
        match self.tera.render(template, context) {
            Ok(html) => html_response(StatusCode::OK, html),
            Err(error) => {
                tracing::warn!(template, error = ?error, "cannot render a dashboard page");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The page cannot be shown.",
                )
            }
        }
    }
}

/// The value of cookie `name` in the request, if it sent one.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
        .filter(|value| !value.is_empty())
}

/// Whether `given` is `expected`. Their SHA-256 digests are compared, so
/// the time taken says nothing of how much of a guess was right.
fn same_token(given: &str, expected: &str) -> bool {
    let digest = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    !expected.is_empty() && digest(given).as_ref() == digest(expected).as_ref()
}

/// Whether a POST comes from this site: an `Origin` header, when sent, must
/// name the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return true;
    };
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    origin_host.eq_ignore_ascii_case(host)
}

/// Headers every dashboard answer carries: no framing, no sniffing, no
/// caching of pages that show the fleet, no script at all.
fn secure_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(&mut response);
    response
}

fn plain(status: StatusCode, text: &str) -> Response {
    let mut response = (status, text.to_owned()).into_response();
    secure_headers(&mut response);
    response
}

/// The dashboard's routes, under `/ui`.
pub fn router() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::overview))
        .route("/ui/sign-in", get(sign_in_page).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/suites", get(pages::suites))
        .route("/ui/machines", get(pages::machines))
        .route("/ui/machines/{name}", get(pages::machine))
        .route("/ui/machines/{name}/logs/{digest}", get(pages::log))
        .route("/ui/enrolments", get(pages::enrolments))
        .route(
            "/ui/enrolments/{name}/approve",
            post(pages::approve_enrolment),
        )
        .route("/ui/enrolments/{name}/deny", post(pages::deny_enrolment))
        // A dashboard form is a few fields; anything larger is refused
        // before it is read.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM))
}

/// What a page handler is given: the session, or the answer to send
/// instead (to the sign-in page).
#[allow(
    clippy::result_large_err,
    reason = "the refusal is the answer sent, made at most once per request"
)]
pub(crate) fn signed_in(
    state: &ServerState,
    headers: &HeaderMap,
) -> Result<Arc<UiSession>, Response> {
    state
        .dashboard
        .session(headers)
        .ok_or_else(|| Redirect::to("/ui/sign-in").into_response())
}

/// A request of a signed-in admin: the handler's argument that sends a
/// visitor without a live session to the sign-in page instead.
pub(crate) struct Admin(pub(crate) Arc<UiSession>);

impl axum::extract::FromRequestParts<Arc<ServerState>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, Self::Rejection> {
        signed_in(state, &parts.headers).map(Admin)
    }
}

/// Checks a POST of a signed-in session: same origin, the session's CSRF
/// token in the form.
#[allow(
    clippy::result_large_err,
    reason = "the refusal is the answer sent, made at most once per request"
)]
pub(crate) fn checked_post(
    state: &ServerState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Arc<UiSession>, Response> {
    if !same_origin(headers) {
        return Err(plain(
            StatusCode::FORBIDDEN,
            "This form was sent from another site; nothing was done.",
        ));
    }
    let session = signed_in(state, headers)?;
    let given = form.get("csrf").map(String::as_str).unwrap_or("");
    if !same_token(given, &session.csrf) {
        tracing::warn!(user = %session.user, "dashboard form without its CSRF token refused");
        return Err(plain(
            StatusCode::FORBIDDEN,
            "This form does not carry this session's token (it was not made by this dashboard, or the session changed); nothing was done.",
        ));
    }
    Ok(session)
}

#[derive(Serialize)]
struct SignInView<'a> {
    title: &'a str,
    csrf: &'a str,
    user: &'a str,
    error: Option<&'a str>,
}

fn sign_in_form(
    state: &ServerState,
    status: StatusCode,
    user: &str,
    error: Option<&str>,
) -> Response {
    let Some(token) = state.dashboard.token() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "No random numbers are available; try again.",
        );
    };
    let view = SignInView {
        title: "Sign in",
        csrf: &token,
        user,
        error,
    };
    let context = match tera::Context::from_serialize(&view) {
        Ok(context) => context,
        Err(_) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page cannot be shown.",
            );
        }
    };
    let mut response = state.dashboard.render("sign_in.html", &context);
    *response.status_mut() = status;
    let cookie = state
        .dashboard
        .cookie(SIGN_IN_COOKIE, token, Duration::from_secs(3600));
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

async fn sign_in_page(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if state.dashboard.session(&headers).is_some() {
        return Redirect::to("/ui/").into_response();
    }
    sign_in_form(&state, StatusCode::OK, "", None)
}

/// The DN an admin signs in as: a DN typed whole, else the member of the
/// admins group whose first RDN's value is the name typed.
fn account_of(name: &str, admins: &[String]) -> Option<String> {
    if name.contains('=') {
        return Some(name.to_owned());
    }
    admins
        .iter()
        .find(|member| {
            member
                .split(',')
                .next()
                .and_then(|rdn| rdn.split_once('='))
                .is_some_and(|(_, value)| value.trim().eq_ignore_ascii_case(name))
        })
        .cloned()
}

async fn sign_in(
    State(state): State<Arc<ServerState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let user = form.get("user").map(|user| user.trim()).unwrap_or("");
    // Sign-ins are counted per source address, so passwords cannot be
    // guessed at the directory's speed through the dashboard.
    let source = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
    if let Err(
        crate::server::gate::Refusal::TooMany { retry_after }
        | crate::server::gate::Refusal::Busy { retry_after },
    ) = state.gate.sign_in(source)
    {
        state
            .metrics
            .authentication(AuthKind::Dashboard, "refused-too-many");
        tracing::info!(user, %source, outcome = "refused", reason = "too many sign-ins", "dashboard sign-in");
        return sign_in_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            user,
            Some(&format!(
                "Too many sign-ins from this address; try again in {retry_after} s."
            )),
        );
    }
    let password = Secret::new(form.get("password").cloned().unwrap_or_default());
    let expected = cookie_value(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    let given = form.get("csrf").map(String::as_str).unwrap_or("");
    if !same_origin(&headers) || !same_token(given, &expected) {
        state
            .metrics
            .authentication(AuthKind::Dashboard, "refused-csrf");
        tracing::info!(
            user,
            outcome = "refused",
            reason = if expected.is_empty() {
                "no sign-in cookie"
            } else {
                "the form's token is not the cookie's"
            },
            "dashboard sign-in"
        );
        return sign_in_form(
            &state,
            StatusCode::FORBIDDEN,
            user,
            Some("This form expired or was not made by this dashboard. Sign in again."),
        );
    }
    let wrong = |state: &ServerState| {
        state
            .metrics
            .authentication(AuthKind::Dashboard, "refused-credentials");
        tracing::info!(user, outcome = "refused", "dashboard sign-in");
        sign_in_form(
            state,
            StatusCode::UNAUTHORIZED,
            user,
            Some("The user name or password is wrong."),
        )
    };
    let admins_group = state.directory.layout().admins_group();
    let admins = match state.directory.group_members(&admins_group).await {
        Ok(members) => members.unwrap_or_default(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the admins group for a sign-in");
            return sign_in_form(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                user,
                Some("The directory cannot be reached; try again shortly."),
            );
        }
    };
    let Some(dn) = account_of(user, &admins) else {
        return wrong(&state);
    };
    let directory = match state.directory.sign_in(&dn, &password).await {
        Ok(Some(directory)) => directory,
        Ok(None) => return wrong(&state),
        Err(error) => {
            tracing::warn!(%error, "dashboard sign-in could not bind");
            return sign_in_form(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                user,
                Some("The directory cannot be reached; try again shortly."),
            );
        }
    };
    // The membership read above: an account named by its whole DN may
    // bind and still not be an admin. Checked after the bind, so only the
    // account's holder learns that.
    if !admins
        .iter()
        .any(|member| roleout_directory::roles::same_dn(member, &dn))
    {
        directory.close().await;
        state
            .metrics
            .authentication(AuthKind::Dashboard, "refused-not-admin");
        tracing::info!(
            user,
            outcome = "refused",
            reason = "not an admin",
            "dashboard sign-in"
        );
        return sign_in_form(
            &state,
            StatusCode::FORBIDDEN,
            user,
            Some("This account is not a member of the admins group."),
        );
    }
    let (Some(id), Some(csrf)) = (state.dashboard.token(), state.dashboard.token()) else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "No random numbers are available; try again.",
        );
    };
    let now = Instant::now();
    state.dashboard.keep(
        id.clone(),
        UiSession {
            user: user.to_owned(),
            dn,
            directory,
            csrf,
            started: now,
            last_used: Mutex::new(now),
        },
    );
    state
        .metrics
        .authentication(AuthKind::Dashboard, "accepted");
    tracing::info!(user, outcome = "accepted", "dashboard sign-in");
    let mut response = Redirect::to("/ui/").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        state.dashboard.cookie(SESSION_COOKIE, id, LIFETIME),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        state
            .dashboard
            .cookie(SIGN_IN_COOKIE, String::new(), Duration::ZERO),
    );
    secure_headers(&mut response);
    response
}

async fn sign_out(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = checked_post(&state, &headers, &form) {
        return refused;
    }
    if let Some(session) = state.dashboard.forget(&headers) {
        session.directory.close().await;
        tracing::info!(user = %session.user, "dashboard sign-out");
    }
    let mut response = Redirect::to("/ui/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        state
            .dashboard
            .cookie(SESSION_COOKIE, String::new(), Duration::ZERO),
    );
    secure_headers(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_a_dn_or_an_admins_member_named_by_its_first_rdn() {
        let admins = vec![
            "cn=admin,ou=roleout,dc=example,dc=org".to_owned(),
            "uid=Alice,ou=people,dc=example,dc=org".to_owned(),
        ];
        assert_eq!(
            account_of("alice", &admins).as_deref(),
            Some("uid=Alice,ou=people,dc=example,dc=org")
        );
        assert_eq!(
            account_of("cn=x,dc=example,dc=org", &admins).as_deref(),
            Some("cn=x,dc=example,dc=org")
        );
        assert_eq!(account_of("mallory", &admins), None);
    }

    #[test]
    fn tokens_compare_whole_and_never_empty() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abd", "abc"));
        assert!(!same_token("", ""));
    }

    #[test]
    fn a_post_from_another_site_is_not_same_origin() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8443"));
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:8443"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&headers));
    }

    #[test]
    fn the_templates_compile() {
        Dashboard::new(true).expect("templates compile");
    }
}
