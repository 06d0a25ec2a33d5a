//! The successful answers of the access matrix checked against the response schemas of the
//! committed OpenAPI document, by jsonschema (which shares no code with Herald): the document
//! is generated from the code, but its schemas are written by hand, and only real answers
//! show where they are wrong or too loose.

use herald_ingest::api::Operation;
use serde_json::{Value, json};

use crate::support::run_python;

/// The successful answers of one run, gathered to be checked in one Python process.
#[derive(Default)]
pub struct Answers(Vec<Value>);

impl Answers {
    /// Keeps `body` if `operation` documents a success body.
    pub fn keep(&mut self, operation: &Operation, status: u16, body: &Value) {
        if operation.success.1.is_some() {
            self.0
                .push(json!({"operation": operation.name, "status": status, "body": body}));
        }
    }

    /// Fails with every mismatch: operation, status, JSON path and message.
    pub fn check(self) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json");
        let document: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("openapi.json"))
                .expect("JSON");
        let input = json!({"document": document, "responses": self.0});
        let output = run_python(
            concat!(env!("CARGO_MANIFEST_DIR"), "/python/validate_responses.py"),
            &input,
        );
        assert!(
            output.status.success(),
            "answers that do not match openapi.json:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
