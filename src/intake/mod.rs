//! Webhook intake: what a delivery changes, and the answer its host gets. The web handler
//! (`web::hooks::receive`) only extracts the request, calls [`Intake::accept`] and renders the
//! [`Answer`].
//!
//! A delivery goes: find the project (404, only counted) → read the body (413, 503, 408, 400) →
//! `hooks::interpret` (415, 401, 400, 403) → the redelivery check and the queue → the
//! deliveries log. Answers come well within the hosts' 10 s: nothing here waits on git or the
//! network. Queueing is the only state a delivery changes: a deletion is queued for the worker
//! to check against the repository, never acted on here, so a replayed payload cannot
//! unpublish a release.
//!
//! A delivery writes up to three rows, each in its own commit, on purpose:
//! - the queue upsert is one statement that also looks for a redelivery
//!   (`Queue::enqueue_delivery`); its commit is what a 2xx promises;
//! - the deliveries log row is group-committed with other deliveries' rows
//!   (`DeliveryLog::record`), so that logging does not halve throughput on SQLite's single
//!   writer; it holds the replay key, so it is committed before the answer when storage can;
//! - the host's repository id only ever fills an empty column, so a retry or a race writes the
//!   same, and a slow update goes on in the background.
//!
//! A log row lost after its upsert committed costs at most a redelivery merged into the item
//! once more, which changes nothing twice.

mod answer;

use std::net::IpAddr;
use std::ops::Deref;
use std::time::Duration;

use axum::http::HeaderMap;
use sea_orm::DatabaseConnection;
use serde_json::json;
use tokio::time::Instant;

pub use answer::{Answer, BodyRefusal};

use crate::admin::throttle::AddressKey;
use crate::config::HttpLimits;
use crate::deliveries::{
    self, CountedRefusal, DeliveryLog, DeliveryRecord, MAX_NAME, Refusal, RefusalBudget,
};
use crate::hooks::{self, Decision, HookOutcome};
use crate::projects::{self, Project, ProjectCache};
use crate::queue::Queue;

/// A delivery's log row waits at least this long for its commit, even when queueing used up
/// the deadline: the row holds the replay key of an accepted delivery.
const LOG_GRACE: Duration = Duration::from_secs(1);

/// How long a looked-up project is trusted before it is read again.
const PROJECT_CACHE_TTL: Duration = Duration::from_secs(2);

/// What intake needs to act on deliveries; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    db: DatabaseConnection,
    queue: Queue,
    projects: ProjectCache,
    deliveries: DeliveryLog,
    refusals: RefusalBudget,
    /// The time storage gets in all for one delivery.
    commit_timeout: Duration,
}

/// One delivery as it arrived.
pub struct Delivery<'a, Body> {
    /// Who sent it, for budgets and the log.
    pub client: IpAddr,
    pub headers: &'a HeaderMap,
    /// The body, still to be read: it is read only once the project is known (an unknown
    /// project's body never is), and held until the delivery is answered.
    pub body: Body,
}

/// A delivery's way through intake: its log row as far as it is known, and the time storage
/// has left.
struct Receipt {
    record: DeliveryRecord,
    /// Storage gets `commit_timeout` in all for this delivery; the time its body takes to
    /// arrive is added (that is the client's, not storage's).
    deadline: Instant,
}

/// A step that can end the delivery early: `Err` holds its answer (a refusal, mostly).
type Step<T> = Result<T, Answer>;

impl Intake {
    pub fn new(db: DatabaseConnection, queue: Queue, limits: &HttpLimits) -> Intake {
        Intake {
            deliveries: DeliveryLog::start(db.clone(), queue.write_gate()),
            projects: ProjectCache::new(PROJECT_CACHE_TTL),
            refusals: RefusalBudget::new(limits.kept_refusals_per_hour),
            commit_timeout: limits.commit_timeout,
            db,
            queue,
        }
    }

    /// Acts on one delivery to the project called `name`, logs it, and gives the answer for
    /// its host.
    pub async fn accept<Body, Bytes>(&self, name: &str, delivery: Delivery<'_, Body>) -> Answer
    where
        Body: Future<Output = Result<Bytes, BodyRefusal>>,
        Bytes: Deref<Target = [u8]>,
    {
        let client = delivery.client;
        let started = Instant::now();
        let mut receipt = Receipt {
            record: DeliveryRecord {
                project_name: deliveries::bounded(name, MAX_NAME),
                client_address: Some(client.to_string()),
                ..DeliveryRecord::default()
            },
            deadline: Instant::now() + self.commit_timeout,
        };
        let answer = match self.act(name, delivery, &mut receipt).await {
            Ok(answer) | Err(answer) => answer,
        };
        tracing::info!(status = answer.status.as_u16(), reason = %answer.reason, "delivery");
        crate::metrics::webhook_delivery(
            receipt.record.provider.unwrap_or("unknown"),
            answer.status.as_u16(),
            started.elapsed(),
        );
        self.log(client, name, receipt, &answer).await;
        answer
    }

    async fn act<Body, Bytes>(
        &self,
        name: &str,
        delivery: Delivery<'_, Body>,
        receipt: &mut Receipt,
    ) -> Step<Answer>
    where
        Body: Future<Output = Result<Bytes, BodyRefusal>>,
        Bytes: Deref<Target = [u8]>,
    {
        let project = self.find_project(name, receipt.deadline).await?;
        receipt.record.project_id = Some(project.id);
        receipt.record.provider = Some(project.provider.as_str());
        receipt.record.delivery_id = hooks::delivery_id(project.provider, delivery.headers)
            .map(|id| deliveries::bounded(&id, deliveries::MAX_DELIVERY_ID));
        if let Some(id) = &receipt.record.delivery_id {
            tracing::Span::current().record("delivery", id.as_str());
        }

        let reading = Instant::now();
        let raw = delivery.body.await?;
        receipt.deadline += reading.elapsed();
        let now = chrono::Utc::now().timestamp();
        let interpreted = hooks::interpret(&project, delivery.headers, &raw, now)?;
        receipt.record.event = Some(deliveries::bounded(&interpreted.event, MAX_NAME));

        // Only now, with the signature checked, is the delivery id worth trusting.
        receipt.record.replay_key = receipt
            .record
            .delivery_id
            .as_deref()
            .map(|id| deliveries::replay_key(id, &raw));
        let deadline = receipt.deadline;
        let left = deadline.saturating_duration_since(Instant::now());
        let stored = tokio::time::timeout_at(
            deadline,
            self.store(&project, interpreted.outcome, left, &mut receipt.record),
        )
        .await;
        // A timed-out transaction is rolled back when dropped, PostgreSQL cancels the upsert at
        // the same moment, and SQLite's writer skips a webhook that stopped waiting; so a 503
        // leaves nothing queued, except an upsert that commits in the very last instant, which
        // the host's retry merges into without changing anything twice.
        let answer = stored.unwrap_or_else(|_| {
            Answer::unavailable(anyhow::anyhow!("storage did not commit in time"))
        });
        if answer.status.is_success()
            && let Some(id) = interpreted.learned_repository_id
        {
            self.remember_repository_id(&project, id).await;
        }
        Ok(answer)
    }

    /// The enabled project called `name`, read by `deadline`.
    async fn find_project(&self, name: &str, deadline: Instant) -> Step<Project> {
        // A name no project can have (too long, say) is not looked up, nor kept in the cache.
        if name.chars().count() > MAX_NAME {
            return Err(Answer::unknown_project());
        }
        match tokio::time::timeout_at(deadline, self.projects.find(&self.db, name)).await {
            Ok(Ok(Some(project))) => Ok(project),
            Ok(Ok(None)) => Err(Answer::unknown_project()),
            Ok(Err(e)) => Err(Answer::unavailable(e.into())),
            Err(_) => Err(Answer::unavailable(anyhow::anyhow!(
                "reading the project timed out"
            ))),
        }
    }

    /// What a verified delivery changes: its redelivery check and the queue. A delivery that
    /// queues looks for its redelivery inside its upsert (`Queue::enqueue_delivery`), which is
    /// all it changes; anything else looks here first, so that it too answers as it first did.
    async fn store(
        &self,
        project: &Project,
        outcome: HookOutcome,
        commit_timeout: Duration,
        record: &mut DeliveryRecord,
    ) -> Answer {
        let checked_in_upsert = matches!(outcome, HookOutcome::Release(_));
        if !checked_in_upsert && let Some(answer) = self.earlier_answer(project, record).await {
            return answer;
        }
        match outcome {
            HookOutcome::Ping => Answer::ping(),
            HookOutcome::Ignored(reason) => Answer::ignored(reason),
            HookOutcome::Release(decision) => {
                self.enqueue(project, decision, commit_timeout, record)
                    .await
            }
        }
    }

    async fn enqueue(
        &self,
        project: &Project,
        decision: Decision,
        commit_timeout: Duration,
        record: &mut DeliveryRecord,
    ) -> Answer {
        let queued = self
            .queue
            .enqueue_delivery(
                project.id,
                &decision.refs,
                record.replay_key.as_deref(),
                commit_timeout,
            )
            .await;
        match queued {
            Ok(Some(queued)) => Answer::queued(queued, &decision.reason()),
            // The upsert found the delivery's first time in the log.
            Ok(None) => self
                .earlier_answer(project, record)
                .await
                .unwrap_or_else(|| {
                    Answer::unavailable(anyhow::anyhow!("a replayed delivery vanished"))
                }),
            Err(e) => Answer::unavailable(e.into()),
        }
    }

    /// The first answer to this delivery if it is a redelivery (which then changes nothing and
    /// is logged without its key), or `None` to go on.
    async fn earlier_answer(
        &self,
        project: &Project,
        record: &mut DeliveryRecord,
    ) -> Option<Answer> {
        let key = record.replay_key.as_deref()?;
        match deliveries::replay(&self.db, project.id, key).await {
            Ok(Some(first)) => {
                record.replay_key = None;
                Some(Answer::replayed(first))
            }
            Ok(None) => None,
            Err(e) => Some(Answer::unavailable(e.into())),
        }
    }

    /// Records the host's repository id that a verified delivery carried, once the delivery
    /// has been acted on: a 503 then learns nothing. It waits at most [`LOG_GRACE`] and then
    /// goes on in the background, so a slow update never turns an accepted delivery into a
    /// 503. It only ever fills an empty column, so a retry or a race writes the same.
    async fn remember_repository_id(&self, project: &Project, id: String) {
        let db = self.db.clone();
        let cache = self.projects.clone();
        let project_id = project.id;
        let name = project.name.clone();
        let update = tokio::spawn(async move {
            match projects::remember_host_repository_id(&db, project_id, &id).await {
                Ok(()) => cache.forget(&name),
                Err(e) => tracing::warn!(error = %e, "could not remember the repository id"),
            }
        });
        let _ = tokio::time::timeout(LOG_GRACE, update).await;
    }

    /// Logs the delivery, committed before the host is answered when storage can commit it by
    /// the receipt's deadline (plus [`LOG_GRACE`]). A refusal is kept (bounded) while the
    /// client's address has budget left, and otherwise only counted; refusals for unknown
    /// projects are always only counted. Budgets and counts take an IPv6 client as its /64,
    /// which one host can fill.
    async fn log(&self, client: IpAddr, name: &str, receipt: Receipt, answer: &Answer) {
        let Receipt {
            mut record,
            deadline,
        } = receipt;
        record.status = answer.status.as_u16();
        record.reason = answer.reason.clone();
        record.item_id = answer.item;
        record.response = answer.body.to_string();
        if !answer.status.is_success() {
            record.replay_key = None;
        }
        if let Some(refusal) = answer.refusal {
            record.response = json!({ "error": refusal.as_str() }).to_string();
            let key = AddressKey::of(client);
            if refusal == Refusal::UnknownProject || !self.refusals.keep(key.network()) {
                let counted = CountedRefusal {
                    address: key.to_string(),
                    reason: refusal,
                    name: deliveries::bounded(name, MAX_NAME),
                };
                self.deliveries.count_refused(counted).await;
                return;
            }
        }
        let deadline = deadline.max(Instant::now() + LOG_GRACE);
        match tokio::time::timeout_at(deadline, self.deliveries.record(record)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not log the delivery"),
            // The row is still on its way to storage; the host's answer does not wait for it.
            Err(_) => tracing::warn!("the delivery's log row is not committed yet; answering"),
        }
    }
}
