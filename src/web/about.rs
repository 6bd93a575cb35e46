//! `GET /about`: who is signed in (and how to sign out everywhere) — in dev mode, how to send
//! mail here and read it back ([`getting_started`], also the empty inbox) — and the JSON API
//! at a glance.

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
            let mut dev = Html::trusted(
                "<p>Dev mode: the listener is on loopback, so nobody signs in.</p>\n",
            );
            dev.push(getting_started(&state.settings));
            dev
        }
    };
    let body = html!(
        concat!(
            "{who}<h2>API</h2>\n<p>Every endpoint, with its fields: <a href=\"/api/openapi.json\">/api/openapi.json</a> (OpenAPI 3.1).</p>\n<ul>\n",
            "<li><a href=\"/api/messages\">GET /api/messages</a>: received messages, newest first; <code>?q=</code> searches ",
            "as the inbox does (<code>from:alice has:attachment is:unread</code>); filters ",
            "<code>?address= &amp;recipient= &amp;sender= &amp;subject= &amp;status=successful|rejected|delayed|captured|bounce|refused|queued|failed|discarded ",
            "&amp;since=2026-11-28 &amp;until=2026-11-29 &amp;limit=50 &amp;before=ID</code>; DELETE with the same filters (admins)</li>\n",
            "<li>GET/DELETE /api/messages/{{id}}: one message with every delivery attempt · GET /api/messages/{{id}}/raw: ",
            "the message, where it is kept · GET /api/messages/{{id}}/payload: the body its app gets · ",
            "PUT/DELETE /api/messages/{{id}}/read: read state, the caller's own · POST /api/messages/{{id}}/resend (admins) · ",
            "POST /api/messages/{{id}}/release and /repost (dev mode)</li>\n",
            "<li>POST /api/v0.1/{{username}}/messages: send mail (the credential's token as bearer; CloudMailin's outbound API)</li>\n",
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
            "<li>GET /live?scope=inbound|outbound|message:ID|sent:UUID: Server-Sent Events when what a page shows changes</li>\n",
            "<li>ANY /target/{{code}}, /target/delay/{{ms}}: test targets</li>\n</ul>",
        ),
        who = who,
    );
    ui::dashboard(StatusCode::OK, "About and API", ui::nav(&principal), body)
}

/// Dev mode's empty inbox and its `/about`: where to send mail and how to read it back, with
/// this instance's own addresses (the commands `postern dev` prints), ready to copy.
pub(in crate::web) fn getting_started(settings: &crate::web::Settings) -> Html {
    let mut out = Html::trusted("<section id=\"getting-started\">\n<h2>No mail yet</h2>\n");
    if let Some(smtp) = settings.smtp_listen {
        out.push(html!(
            concat!(
                "<p>Point your app's SMTP settings at <code class=\"copy\">{ip}:{port}</code>: every ",
                "recipient is accepted and kept here, nothing leaves this machine. Or send a test message:</p>\n",
                "<pre><code class=\"copy\">swaks --server {ip} --port {port} --to someone@example.com --from you@example.com</code></pre>\n",
            ),
            ip = smtp.ip().to_string(),
            port = smtp.port(),
        ));
    }
    if let Some(web) = settings.web_listen {
        out.push(html!(
            concat!(
                "<p>It appears here at once. Read it through the API:</p>\n",
                "<pre><code class=\"copy\">curl -s http://{web}/api/messages</code></pre>\n",
                "<p>Mail your app sends is captured under <a href=\"/outbound\">Sent</a>: through the send API",
            ),
            web = web.to_string(),
        ));
        match settings.submission_listen.first() {
            Some(submission) => out.push(html!(
                " or SMTP submission at <code class=\"copy\">{}</code> (user <code>dev</code>, password <code>dev</code>).</p>\n",
                submission.to_string()
            )),
            None => out.push_trusted(".</p>\n"),
        }
        out.push(html!(
            "<pre><code class=\"copy\">curl -s http://{web}/api/v0.1/dev/messages -H 'Authorization: Bearer dev' -d '{{\"from\":\"app@example.com\",\"to\":\"you@example.net\",\"subject\":\"Hi\",\"plain\":\"Hello\"}}'</code></pre>\n",
            web = web.to_string(),
        ));
    }
    out.push_trusted("</section>\n");
    out
}
