//! The form-page pattern, written once: a page that lists things and, for admins, has a
//! form to add one. `GET` renders the list and the empty form ([`show`]); `POST` reads the
//! form (a 400 page when it cannot be read), acts on it ([`FormPage::submit`]) and either
//! answers (303 back to the list, or a page shown once, such as a new secret) or renders
//! the page again with the refusal above the form and the fields as sent ([`submit`]).

use std::future::Future;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::de::DeserializeOwned;

use crate::accounts::Client;
use crate::web::AppState;
use crate::web::auth::Principal;

/// A list page with a form; route it as `get(form::show::<P>).post(form::submit::<P>)`.
pub(in crate::web) trait FormPage: 'static {
    /// The form's fields as sent; `Default` is the empty form.
    type Form: DeserializeOwned + Default + Send + Sync + 'static;

    /// The list's path and name: the way back from an error page.
    const BACK: (&'static str, &'static str);

    /// The list and, for admins, the form with `refusal` above it and `form` kept.
    fn render(
        state: &AppState,
        principal: &Principal,
        status: StatusCode,
        refusal: Option<&str>,
        form: &Self::Form,
    ) -> impl Future<Output = Response> + Send;

    /// Acts on a form that was read.
    fn submit(
        submission: Submission<'_>,
        form: &Self::Form,
    ) -> impl Future<Output = Result<Response, Refused>> + Send;
}

/// Who sent a form, and how.
pub(in crate::web) struct Submission<'a> {
    pub(in crate::web) state: &'a AppState,
    pub(in crate::web) principal: &'a Principal,
    pub(in crate::web) client: Option<&'a Client>,
    pub(in crate::web) headers: &'a HeaderMap,
}

/// Why a form did not get its answer.
pub(in crate::web) enum Refused {
    /// Something the user can fix: the page again with this status and sentence.
    Again(StatusCode, String),
    /// Anything else: this answer (an error page).
    Answer(Response),
}

/// `GET`: the list and the empty form.
pub(in crate::web) async fn show<P: FormPage>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    P::render(
        &state,
        &principal,
        StatusCode::OK,
        None,
        &P::Form::default(),
    )
    .await
}

/// `POST`: reads the form, acts on it, and answers or shows the page again.
pub(in crate::web) async fn submit<P: FormPage>(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    form: Result<Form<P::Form>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        let status = StatusCode::BAD_REQUEST;
        return super::message(&principal, status, "the form was not readable", P::BACK);
    };
    let client = client.map(|Extension(c)| c);
    let submission = Submission {
        state: &state,
        principal: &principal,
        client: client.as_ref(),
        headers: &headers,
    };
    match P::submit(submission, &form).await {
        Ok(answer) => answer,
        Err(Refused::Again(status, why)) => {
            P::render(&state, &principal, status, Some(&why), &form).await
        }
        Err(Refused::Answer(answer)) => answer,
    }
}
