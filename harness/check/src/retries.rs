//! What the cluster's retry configuration does, read through the translation
//! (`c4mesh_mesh::istio`): the routes every proxy gets from the cluster's Gateways,
//! VirtualServices, DestinationRules and WasmPlugins, as istiod 1.28 builds them.
//!
//! Two mistakes are named with their fix: a route that retries `POST` or `PATCH` on a
//! failure after the service may have acted (a 5xx, a reset after sending, a timeout:
//! the payment made twice; SPEC 4), and a c4mesh plugin that grants more retries than
//! the routes of its proxy retry (through `x-envoy-max-retries` the filter would raise
//! what Istio does instead of bounding it) or states of them what they do not do
//! (`proxy_applies`: the filter would leave the route's own retries or timeout in force
//! where its budget counted on its own).

use super::{kind, name, text, Finding, NAMESPACE};
use c4mesh_mesh::istio::plan::{ProxyPlan, RetryPolicy};
use c4mesh_mesh::istio::{generated, translate, Resources};
use serde_json::Value;

/// Retry conditions that may repeat a request the service already received.
const UNSAFE_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "retriable-4xx",
    "retriable-headers",
    "envoy-ratelimited",
];

const FIX_UNSAFE: &str = "give POST and PATCH a route of their own before the others, \
    matching method {regex: POST|PATCH}, with retries.retryOn \
    connect-failure,refused-stream,reset-before-request (manifests/services/ shows it): \
    a POST retried after a 5xx, a reset after sending or a timeout can repeat a payment";

const FIX_GRANTS: &str = "set the plugin's retry.attempts (top level and per route) to the \
    retries of the routes its proxies run: the filter sets x-envoy-max-retries, so a \
    larger grant raises what Istio would retry; and list in proxy_applies only what \
    every route applies itself (retries: num_retries equal to retry.attempts; timeout: \
    the route's timeout), or remove proxy_applies so that the filter sets both headers";

/// The cluster's Istio resources, read as the translation reads files.
fn resources(objects: &[Value]) -> Result<Resources, String> {
    let mut out = Resources::default();
    for object in objects {
        let text = serde_saphyr::to_string(object).map_err(|e| e.to_string())?;
        out.add(&name(object), &text, NAMESPACE)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The services of the namespace: its Services, else the mesh's six.
fn services(objects: &[Value]) -> Vec<String> {
    let found: Vec<String> = kind(objects, "Service")
        .filter(|s| text(s, "/metadata/namespace") == NAMESPACE)
        .map(|s| text(s, "/metadata/name").to_owned())
        .collect();
    if found.is_empty() {
        generated::services_of_config("")
    } else {
        found
    }
}

/// Every proxy's plan: the ingress gateway and one sidecar per service.
fn plans(objects: &[Value]) -> Result<Vec<ProxyPlan>, String> {
    let resources = resources(objects)?;
    let services = services(objects);
    let workloads = generated::workloads(&services);
    let mut plans = vec![translate::gateway(&resources, &workloads).map_err(|e| e.to_string())?];
    for service in &services {
        plans.push(
            translate::sidecar(&resources, &workloads, service, 0).map_err(|e| e.to_string())?,
        );
    }
    Ok(plans)
}

/// A check that cannot run: the cluster's Istio resources do not translate.
fn untranslatable(check: &'static str, error: &str) -> Finding {
    Finding {
        check,
        pass: false,
        detail: format!("the Istio resources do not translate: {error}"),
        fix: "correct the resource and field named".into(),
    }
}

/// Whether a policy may retry a request after the service received it.
fn unsafe_policy(policy: &RetryPolicy) -> Vec<String> {
    let mut reasons: Vec<String> = policy
        .retry_on
        .split(',')
        .map(str::trim)
        .filter(|kind| UNSAFE_CONDITIONS.contains(kind))
        .map(str::to_owned)
        .collect();
    if !policy.retriable_status_codes.is_empty() {
        reasons.push(format!("status codes {:?}", policy.retriable_status_codes));
    }
    if policy.per_try_timeout.is_some() && !reasons.is_empty() {
        reasons.push("per-try timeout".into());
    }
    reasons
}

/// No route of any proxy retries `POST` or `PATCH` on a failure after sending.
pub fn safe_retries(objects: &[Value]) -> Finding {
    let check = "POST and PATCH retried only before the service received them";
    let plans = match plans(objects) {
        Ok(plans) => plans,
        Err(error) => return untranslatable(check, &error),
    };
    let mut bad: Vec<String> = Vec::new();
    for plan in &plans {
        for host in &plan.virtual_hosts {
            for (index, route) in host.routes.iter().enumerate() {
                // A method reaches a route unless an earlier route of the same path takes
                // it (the generated POST|PATCH route before the one for every method).
                let takes = |method: &str| {
                    route.method.as_ref().is_none_or(|m| m.matches(method))
                        && !host.routes[..index].iter().any(|earlier| {
                            earlier.path == route.path
                                && earlier.method.as_ref().is_none_or(|m| m.matches(method))
                        })
                };
                let Some(policy) = &route.retry else {
                    continue;
                };
                let methods: Vec<&str> =
                    ["POST", "PATCH"].into_iter().filter(|m| takes(m)).collect();
                let reasons = unsafe_policy(policy);
                if methods.is_empty()
                    || reasons.is_empty()
                    || route.cluster == translate::PASSTHROUGH
                {
                    continue;
                }
                let entry = format!(
                    "{} route {} ({}) retries {} on {}",
                    plan.name,
                    if route.source.is_empty() {
                        &route.name
                    } else {
                        &route.source
                    },
                    route.cluster,
                    methods.join(" and "),
                    reasons.join(", ")
                );
                if !bad.contains(&entry) {
                    bad.push(entry);
                }
            }
        }
    }
    Finding {
        check,
        pass: bad.is_empty(),
        detail: if bad.is_empty() {
            format!(
                "{} proxies' routes: POST and PATCH retried on connection failures only",
                plans.len()
            )
        } else {
            bad.join("; ")
        },
        fix: FIX_UNSAFE.into(),
    }
}

/// No c4mesh plugin grants more retries on a route than the route's proxy retries, and
/// what a plugin states of its proxy's routes (`proxy_applies`, R6) holds on every
/// route it runs on: with `retries` stated the filter leaves a full grant to the route,
/// so the route must retry exactly `retry.attempts` times; with `timeout` stated it
/// leaves the timeout to the route, which must have the filter's.
pub fn plugin_grants(objects: &[Value]) -> Finding {
    let check = "c4mesh plugins grant no more retries than their routes, as they state";
    let plans = match plans(objects) {
        Ok(plans) => plans,
        Err(error) => return untranslatable(check, &error),
    };
    let mut bad: Vec<String> = Vec::new();
    let mut seen = 0;
    for plan in &plans {
        for filter in &plan.filters {
            // Only the c4mesh filter's configuration parses as one.
            let Ok(config) = c4mesh_filter_core::Config::parse(filter.configuration.as_bytes())
            else {
                continue;
            };
            seen += 1;
            let applies = config.proxy_applies;
            let proxy_routes = plan.virtual_hosts.iter().flat_map(|h| &h.routes);
            for route in &config.routes {
                for proxy_route in proxy_routes.clone().filter(|r| r.cluster == route.service) {
                    let retries = proxy_route.retry.as_ref().map_or(0, |p| p.num_retries);
                    let attempts = route.retry.attempts;
                    let at = format!("{} on {}: route {}", filter.name, plan.name, route.name);
                    let entry = if attempts > retries {
                        Some(format!(
                            "{at} grants {attempts} where the proxy retries {retries}"
                        ))
                    } else if applies.retries && attempts != retries {
                        Some(format!(
                            "{at} states proxy_applies retries, but grants {attempts} where \
                             the proxy retries {retries}"
                        ))
                    } else {
                        None
                    };
                    let timeout_ms = u64::try_from(proxy_route.timeout.as_millis()).unwrap_or(0);
                    let timeout = (applies.timeout && timeout_ms != route.timeout_ms).then(|| {
                        format!(
                            "{at} states proxy_applies timeout, but times out after {} ms \
                             where the proxy's route takes {}",
                            route.timeout_ms,
                            if timeout_ms == 0 {
                                "none".to_owned()
                            } else {
                                format!("{timeout_ms} ms")
                            }
                        )
                    });
                    for entry in entry.into_iter().chain(timeout) {
                        if !bad.contains(&entry) {
                            bad.push(entry);
                        }
                    }
                }
            }
        }
    }
    Finding {
        check,
        pass: bad.is_empty(),
        detail: if bad.is_empty() {
            format!("{seen} plugin instances within their routes' retries, as they state")
        } else {
            bad.join("; ")
        },
        fix: FIX_GRANTS.into(),
    }
}
