//! The OpenAPI document, committed beside the code (`docs/openapi.json`).
//! Served as the running server is: without the signature requirement when
//! it runs `--auth none`, so that a client (or a fuzzer) reads what holds.

use axum::http::header;
use axum::response::IntoResponse;

pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// The document for a server that asks for signatures (`signed`) or not.
pub fn served(signed: bool) -> String {
    if signed {
        return DOCUMENT.to_string();
    }
    let Ok(mut document) = serde_json::from_str::<serde_json::Value>(DOCUMENT) else {
        return DOCUMENT.to_string();
    };
    if let Some(paths) = document.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for operation in paths.values_mut().filter_map(|p| p.as_object_mut()) {
            for (_, op) in operation.iter_mut() {
                if let Some(op) = op.as_object_mut() {
                    op.remove("security");
                    if let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut())
                    {
                        responses.remove("401");
                        responses.remove("403");
                    }
                }
            }
        }
    }
    document.to_string()
}

pub async fn document(
    axum::extract::State(api): axum::extract::State<std::sync::Arc<super::Api>>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        api.document.clone(),
    )
}
