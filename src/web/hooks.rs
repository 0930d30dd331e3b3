//! `POST /hooks/{project}`: hands the delivery to `crate::intake` and renders its answer.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tracing::instrument;

use super::client::ClientAddress;
use super::{AppState, body};
use crate::deliveries::{self, MAX_NAME};
use crate::intake::{Answer, Delivery};

#[instrument(skip_all, fields(project = %deliveries::bounded(&name, MAX_NAME), %client, delivery = tracing::field::Empty))]
pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    client: ClientAddress,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let delivery = Delivery {
        client: client.0,
        headers: &headers,
        body: body::read_limited(&state.body_budget, &headers, body),
    };
    state.intake.accept(&name, delivery).await.into_response()
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
