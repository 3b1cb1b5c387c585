//! The resources the generated manifests would apply for a filter configuration: the
//! default input of the translation, so the local mesh runs what `manifests/` deploys
//! (`c4mesh_manifests::mesh_resources`, the generator of `manifests/` itself).

use super::resources::{ResourceError, Resources};
use super::translate::Workloads;
use std::collections::BTreeMap;

/// The workloads of the generated mesh: the configuration's services in the
/// manifests' namespace, port and labels, and the ingress gateway in `istio-system`.
pub fn workloads(services: &[String]) -> Workloads {
    let options = c4mesh_manifests::MeshOptions::for_module(&[]);
    let (key, value) = c4mesh_manifests::PART_OF;
    Workloads {
        namespace: options.namespace,
        services: services.to_vec(),
        port: u16::try_from(options.container_port).unwrap_or(8080),
        pod_labels: BTreeMap::from([
            (key.to_owned(), value.to_owned()),
            ("version".to_owned(), "v1".to_owned()),
        ]),
        gateway_labels: BTreeMap::from([
            ("istio".to_owned(), "ingressgateway".to_owned()),
            ("app".to_owned(), "istio-ingressgateway".to_owned()),
        ]),
        gateway_namespace: "istio-system".into(),
        path_normalization: Default::default(),
    }
}

/// What went wrong generating the resources (callers say that it is the mesh's
/// resources being generated).
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A plugin configuration given as text that is not JSON.
    #[error("{what} is not JSON")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing the manifests")]
    Manifests(#[source] c4mesh_manifests::Error),
    #[error("translating the ingress gateway's resources")]
    Translate(#[source] super::TranslateError),
    #[error("{0}")]
    Read(#[from] ResourceError),
}

/// The Istio resources generated for a gateway plugin configuration and a sidecar
/// plugin configuration (JSON text; empty means the defaults).
pub fn resources(gateway_config: &str, sidecar_config: &str) -> Result<Resources, GenerateError> {
    let parse = |text: &str, what: &'static str| -> Result<serde_json::Value, GenerateError> {
        if text.trim().is_empty() {
            return Ok(serde_json::json!({}));
        }
        serde_json::from_str(text).map_err(|source| GenerateError::Json { what, source })
    };
    let mut gateway =
        c4mesh_manifests::gateway_plugin_config().map_err(GenerateError::Manifests)?;
    c4mesh_manifests::overlay(
        &mut gateway,
        &parse(gateway_config, "the gateway configuration")?,
    );
    let options = c4mesh_manifests::MeshOptions::for_module(&[]);
    let mut sidecar = c4mesh_manifests::sidecar_plugin_config(&options.namespace)
        .map_err(GenerateError::Manifests)?;
    c4mesh_manifests::overlay(
        &mut sidecar,
        &parse(sidecar_config, "the sidecar configuration")?,
    );
    let text = c4mesh_manifests::mesh_resources(&options, gateway, sidecar)
        .map_err(GenerateError::Manifests)?;
    Ok(Resources::parse(
        "generated manifests",
        &text,
        &options.namespace,
    )?)
}

/// The services a filter configuration routes to, in route order, without repeats
/// (the defaults when the text is not a valid configuration).
pub fn services_of_config(config: &str) -> Vec<String> {
    let config = c4mesh_filter_core::Config::parse(config.as_bytes())
        .unwrap_or_else(|_| c4mesh_filter_core::Config::defaults());
    services(&config)
}

/// The services a configuration routes to, in route order, without repeats.
pub fn services(config: &c4mesh_filter_core::Config) -> Vec<String> {
    let mut services: Vec<String> = Vec::new();
    for route in &config.routes {
        if !services.contains(&route.service) {
            services.push(route.service.clone());
        }
    }
    services
}

/// The gateway configuration with a route for each `(service, prefix)` of `extra` it
/// lacks (named after the service).
fn with_routes(gateway_config: &str, extra: &[(String, String)]) -> Result<String, GenerateError> {
    let services = services_of_config(gateway_config);
    let missing: Vec<_> = extra
        .iter()
        .filter(|(service, _)| !services.contains(service) && service != crate::topology::EXTERNAL)
        .collect();
    if missing.is_empty() {
        return Ok(gateway_config.to_owned());
    }
    let mut config: serde_json::Value = if gateway_config.trim().is_empty() {
        serde_json::from_str(c4mesh_filter_core::DEFAULT_CONFIG_JSON)
    } else {
        serde_json::from_str(gateway_config)
    }
    .map_err(|source| GenerateError::Json {
        what: "the gateway configuration",
        source,
    })?;
    if let Some(routes) = config.get_mut("routes").and_then(|r| r.as_array_mut()) {
        for (service, prefix) in missing {
            routes.push(serde_json::json!({"name": service, "prefix": prefix, "service": service}));
        }
    }
    Ok(config.to_string())
}

/// The ingress gateway of the generated mesh for a gateway plugin configuration, with
/// a route for each `(service, prefix)` of `extra` the configuration lacks.
pub fn gateway_plan(
    gateway_config: &str,
    extra: &[(String, String)],
) -> Result<super::ProxyPlan, GenerateError> {
    let config = with_routes(gateway_config, extra)?;
    let resources = resources(&config, "")?;
    let workloads = workloads(&services_of_config(&config));
    super::translate::gateway(&resources, &workloads).map_err(GenerateError::Translate)
}

/// VirtualServices bound to `mesh` for `services`, each retrying `retry_on`
/// `attempts` times: what operators add to ride out pod restarts, and what makes
/// retries multiply per hop (SPEC 0, S4).
pub fn mesh_retries(services: &[&str], attempts: u32, retry_on: &str) -> Resources {
    let namespace = crate::mesh::NAMESPACE;
    let mut text = String::new();
    for service in services {
        text.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {service}-mesh, namespace: {namespace}}}\nspec:\n  hosts: [{service}]\n  http:\n  - route: [{{destination: {{host: {service}, port: {{number: 8080}}}}}}]\n    retries: {{attempts: {attempts}, retryOn: \"{retry_on}\"}}\n"
        ));
    }
    // The text is made here from service names: it always parses.
    Resources::parse("mesh retries", &text, namespace).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn mesh_retries_bind_to_mesh_and_retry_as_asked() {
        let resources = super::mesh_retries(&["saga-tracker"], 3, "5xx");
        let vs = &resources.virtual_services[0];
        assert_eq!(vs.spec.gateways, None);
        let retries = vs.spec.http[0]
            .retries
            .as_ref()
            .map(|r| (r.attempts, r.retry_on.clone()));
        assert_eq!(retries, Some((3, Some("5xx".to_owned()))));
    }

    #[test]
    fn a_bad_configuration_is_an_error_of_its_kind() {
        use super::GenerateError;
        let error = super::resources("{", "").expect_err("not JSON");
        assert!(
            matches!(
                error,
                GenerateError::Json {
                    what: "the gateway configuration",
                    ..
                }
            ),
            "{error:?}"
        );
        let error = super::resources(r#"{"routes": 5}"#, "").expect_err("no routes");
        assert!(
            matches!(
                error,
                GenerateError::Manifests(c4mesh_manifests::Error::Config(_))
            ),
            "{error:?}"
        );
    }
}
