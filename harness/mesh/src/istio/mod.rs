//! The mesh as Istio 1.28 builds it (SPEC 3.5): Istio resources in, each proxy's
//! configuration out.
//!
//! Everything the local mesh, the conformance suite's envoy target and its emulated
//! router know of Istio comes from here: [`resources`] reads what an operator applies
//! (the generated `manifests/` by default, or any Gateway, VirtualService,
//! DestinationRule, WasmPlugin, HTTPRoute and PeerAuthentication YAML), [`translate`]
//! turns it into what istiod 1.28.0 sends the ingress gateway and each pod's sidecar
//! ([`plan::ProxyPlan`]), rule by rule with the Istio source each rule follows, and
//! `crate::envoy` renders a plan as an Envoy bootstrap. No other description of
//! Istio's behaviour exists in the product, so a change in what Istio does is a change
//! here, pinned by this module's tests.

pub mod generated;
pub mod plan;
pub mod resources;
pub mod retry;
pub mod translate;

pub use plan::ProxyPlan;
pub use resources::{ResourceError, Resources};
pub use translate::Workloads;

use std::time::Duration;

/// A resource the translation cannot model or that Istio would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {kind} {field}: {reason}")]
pub struct TranslateError {
    /// `file:line` of the resource's document.
    pub origin: String,
    pub kind: String,
    pub field: String,
    pub reason: String,
}

impl TranslateError {
    pub fn new(origin: &str, kind: &str, field: &str, reason: impl Into<String>) -> TranslateError {
        TranslateError {
            origin: origin.to_owned(),
            kind: kind.to_owned(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A protobuf duration as Istio's API takes it: `10s`, `0.250s`, `250ms`, `1m`, `1h`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((text, ""), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("expected a duration such as 10s or 250ms, got {text:?}"))?;
    let seconds = match unit {
        "s" => value,
        "ms" => value / 1000.0,
        "us" | "µs" => value / 1_000_000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "expected a duration such as 10s or 250ms, got {text:?}"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// Every proxy of a mesh: the ingress gateway and the sidecar of each pod that calls
/// others, by pod (`service/index`).
#[derive(Debug, Clone, PartialEq)]
pub struct MeshPlan {
    pub gateway: ProxyPlan,
    pub sidecars: Vec<ProxyPlan>,
}

impl MeshPlan {
    /// Translates `resources` for the gateway and the sidecars of `pods`.
    pub fn translate(
        resources: &Resources,
        workloads: &Workloads,
        pods: &[(String, usize)],
    ) -> Result<MeshPlan, TranslateError> {
        Ok(MeshPlan {
            gateway: translate::gateway(resources, workloads)?,
            sidecars: pods
                .iter()
                .map(|(service, index)| translate::sidecar(resources, workloads, service, *index))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The sidecar of a pod.
    pub fn sidecar(&self, pod: &str) -> Option<&ProxyPlan> {
        self.sidecars.iter().find(|p| p.name == pod)
    }
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations_in_every_unit_istio_accepts() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("0.250s"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert!(duration("soon").is_err());
        assert!(duration("10").is_err());
    }
}
