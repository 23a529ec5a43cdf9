//! The live page: served on loopback, pushed a fresh view at every change of the run (server-
//! sent events), and the way back for the presenter's Next.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use playbook_trace::Trace;
use tokio::sync::mpsc;

use crate::Export;
use crate::render::{self, PageFor, View};
use crate::votes::Votes;

/// Where the stage listens unless told otherwise (on 127.0.0.1 only).
pub const DEFAULT_PORT: u16 = 8088;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("the stage cannot listen on {addr}: {source}; pass --stage-port 0 to pick a free port")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running stage; it stops when [`Stage::stop`] is called or it is dropped.
pub struct Stage {
    url: String,
    audience_url: Option<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Clone)]
struct AppState {
    trace: Trace,
    /// Where the presenter's Next goes; the room's listener has none.
    next: Option<mpsc::UnboundedSender<()>>,
    /// Whom the page is for on this listener: the presenter, or the room.
    page_for: PageFor,
    /// The room's predictions, shared by both listeners.
    votes: Arc<Votes>,
}

impl Stage {
    /// Serves the live page of `trace`; each Next the page sends while the run waits arrives on
    /// `next`. With `audience`, a read-only page for the room is served there too: it follows
    /// the run but cannot step it.
    pub async fn start(
        listen: SocketAddr,
        audience: Option<SocketAddr>,
        trace: Trace,
        next: mpsc::UnboundedSender<()>,
    ) -> Result<Self, StageError> {
        let audience = match audience {
            Some(listen) => Some(bind(listen).await?),
            None => None,
        };
        let audience_url = audience
            .as_ref()
            .map(|(_, addr)| crate::audience::url(*addr));
        let (listener, addr) = bind(listen).await?;
        let votes = Arc::new(Votes::new());
        let presenter = AppState {
            trace: trace.clone(),
            next: Some(next),
            page_for: PageFor::Presenter {
                audience: audience_url.clone(),
            },
            votes: votes.clone(),
        };
        let mut tasks = vec![serve(listener, router(presenter))];
        if let Some((listener, _)) = audience {
            let room = AppState {
                trace,
                next: None,
                page_for: PageFor::Audience,
                votes,
            };
            tasks.push(serve(listener, router(room)));
        }
        Ok(Self {
            url: format!("http://{addr}/"),
            audience_url,
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the room opens the audience page, when there is one.
    pub fn audience_url(&self) -> Option<&str> {
        self.audience_url.as_deref()
    }

    /// Stops serving both pages (as dropping the stage does).
    pub fn stop(self) {
        drop(self);
    }
}

async fn bind(listen: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), StageError> {
    let error = |source| StageError::Bind {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(error)?;
    let addr = listener.local_addr().map_err(error)?;
    Ok((listener, addr))
}

/// The page, its events, its downloads and Next (refused on the room's listener, which has no
/// run to step); votes only on the room's.
fn router(state: AppState) -> axum::Router {
    let votes = state.next.is_none();
    let router = axum::Router::new()
        .route("/", get(page))
        .route("/events", get(events))
        .route("/next", post(next_step))
        .route("/export/{file}", get(export));
    let router = if votes {
        router.route("/vote/{choice}", post(vote))
    } else {
        router
    };
    router.with_state(state)
}

/// Serves `app` until the stage is dropped.
fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "the stage stopped");
        }
    })
}

impl Drop for Stage {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn page(State(state): State<AppState>) -> Html<String> {
    Html(render::page(&state.trace.snapshot(), &state.page_for))
}

/// The whole view at once, then again at every change: a page opened late catches up with
/// its first message, and any number of pages may watch.
async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = state.trace.subscribe();
    // Only the presenter's page hears of votes, and only as a count: a vote never redraws the
    // diagram, on any page.
    let voted =
        matches!(state.page_for, PageFor::Presenter { .. }).then(|| state.votes.subscribe());
    let stream = futures::stream::unfold(
        (state, changes, voted, true),
        |(state, mut changes, mut voted, first)| async move {
            let mut only_votes = false;
            if !first {
                let changes = changes.as_mut()?;
                match voted.as_mut() {
                    Some(voted) => tokio::select! {
                        changed = changes.changed() => changed.ok()?,
                        changed = voted.changed() => { changed.ok()?; only_votes = true; }
                    },
                    None => changes.changed().await.ok()?,
                }
            }
            if let Some(changes) = changes.as_mut() {
                changes.mark_unchanged();
            }
            if let Some(voted) = voted.as_mut() {
                voted.mark_unchanged();
            }
            let run = state.trace.snapshot();
            let votes = (voted.is_some())
                .then(|| run.latest_question())
                .flatten()
                .map(|(question, choices)| state.votes.counts(question, choices.len()));
            let event = if only_votes {
                Event::default().event("votes").json_data(&votes)
            } else {
                let mut view = View::of(&run);
                view.votes = votes;
                Event::default().json_data(&view)
            };
            let event = event.expect("a view serializes");
            Some((Ok(event), (state, changes, voted, false)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(serde::Deserialize)]
struct Voter {
    voter: String,
}

/// An audience browser's prediction for the open question.
async fn vote(
    State(state): State<AppState>,
    UrlPath(choice): UrlPath<usize>,
    Query(Voter { voter }): Query<Voter>,
) -> Response {
    let run = state.trace.snapshot();
    let Some((question, choices)) = run.open_question() else {
        return (StatusCode::CONFLICT, "no question is open\n").into_response();
    };
    if state.votes.vote(question, choices.len(), &voter, choice) {
        StatusCode::ACCEPTED.into_response()
    } else {
        (StatusCode::BAD_REQUEST, "not one of the choices\n").into_response()
    }
}

async fn next_step(State(state): State<AppState>) -> Response {
    let Some(next) = &state.next else {
        return (
            StatusCode::FORBIDDEN,
            "the audience page follows the run; only the presenter's page steps it\n",
        )
            .into_response();
    };
    if state.trace.snapshot().waiting_for.is_none() {
        return (StatusCode::CONFLICT, "the run is not waiting for Next\n").into_response();
    }
    match next.send(()) {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(_) => (StatusCode::GONE, "the run is over\n").into_response(),
    }
}

async fn export(State(state): State<AppState>, UrlPath(file): UrlPath<String>) -> Response {
    match Export::for_path(Path::new(&file)) {
        Ok(format) => (
            [
                (header::CONTENT_TYPE, format.content_type().to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"run.{}\"", format.extension()),
                ),
            ],
            format.render(&state.trace.snapshot()),
        )
            .into_response(),
        Err(error) => (StatusCode::NOT_FOUND, format!("{error}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use playbook_trace::{Exchange, Party};

    use super::*;

    async fn first_view(url: &str) -> serde_json::Value {
        let mut response = reqwest::get(format!("{url}events")).await.unwrap();
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut text = String::new();
        while !text.contains("\n\n") {
            let chunk = response.chunk().await.unwrap().expect("a first event");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        let data = text
            .lines()
            .find_map(|line| line.strip_prefix("data:"))
            .unwrap();
        serde_json::from_str(data.trim()).unwrap()
    }

    #[tokio::test]
    async fn a_late_page_catches_up_and_next_reaches_the_run_only_while_it_waits() {
        let trace = Trace::new();
        let (next, mut nexts) = mpsc::unbounded_channel();
        let stage = Stage::start("127.0.0.1:0".parse().unwrap(), None, trace.clone(), next)
            .await
            .unwrap();
        let url = stage.url().to_owned();
        let mut exchange = Exchange::new(Party::Client, Party::Keycloak, "POST", "https://k/token");
        exchange.answered(200, "access token");
        trace.record(exchange);

        let view = first_view(&url).await;
        assert_eq!(
            view["exchanges"], 1,
            "the first message carries the run so far"
        );
        assert!(
            view["svg"]
                .as_str()
                .unwrap()
                .contains(r#"data-status="200""#)
        );

        let http = reqwest::Client::new();
        let post_next = || http.post(format!("{url}next")).send();
        assert_eq!(post_next().await.unwrap().status(), 409, "not waiting");
        trace.waiting_for(Some("2. Assign the role"));
        assert_eq!(first_view(&url).await["waiting_for"], "2. Assign the role");
        assert_eq!(post_next().await.unwrap().status(), 202);
        assert_eq!(nexts.recv().await, Some(()));

        let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
        assert!(page.contains(r#"<button id="next""#) && page.contains("EventSource"));
        let mermaid = reqwest::get(format!("{url}export/run.mmd")).await.unwrap();
        assert!(
            mermaid.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("run.mmd")
        );
        assert!(mermaid.text().await.unwrap().contains("C->>K: POST /token"));
        assert_eq!(
            reqwest::get(format!("{url}export/run.pdf"))
                .await
                .unwrap()
                .status(),
            404
        );
        stage.stop();
    }

    #[tokio::test]
    async fn the_audience_page_follows_the_run_but_cannot_step_it() {
        let trace = Trace::new();
        let (next, mut nexts) = mpsc::unbounded_channel();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let stage = Stage::start(any, Some(any), trace.clone(), next)
            .await
            .unwrap();
        let audience = stage.audience_url().unwrap().to_owned();
        assert_ne!(audience, stage.url(), "a listener of its own");
        let mut exchange = Exchange::new(Party::Client, Party::Keycloak, "POST", "https://k/token");
        exchange.answered(200, "access token");
        trace.record(exchange);
        trace.waiting_for(Some("2. Assign the role"));

        let view = first_view(&audience).await;
        assert_eq!(view["exchanges"], 1, "a late audience page catches up");
        let page = reqwest::get(&audience).await.unwrap().text().await.unwrap();
        assert!(
            !page.contains(r#"id="next""#),
            "no Next on the audience page"
        );
        assert!(page.contains(r#"data-audience="true""#));
        let refused = reqwest::Client::new()
            .post(format!("{audience}next"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        assert!(nexts.try_recv().is_err(), "the run did not move");

        let presenter = reqwest::get(stage.url())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(presenter.contains(&format!("Audience: {audience}")));
        assert!(presenter.contains("<path"), "its QR code");

        // Predict mode: the room votes on the open question; the presenter sees the tally.
        let http = reqwest::Client::new();
        let vote = |choice: usize, voter: &str| {
            http.post(format!("{audience}vote/{choice}?voter={voter}"))
                .send()
        };
        assert_eq!(
            vote(0, "v1").await.unwrap().status(),
            409,
            "no question yet"
        );
        trace.question("What will it answer?", &["200 OK", "401 invalid_token"]);
        trace.waiting_for(Some("Reveal the answer"));
        assert_eq!(
            first_view(&audience).await["question"][1],
            "401 invalid_token"
        );
        assert_eq!(vote(1, "v1").await.unwrap().status(), 202);
        assert_eq!(vote(1, "v2").await.unwrap().status(), 202);
        assert_eq!(vote(5, "v3").await.unwrap().status(), 400);
        assert_eq!(
            first_view(stage.url()).await["votes"],
            serde_json::json!([0, 2])
        );
        assert!(
            first_view(&audience).await["votes"].is_null(),
            "the room votes blind"
        );
        let presenter_vote = http.post(format!("{}vote/0?voter=p", stage.url())).send();
        assert_eq!(
            presenter_vote.await.unwrap().status(),
            404,
            "the presenter does not vote"
        );
        stage.stop();
    }
}
