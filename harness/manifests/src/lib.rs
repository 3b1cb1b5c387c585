//! The mesh as Kubernetes manifests, generated from one source.
//!
//! The filter's default configuration (`c4mesh_filter_core::DEFAULT_CONFIG_JSON`) is
//! the mesh definition: its routes are the services, their prefixes, retries, timeouts
//! and outlier settings. Everything an operator applies is generated from it: per
//! service a Deployment, Service, VirtualService and DestinationRule; the Istio
//! Gateway; the two WasmPlugins whose `pluginConfig` is that same document (the
//! gateway's in gateway mode, the sidecars' overlaid with the sidecar settings,
//! `SIDECAR_CONFIG_JSON`); STRICT mTLS; the ingress gateway's NLB Service; and the
//! Gateway API alternative in its own folder, with its own WasmPlugin. Core objects are
//! `k8s-openapi` types, Istio and Gateway API objects typed structs, and a test
//! validates them all against the real CRD schemas.
//!
//! ## Choices
//!
//! - DestinationRule outlier detection: `consecutive5xxErrors` from the filter's
//!   `outlier.consecutive_5xx`, `baseEjectionTime` from `base_ejection`, and
//!   `maxEjectionPercent: 50`, so that one host of two can be ejected (with Envoy's
//!   default of 10% a 2-replica service never ejects a host).
//! - WasmPlugins run in phase `STATS` (after authentication and authorisation, before
//!   Istio's stats, so rejected requests spend no budget and the filter's local
//!   replies are counted). The gateway's fails closed (without the filter the path
//!   rules would not hold at the edge); the sidecars' fails open (a module that cannot
//!   be fetched must not cut the services off from each other).
//! - Where each plugin runs (SPEC 2.8). The gateway's runs in `mode: gateway` on the
//!   pods labelled `istio: ingressgateway`. The sidecars' runs in `mode: sidecar` with
//!   `match: [{mode: CLIENT}]`, on the outbound side of each service's proxy where
//!   Istio's in-mesh retries happen, with `retry.attempts: 2` and Istio's `retry_on`:
//!   the filter only ever lowers what Istio would retry. It selects the label every
//!   service pod carries ([`PART_OF`]): without a selector it would also load into the
//!   proxy Istio deploys for the Gateway API `Gateway` in the same namespace (Istio
//!   applies namespace-wide plugins to such gateways, and a gateway listener counts as
//!   `CLIENT`). That proxy carries no `istio: ingressgateway` label either, so the
//!   Gateway API folder attaches its own gateway-mode plugin with `targetRefs`.
//! - Observability is applied with the mesh ([`observability`]): every Deployment's pod
//!   template carries the `proxy.istio.io/config` annotation that keeps the filter's
//!   stats, `istio-system/ingress-gateway-stats.patch.yaml` adds it to the ingress
//!   gateway (installed by `istioctl`, not by these manifests), and `observability/`
//!   holds the Prometheus rules (plain, as a `PrometheusRule`, and as a patch of Istio's
//!   sample Prometheus), their `promtool` unit tests and the Grafana dashboard.
//! - Load from inside the cluster is generated on demand, not into `manifests/`:
//!   [`replay_job`] writes the Indexed Job that runs `c4mesh replay` as N shards
//!   against the ingress gateway's Service, with the operator's image, rate and
//!   duration.
//! - The namespace carries no injection label: sidecars are injected with `istioctl
//!   kube-inject` until the webhook is reachable (docs/deploy.md).

pub mod gateway_api;
pub mod istio;
mod objects;
pub mod observability;
pub mod oci;
pub mod replay_job;

pub use objects::{
    envoy_outlier_detection, gateway_api_plugin_config, gateway_plugin_config, generate,
    mesh_resources, outlier_detection, overlay, sha256_hex, sidecar_plugin_config, Manifests,
    MeshOptions, GATEWAY, INGRESS_GATEWAY_NAMESPACE, INGRESS_GATEWAY_SERVICE,
    NON_IDEMPOTENT_METHODS, PART_OF, SAFE_RETRY_ON,
};
pub use replay_job::{replay_job, ReplayJob, ReplayJobError, ReplayJobOptions};

/// What can go wrong writing or checking manifests.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("serialising {what}: {source}")]
    Yaml {
        what: String,
        source: serde_saphyr::SerializeError,
    },
    #[error("the filter configuration")]
    Config(#[source] c4mesh_filter_core::ConfigError),
    #[error("the filter metric {0:?} has no description in the observability table")]
    Undescribed(String),
    #[error("serialising {what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
}
