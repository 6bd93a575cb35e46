//! `GET /about`: who is signed in (and how to sign out everywhere), and the JSON API at a
//! glance.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};

use crate::accounts::Role;
use crate::web::ui::{self, Html, html};
use crate::web::{AppState, Principal, Who};

/// Behind the gate's `Access::Dashboard`.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/about", get(about))
}

/// Who is signed in (and how to sign out), and the JSON API.
async fn about(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let who = match &principal.who {
        Who::User(session) => {
            let user = &session.user;
            let role = match user.role {
                Role::Admin => "admin",
                Role::Viewer => "viewer (read-only)",
            };
            html!(
                concat!(
                    "<p>Signed in as <strong>{email}</strong>, {role}. Session ends at {ends} (UTC) unless used.</p>\n",
                    "<p><a href=\"/account\">Account and my sessions</a> · <a href=\"/account/totp\">Two-factor authentication</a> · <a href=\"/account/password\">Change password</a></p>\n",
                    "<form method=\"post\" action=\"/signout\">{csrf}<input type=\"hidden\" name=\"everywhere\" value=\"1\">",
                    "<button type=\"submit\">Sign out everywhere</button></form>\n",
                ),
                email = Html::escape(&user.email),
                role = role,
                ends = session
                    .expires_at(state.accounts.policy())
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                csrf = ui::csrf(&principal),
            )
        }
        Who::ApiKey(key) => html!(
            "<p>API key <strong>{}</strong>.</p>\n",
            Html::escape(&key.name)
        ),
        Who::Dev => {
            Html::trusted("<p>Dev mode: the listener is on loopback, so nobody signs in.</p>\n")
        }
    };
    let body = html!(
        concat!(
            "{who}<h2>API</h2>\n<ul>\n",
            "<li><a href=\"/api/messages\">GET /api/messages</a>: received messages, newest first; filters ",
            "<code>?address= &amp;recipient= &amp;sender= &amp;subject= &amp;status=successful|rejected|delayed|captured|bounce ",
            "&amp;since=2026-11-28 &amp;until=2026-11-29 &amp;limit=50 &amp;before=ID</code></li>\n",
            "<li>GET /api/messages/{{id}}: one message with every delivery attempt</li>\n",
            "<li>GET /api/messages/{{id}}/raw: the raw message, where it is kept (dev mode)</li>\n",
            "<li><a href=\"/api/users\">GET /api/users</a> · POST /api/users · PATCH/DELETE /api/users/{{id}} · POST /api/users/{{id}}/reset-totp</li>\n",
            "<li><a href=\"/api/keys\">GET /api/keys</a> · POST /api/keys · DELETE /api/keys/{{id}} · ",
            "<a href=\"/api/audit\">GET /api/audit</a></li>\n",
            "<li><a href=\"/api/addresses\">GET /api/addresses</a> · POST /api/addresses · GET/PUT/DELETE /api/addresses/{{id}} · ",
            "<a href=\"/api/domains\">GET /api/domains</a> · POST /api/domains · GET/PUT/DELETE /api/domains/{{id}}</li>\n",
            "<li><a href=\"/api/outbound\">GET /api/outbound</a> · GET /api/outbound/{{id}} · ",
            "<a href=\"/api/credentials\">GET /api/credentials</a> · POST /api/credentials · DELETE /api/credentials/{{username}} · ",
            "<a href=\"/api/sending-domains\">GET /api/sending-domains</a> · POST /api/sending-domains · ",
            "DELETE /api/sending-domains/{{domain}} · GET /api/sending-domains/{{domain}}/verify · ",
            "<a href=\"/api/suppressions\">GET /api/suppressions</a></li>\n",
            "<li><a href=\"/api/privacy\">GET /api/privacy</a>: where data goes and what is kept (<a href=\"/privacy\">page</a>)</li>\n",
            "<li>ANY /target/{{code}}, /target/delay/{{ms}}: test targets</li>\n</ul>",
        ),
        who = who,
    );
    ui::dashboard(StatusCode::OK, "About and API", ui::nav(&principal), body)
}
