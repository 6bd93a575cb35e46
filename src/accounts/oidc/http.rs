//! The HTTP client that talks to the providers: reqwest (the one the webhooks use), no
//! redirects followed, short timeouts, answers read up to [`MAX_ANSWER`] bytes; and the
//! oauth2 crate's `AsyncHttpClient` over it (oauth2's own reqwest feature would bring a
//! second reqwest).

use std::time::Duration;

use serde_json::Value;

/// A provider's answer larger than this is refused.
const MAX_ANSWER: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(15);

/// Why a request to a provider failed, in words fit for the sign-in page.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("could not connect")]
    Connect,
    #[error("no answer within {} seconds", TIMEOUT.as_secs())]
    Timeout,
    #[error("the request failed")]
    Other(#[source] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answered with more than 1 MiB")]
    TooLarge,
    #[error("answered with something that is not JSON")]
    NotJson,
}

impl From<reqwest::Error> for HttpError {
    fn from(error: reqwest::Error) -> HttpError {
        if error.is_timeout() {
            HttpError::Timeout
        } else if error.is_connect() {
            HttpError::Connect
        } else {
            HttpError::Other(error)
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Http {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            // GitHub's API refuses requests without one.
            .user_agent(concat!("Postern/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with rustls builds");
        Http { client }
    }

    /// `GET url` (with a bearer token) → JSON, on a 2xx answer only.
    pub async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Value, HttpError> {
        let mut request = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let body = read_limited(response).await?;
        if !status.is_success() {
            return Err(HttpError::Status(status.as_u16()));
        }
        serde_json::from_slice(&body).map_err(|_| HttpError::NotJson)
    }

    /// What oauth2's token request runs on.
    pub async fn send(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, HttpError> {
        let request = reqwest::Request::try_from(request).map_err(HttpError::Other)?;
        let response = self.client.execute(request).await?;
        let mut answer = oauth2::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        let body = read_limited(response).await?;
        Ok(answer
            .body(body)
            .expect("status and headers came from a response"))
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER as u64)
    {
        return Err(HttpError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
