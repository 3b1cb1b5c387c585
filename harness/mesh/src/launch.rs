//! One launcher for every local mesh (`c4mesh up`, `demo`, the conformance envoy target,
//! the end-to-end tests): the Envoys of a [`MeshPlan`], each pod's sidecar first (its
//! address is where the pod's simulated service sends its calls), then the entry proxy.

use crate::envoy::{Envoy, EnvoyConfig, EnvoyError, ServiceRoute, TlsListener, Wasm};
use crate::istio::MeshPlan;
use crate::topology::PodCalls;

/// Why a mesh's proxies could not all start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("no sidecar plan for {0}")]
    NoSidecarPlan(String),
    #[error("starting the {proxy} proxy")]
    Envoy {
        proxy: String,
        #[source]
        source: Box<EnvoyError>,
    },
}

/// The error of starting one proxy.
fn starting(proxy: &str) -> impl FnOnce(EnvoyError) -> LaunchError + '_ {
    move |source| LaunchError::Envoy {
        proxy: proxy.to_owned(),
        source: Box::new(source),
    }
}

/// What runs where, and the hosts behind every cluster.
pub struct Launch {
    pub workers: u32,
    /// The module of the entry proxy's Wasm filters ([`Wasm::None`]: without them).
    pub gateway_wasm: Wasm,
    /// The module of the sidecars' Wasm filters.
    pub sidecar_wasm: Wasm,
    /// The entry proxy also serves HTTPS with this certificate.
    pub tls: Option<TlsListener>,
    /// The hosts of each cluster, by service.
    pub services: Vec<ServiceRoute>,
}

/// The running Envoys of a mesh.
pub struct Proxies {
    pub gateway: Envoy,
    /// Each pod's sidecar: `service/index` and its Envoy.
    pub sidecars: Vec<(String, Envoy)>,
}

/// Starts the sidecar of every pod of `pods` from its plan, tells the pod where it
/// listens, then starts the entry proxy.
pub fn start(plan: &MeshPlan, launch: Launch, pods: &[PodCalls]) -> Result<Proxies, LaunchError> {
    let mut sidecars = Vec::new();
    for pod in pods {
        let Some(sidecar) = plan.sidecar(&pod.pod) else {
            return Err(LaunchError::NoSidecarPlan(pod.pod.clone()));
        };
        let config = EnvoyConfig::of_plan(
            launch.workers,
            launch.sidecar_wasm.clone(),
            launch.services.clone(),
            sidecar.clone(),
        );
        let envoy = Envoy::start(&config).map_err(starting(&pod.pod))?;
        let _ = pod.sidecar.set(envoy.listener);
        sidecars.push((pod.pod.clone(), envoy));
    }
    let gateway = Envoy::start(&EnvoyConfig {
        tls: launch.tls,
        ..EnvoyConfig::of_plan(
            launch.workers,
            launch.gateway_wasm,
            launch.services,
            plan.gateway.clone(),
        )
    })
    .map_err(starting("gateway"))?;
    Ok(Proxies { gateway, sidecars })
}
