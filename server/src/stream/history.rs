//! A signed-in user's stream, written to the history (`sessions`) as it runs.
//!
//! The media loop never waits for the database: it hands events to a bounded channel
//! (dropping one when the writer is behind) and one task per stream writes them.

use crate::service::history::{self, Figures};
use app::{models::ParamMap, service::ServiceError};
use sqlx::SqlitePool;
use std::time::Duration;
use tokio::{sync::mpsc, task::JoinHandle};

/// Events waiting for the writer.
const QUEUE: usize = 64;
/// How long the end of a stream waits for its row to be closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What happened to the stream.
#[derive(Debug)]
pub enum Event {
    /// The viewer changed parameters (prompts included): logged with the time.
    Changed(ParamMap),
    /// The running figures (kept so that a crash leaves the last known ones).
    Figures(Figures),
    /// The stream ended: the writer stops after what was queued before.
    End,
}

/// The sending side, cloned into the tasks that observe the stream.
#[derive(Clone, Debug)]
pub struct HistorySender(mpsc::Sender<Event>);

impl HistorySender {
    /// Queues an event; drops it (with a warning) when the writer is behind.
    pub fn send(&self, event: Event) {
        if let Err(mpsc::error::TrySendError::Full(e)) = self.0.try_send(event) {
            tracing::warn!(event = ?e, "history writer is behind: event dropped");
        }
    }
}

/// One stream's history row and its writer task.
pub struct HistoryLog {
    id: String,
    tx: HistorySender,
    task: JoinHandle<()>,
    db: SqlitePool,
}

impl HistoryLog {
    /// Opens the row (now) and starts the writer.
    pub async fn open(
        db: SqlitePool,
        id: &str,
        user_id: i64,
        pipeline_id: &str,
        load_params: &ParamMap,
        initial: &ParamMap,
    ) -> Result<Self, ServiceError> {
        history::open(&db, id, user_id, pipeline_id, load_params, initial).await?;
        let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
        let (writer_db, writer_id) = (db.clone(), id.to_owned());
        let task = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let result = match &event {
                    Event::Changed(p) => history::log_change(&writer_db, &writer_id, p).await,
                    Event::Figures(f) => history::update_figures(&writer_db, &writer_id, *f).await,
                    Event::End => break,
                };
                if let Err(e) = result {
                    tracing::warn!(session = %writer_id, error = %e, "history write failed");
                }
            }
        });
        Ok(Self {
            id: id.to_owned(),
            tx: HistorySender(tx),
            task,
            db,
        })
    }

    pub fn sender(&self) -> HistorySender {
        self.tx.clone()
    }

    /// Writes what is queued, then closes the row with the final figures.
    pub async fn close(self, figures: Figures, error: Option<&str>) {
        let HistoryLog { id, tx, task, db } = self;
        let finished = async {
            let _ = tx.0.send(Event::End).await;
            let _ = task.await;
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, finished).await.is_err() {
            tracing::warn!(session = %id, "history writer did not finish in time");
        }
        if let Err(e) = history::close(&db, &id, figures, error).await {
            tracing::warn!(session = %id, error = %e, "cannot close the history row");
        }
    }
}
