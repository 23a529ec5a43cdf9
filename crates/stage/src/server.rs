//! The live page: served on loopback, pushed a fresh view at every change of the run (server-
//! sent events), and the way back for the presenter's Next.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use playbook_trace::Trace;
use tokio::sync::mpsc;

use crate::Export;
use crate::render::{self, View};

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
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct AppState {
    trace: Trace,
    next: mpsc::UnboundedSender<()>,
}

impl Stage {
    /// Serves the live page of `trace`; each Next the page sends while the run waits arrives on
    /// `next`.
    pub async fn start(
        listen: SocketAddr,
        trace: Trace,
        next: mpsc::UnboundedSender<()>,
    ) -> Result<Self, StageError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| StageError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StageError::Bind {
            addr: listen,
            source,
        })?;
        let app = axum::Router::new()
            .route("/", get(page))
            .route("/events", get(events))
            .route("/next", post(next_step))
            .route("/export/{file}", get(export))
            .with_state(AppState { trace, next });
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "the stage stopped");
            }
        });
        Ok(Self {
            url: format!("http://{addr}/"),
            task,
        })
    }

    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn page(State(state): State<AppState>) -> Html<String> {
    Html(render::page(&state.trace.snapshot(), true))
}

/// The whole view at once, then again at every change: a page opened late catches up with
/// its first message, and any number of pages may watch.
async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = state.trace.subscribe();
    let stream = futures::stream::unfold(
        (state.trace, changes, true),
        |(trace, mut changes, first)| async move {
            if !first {
                changes.as_mut()?.changed().await.ok()?;
            }
            if let Some(changes) = changes.as_mut() {
                changes.mark_unchanged();
            }
            let view = View::of(&trace.snapshot());
            let event = Event::default()
                .json_data(&view)
                .expect("a view serializes");
            Some((Ok(event), (trace, changes, false)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn next_step(State(state): State<AppState>) -> Response {
    if state.trace.snapshot().waiting_for.is_none() {
        return (StatusCode::CONFLICT, "the run is not waiting for Next\n").into_response();
    }
    match state.next.send(()) {
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
        let stage = Stage::start("127.0.0.1:0".parse().unwrap(), trace.clone(), next)
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
}
