//! Istio resources as an operator writes them: the input of the translation.
//!
//! Only the fields the translation reads are typed; everything else in a resource is
//! kept out of the way (Istio accepts many fields this mesh does not model, and an
//! operator's YAML should load as it is). A field of the wrong type is an error that
//! names the file, the line and the field path, as `kubectl apply` would refuse it.
//! Resources are read from YAML text holding any number of `---`-separated
//! documents; kinds the translation does not use (Deployments, Services, ...) are
//! skipped, so a whole `manifests/` folder loads.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A bad resource: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind} {field}: {reason}")]
pub struct ResourceError {
    pub file: String,
    /// 1-based line of the offending field (of its document where unknown).
    pub line: usize,
    pub kind: String,
    /// The field path inside the resource, `spec.http[0].retries.attempts`.
    pub field: String,
    pub reason: String,
}

/// `metadata` of a resource.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Meta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One resource with its place of origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Named<S> {
    pub meta: Meta,
    /// The namespace it lives in (its own, else the default of the set it was read into).
    pub namespace: String,
    pub spec: S,
    /// `file:line` of its document.
    pub origin: String,
}

impl<S> Named<S> {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.meta.name)
    }
}

// === networking.istio.io VirtualService ===

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct VirtualService {
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Absent: `mesh` only.
    #[serde(default)]
    pub gateways: Option<Vec<String>>,
    #[serde(default)]
    pub http: Vec<HttpRoute>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatch>,
    #[serde(default)]
    pub route: Vec<RouteDestination>,
    #[serde(default)]
    pub retries: Option<HttpRetry>,
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HttpMatch {
    #[serde(default)]
    pub uri: Option<StringMatch>,
    #[serde(default)]
    pub method: Option<StringMatch>,
    /// Gateways this match applies to (absent: the VirtualService's).
    #[serde(default)]
    pub gateways: Option<Vec<String>>,
}

/// Istio's StringMatch: exactly one of the three.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct StringMatch {
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct RouteDestination {
    pub destination: Destination,
    #[serde(default)]
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Destination {
    pub host: String,
    #[serde(default)]
    pub subset: Option<String>,
    #[serde(default)]
    pub port: Option<PortSelector>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct PortSelector {
    pub number: u32,
}

/// `HTTPRetry`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    #[serde(default)]
    pub attempts: i32,
    #[serde(default)]
    pub retry_on: Option<String>,
    #[serde(default)]
    pub per_try_timeout: Option<String>,
    #[serde(default)]
    pub retry_ignore_previous_hosts: Option<bool>,
    #[serde(default)]
    pub backoff: Option<String>,
}

// === networking.istio.io DestinationRule ===

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRule {
    pub host: String,
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    #[serde(default)]
    pub load_balancer: Option<LoadBalancer>,
    #[serde(default)]
    pub connection_pool: Option<ConnectionPool>,
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct LoadBalancer {
    #[serde(default)]
    pub simple: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ConnectionPool {
    #[serde(default)]
    pub tcp: Option<TcpSettings>,
    #[serde(default)]
    pub http: Option<HttpSettings>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TcpSettings {
    #[serde(default)]
    pub max_connections: Option<u32>,
    #[serde(default)]
    pub connect_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    #[serde(default)]
    pub http1_max_pending_requests: Option<u32>,
    #[serde(default)]
    pub http2_max_requests: Option<u32>,
    #[serde(default)]
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    #[serde(default, rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<u32>,
    #[serde(default)]
    pub consecutive_gateway_errors: Option<u32>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub base_ejection_time: Option<String>,
    #[serde(default)]
    pub max_ejection_percent: Option<u32>,
    #[serde(default)]
    pub min_health_percent: Option<u32>,
}

// === networking.istio.io Gateway ===

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Gateway {
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Server {
    pub port: ServerPort,
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ServerPort {
    pub number: u32,
    #[serde(default)]
    pub protocol: String,
}

// === extensions.istio.io WasmPlugin ===

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WasmPlugin {
    #[serde(default)]
    pub selector: Option<Selector>,
    #[serde(default)]
    pub target_refs: Vec<TargetRef>,
    #[serde(default, rename = "match")]
    pub matches: Vec<TrafficSelector>,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub plugin_name: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub fail_strategy: Option<String>,
    #[serde(default)]
    pub plugin_config: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct TargetRef {
    #[serde(default)]
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct TrafficSelector {
    #[serde(default)]
    pub mode: Option<String>,
}

// === gateway.networking.k8s.io HTTPRoute ===

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteK8s {
    #[serde(default)]
    pub parent_refs: Vec<TargetRef>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
    #[serde(default)]
    pub timeouts: Option<HttpRouteTimeouts>,
    #[serde(default)]
    pub retry: Option<HttpRouteRetry>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HttpRouteMatch {
    #[serde(default)]
    pub path: Option<HttpPathMatch>,
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HttpPathMatch {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct BackendRef {
    pub name: String,
    #[serde(default)]
    pub port: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    #[serde(default)]
    pub request: Option<String>,
    #[serde(default)]
    pub backend_request: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HttpRouteRetry {
    #[serde(default)]
    pub attempts: Option<i32>,
    #[serde(default)]
    pub codes: Vec<u16>,
    #[serde(default)]
    pub backoff: Option<String>,
}

// === security.istio.io PeerAuthentication ===

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct PeerAuthentication {
    #[serde(default)]
    pub mtls: Option<Mtls>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Mtls {
    #[serde(default)]
    pub mode: Option<String>,
}

/// The resources of a mesh, by kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub virtual_services: Vec<Named<VirtualService>>,
    pub destination_rules: Vec<Named<DestinationRule>>,
    pub gateways: Vec<Named<Gateway>>,
    pub wasm_plugins: Vec<Named<WasmPlugin>>,
    pub http_routes: Vec<Named<HttpRouteK8s>>,
    pub peer_authentications: Vec<Named<PeerAuthentication>>,
}

/// The head of a document: enough to pick its type.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// A document of a known kind, its spec still to read.
#[derive(Deserialize)]
struct Document<S> {
    #[serde(default)]
    metadata: Meta,
    spec: S,
}

impl Resources {
    /// Reads every document of `text` (from `file`, for messages); resources without a
    /// namespace go to `namespace`.
    pub fn parse(file: &str, text: &str, namespace: &str) -> Result<Resources, ResourceError> {
        let mut resources = Resources::default();
        resources.add(file, text, namespace)?;
        Ok(resources)
    }

    /// Reads every `.yaml`/`.yml` file under `dir`, recursively, in name order.
    pub fn read_dir(dir: &Path, namespace: &str) -> Result<Resources, ResourceError> {
        let mut resources = Resources::default();
        let mut files = Vec::new();
        collect_yaml(dir, &mut files).map_err(|e| ResourceError {
            file: dir.display().to_string(),
            line: 0,
            kind: "directory".into(),
            field: String::new(),
            reason: e.to_string(),
        })?;
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| ResourceError {
                file: path.display().to_string(),
                line: 0,
                kind: "file".into(),
                field: String::new(),
                reason: e.to_string(),
            })?;
            resources.add(&path.display().to_string(), &text, namespace)?;
        }
        Ok(resources)
    }

    /// Adds the documents of `text`.
    pub fn add(&mut self, file: &str, text: &str, namespace: &str) -> Result<(), ResourceError> {
        for (line, document) in documents(text) {
            if document.trim().is_empty()
                || document
                    .lines()
                    .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            {
                continue;
            }
            let error = |kind: &str, e: serde_saphyr::Error, field: String| ResourceError {
                file: file.to_owned(),
                line: line + crate::yaml::line(&e).map_or(0, |l| l.saturating_sub(1)),
                kind: kind.to_owned(),
                field,
                reason: crate::yaml::message(&e),
            };
            let head: Head = serde_saphyr::from_str(document)
                .map_err(|e| error("document", e, String::new()))?;
            let group = head.api_version.split('/').next().unwrap_or("");
            let origin = format!("{file}:{line}");
            let kind = head.kind.as_str();
            macro_rules! read {
                ($list:expr) => {{
                    let doc = typed(document).map_err(|failure| {
                        let (e, field) = *failure;
                        error(kind, e, field)
                    })?;
                    $list.push(named(doc, namespace, origin));
                }};
            }
            match (group, kind) {
                ("networking.istio.io", "VirtualService") => read!(self.virtual_services),
                ("networking.istio.io", "DestinationRule") => read!(self.destination_rules),
                ("networking.istio.io", "Gateway") => read!(self.gateways),
                ("extensions.istio.io", "WasmPlugin") => read!(self.wasm_plugins),
                ("gateway.networking.k8s.io", "HTTPRoute") => read!(self.http_routes),
                ("security.istio.io", "PeerAuthentication") => read!(self.peer_authentications),
                _ => {}
            }
        }
        Ok(())
    }

    /// Lays `other` over these resources: a resource of the same kind, namespace and
    /// name replaces the one here, any other is added.
    pub fn overlay(&mut self, other: Resources) {
        fn merge<S>(base: &mut Vec<Named<S>>, top: Vec<Named<S>>) {
            for resource in top {
                match base.iter_mut().find(|r| r.key() == resource.key()) {
                    Some(slot) => *slot = resource,
                    None => base.push(resource),
                }
            }
        }
        merge(&mut self.virtual_services, other.virtual_services);
        merge(&mut self.destination_rules, other.destination_rules);
        merge(&mut self.gateways, other.gateways);
        merge(&mut self.wasm_plugins, other.wasm_plugins);
        merge(&mut self.http_routes, other.http_routes);
        merge(&mut self.peer_authentications, other.peer_authentications);
    }
}

fn collect_yaml(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The documents of a YAML stream, each with the 1-based line it starts on.
fn documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            out.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = index + 2;
        }
        offset += line.len();
    }
    out.push((start_line, &text[start..]));
    out
}

fn typed<S: DeserializeOwned>(
    document: &str,
) -> Result<Document<S>, Box<(serde_saphyr::Error, String)>> {
    let mut field = String::new();
    serde_saphyr::with_deserializer_from_str(document, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            field = e.path().to_string();
            e.into_inner()
        })
    })
    .map_err(|e| Box::new((e, field)))
}

fn named<S>(doc: Document<S>, namespace: &str, origin: String) -> Named<S> {
    Named {
        namespace: doc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned()),
        meta: doc.metadata,
        spec: doc.spec,
        origin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_of_every_kind_are_read_and_others_skipped() {
        let text = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec: {replicas: 2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payments, namespace: ecommerce}
spec:
  hosts: [payment-service]
  http:
  - retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: payment-service}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payments}
spec:
  host: payment-service
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 5}}
";
        let resources = Resources::parse("mesh.yaml", text, "ecommerce").expect("parses");
        assert_eq!(resources.virtual_services.len(), 1);
        let vs = &resources.virtual_services[0];
        assert_eq!(vs.origin, "mesh.yaml:6");
        assert_eq!(vs.spec.gateways, None);
        assert_eq!(
            vs.spec.http[0].retries.as_ref().map(|r| r.attempts),
            Some(3)
        );
        assert_eq!(resources.destination_rules[0].namespace, "ecommerce");
    }

    #[test]
    fn a_field_of_the_wrong_type_names_file_line_and_field() {
        let text = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payments}
spec:
  hosts: [payment-service]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: orders}
spec:
  hosts: [order-service]
  http:
  - retries:
      attempts: three
";
        let error = Resources::parse("vs.yaml", text, "ecommerce").expect_err("refused");
        assert_eq!(error.file, "vs.yaml");
        assert_eq!(error.line, 14, "{error}");
        assert_eq!(error.field, "spec.http[0].retries.attempts");
        assert_eq!(error.kind, "VirtualService");
    }

    #[test]
    fn an_overlay_replaces_by_name_and_adds_the_rest() {
        let base = Resources::parse(
            "a.yaml",
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: p}\nspec: {host: a}\n",
            "ecommerce",
        )
        .expect("parses");
        let top = Resources::parse(
            "b.yaml",
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: p}\nspec: {host: b}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: q}\nspec: {host: c}\n",
            "ecommerce",
        )
        .expect("parses");
        let mut merged = base;
        merged.overlay(top);
        let hosts: Vec<&str> = merged
            .destination_rules
            .iter()
            .map(|d| d.spec.host.as_str())
            .collect();
        assert_eq!(hosts, ["b", "c"]);
    }
}
