//! What the manifest tests share: the schemas of `tests/schemas/` and the check of one
//! object against them.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Schemas by (apiVersion, kind): the CRDs' and those of the Kubernetes kinds that
/// `k8s-openapi` does not stand in for here.
pub fn schemas() -> BTreeMap<(String, String), Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("schemas") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let file: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
            let key = (
                file["apiVersion"].as_str().expect("apiVersion").to_owned(),
                file["kind"].as_str().expect("kind").to_owned(),
            );
            out.insert(key, file["openAPIV3Schema"].clone());
        }
    }
    out
}

/// Validates one object: the mesh's core kinds through `k8s-openapi`, custom resources
/// against their CRD schema, the replay Job's kinds (Job, ConfigMap) against the
/// Kubernetes 1.33 schema. Returns the errors.
pub fn validate(doc: &Value, schemas: &BTreeMap<(String, String), Value>) -> Result<(), String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    let typed = |r: Result<(), serde_json::Error>| r.map_err(|e| format!("{kind}: {e}"));
    match (api_version, kind) {
        ("v1", "Namespace") => typed(
            serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(doc.clone()).map(drop),
        ),
        ("v1", "Service") => typed(
            serde_json::from_value::<k8s_openapi::api::core::v1::Service>(doc.clone()).map(drop),
        ),
        ("apps/v1", "Deployment") => typed(
            serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(doc.clone()).map(drop),
        ),
        _ => {
            let schema = schemas
                .get(&(api_version.to_owned(), kind.to_owned()))
                .ok_or_else(|| format!("no schema for {api_version} {kind}"))?;
            let validator =
                jsonschema::validator_for(schema).map_err(|e| format!("schema: {e}"))?;
            let errors: Vec<String> = validator
                .iter_errors(doc)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(format!("{kind}: {}", errors.join("; ")))
            }
        }
    }
}
