//! Istio resources as typed structs: only the fields this mesh sets, named as the CRDs
//! name them, so a typo is a compile error and the CRD schema check stays meaningful.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `metadata` of a custom resource.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Meta {
    pub fn new(name: &str, namespace: &str) -> Meta {
        Meta {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            labels: BTreeMap::new(),
        }
    }
}

/// A custom resource: `apiVersion`, `kind`, `metadata`, `spec`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resource<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: Meta,
    pub spec: S,
}

impl<S> Resource<S> {
    pub fn new(api_version: &str, kind: &str, metadata: Meta, spec: S) -> Resource<S> {
        Resource {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            metadata,
            spec,
        }
    }
}

// === networking.istio.io/v1 VirtualService ===

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VirtualServiceSpec {
    pub hosts: Vec<String>,
    pub gateways: Vec<String>,
    pub http: Vec<HttpRoute>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HttpRoute {
    pub name: String,
    #[serde(rename = "match")]
    pub matches: Vec<HttpMatch>,
    pub route: Vec<RouteDestination>,
    pub retries: Retries,
    pub timeout: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HttpMatch {
    pub uri: StringMatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<RegexMatch>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegexMatch {
    pub regex: String,
}

/// A path condition: exactly one of the two.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteDestination {
    pub destination: Destination,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Destination {
    pub host: String,
    pub port: PortSelector,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PortSelector {
    pub number: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    pub attempts: u32,
    pub retry_on: String,
}

// === networking.istio.io/v1 DestinationRule ===

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    pub host: String,
    pub traffic_policy: TrafficPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    pub load_balancer: LoadBalancer,
    pub connection_pool: ConnectionPool,
    pub outlier_detection: OutlierDetection,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadBalancer {
    pub simple: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionPool {
    pub tcp: TcpSettings,
    pub http: HttpSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TcpSettings {
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    pub http2_max_requests: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    #[serde(rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: u32,
    pub interval: String,
    pub base_ejection_time: String,
    pub max_ejection_percent: u32,
}

// === networking.istio.io/v1 Gateway ===

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GatewaySpec {
    pub selector: BTreeMap<String, String>,
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Server {
    pub port: ServerPort,
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTls>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerPort {
    pub number: u32,
    pub name: String,
    pub protocol: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerTls {
    pub mode: String,
    pub credential_name: String,
}

// === extensions.istio.io/v1alpha1 WasmPlugin ===

/// Which proxies load the plugin: at most one of `selector` and `target_refs` (the CRD
/// refuses both), and on which side of them (`matches`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Gateway API Gateways whose deployed proxies load the plugin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Traffic the plugin sees; empty means all of it.
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<TrafficSelector>,
    pub url: String,
    pub sha256: String,
    pub phase: String,
    pub fail_strategy: String,
    pub plugin_config: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyTargetReference {
    pub group: String,
    pub kind: String,
    pub name: String,
}

/// `mode` is a WorkloadMode: `CLIENT` is the outbound side of a sidecar (and every
/// gateway listener), `SERVER` the inbound side.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrafficSelector {
    pub mode: String,
}

// === security.istio.io/v1 PeerAuthentication ===

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerAuthenticationSpec {
    pub mtls: Mtls,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mtls {
    pub mode: String,
}
