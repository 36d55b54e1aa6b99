//! OpenCode's own OpenAPI document (served by the real server at `GET /doc`) as the judge of
//! what the stub answers and emits: response bodies against the operation's 200 schema, events
//! against `GlobalEvent`.

use serde_json::{Value, json};

use crate::http::Client;

pub struct OpenApi {
    doc: Value,
}

impl OpenApi {
    /// Fetches the document from a running OpenCode server.
    pub async fn fetch(opencode: &mut Client) -> OpenApi {
        let (status, doc) = opencode.json("GET", "/doc", &Value::Null).await;
        assert_eq!(status, 200, "GET /doc: {doc}");
        assert!(
            doc["components"]["schemas"]["GlobalEvent"].is_object(),
            "OpenCode's /doc has no GlobalEvent schema"
        );
        OpenApi { doc }
    }

    /// The JSON schema of `method path`'s 200 JSON response; `path` is the template as written in
    /// the document (e.g. `/project/{projectID}/directories`).
    pub fn response(&self, method: &str, path: &str) -> Value {
        let schema = &self.doc["paths"][path][method.to_ascii_lowercase()]["responses"]["200"]["content"]
            ["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "OpenCode's document has no 200 JSON response for {method} {path}"
        );
        schema.clone()
    }

    /// A named component schema.
    pub fn component(&self, name: &str) -> Value {
        assert!(
            self.doc["components"]["schemas"][name].is_object(),
            "no component {name}"
        );
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// The violations of `instance` against `schema` (empty when valid), each with its location.
    pub fn violations(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let mut root = schema.clone();
        root["components"] = self.doc["components"].clone();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap_or_else(|err| panic!("OpenCode's schema does not compile: {err}"));
        validator
            .iter_errors(instance)
            .map(|err| format!("at {}: {err}", err.instance_path()))
            .collect()
    }

    /// Panics with every violation when `instance` does not match `schema`.
    pub fn check(&self, what: &str, schema: &Value, instance: &Value) {
        let violations = self.violations(schema, instance);
        assert!(
            violations.is_empty(),
            "{what} does not match OpenCode's schema:\n  {}\n{}",
            violations.join("\n  "),
            serde_json::to_string_pretty(instance).unwrap_or_default()
        );
    }
}
