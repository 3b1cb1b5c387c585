//! Live checks of a deployed mesh (`c4mesh check`): the operator's test script as code.
//!
//! Each check reads the cluster's objects (as `kubectl get ... -o json` returns them)
//! and says pass or fail, what it saw, and — when it fails — the fix, because the
//! failures of this mesh are known ones: pods without their sidecar because the
//! injection webhook timed out (EKS security groups block TCP 15017 from the control
//! plane), VirtualServices not bound to the gateway, DestinationRules whose
//! `maxEjectionPercent` can never eject one of two replicas, a Service that never got
//! its NLB, a filter plugin in the wrong mode or on the wrong side of the sidecars,
//! proxies that drop the filter's stats before Prometheus can scrape them. The
//! checks are pure functions of the objects, so they are tested on the generated
//! manifests with the state a cluster adds; reading the cluster and sending the request
//! through the NLB are the command's edges. A plugin's `pluginConfig` is read with the
//! filter's own parser, so the check sees what the proxies will run.

use c4mesh_filter_core::{Config, Mode};
use serde_json::Value;

/// The namespace of the services.
pub const NAMESPACE: &str = "ecommerce";
/// The gateway the VirtualServices bind to.
pub const GATEWAY: &str = "ecommerce-gateway";

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub pass: bool,
    /// What was seen.
    pub detail: String,
    /// What to do about a failure, one fix per line.
    pub fix: String,
}

/// The resources `c4mesh check` reads, in the form `kubectl get` takes.
pub const RESOURCES: &str = "pods,services,virtualservices.networking.istio.io,destinationrules.networking.istio.io,gateways.networking.istio.io,wasmplugins.extensions.istio.io,peerauthentications.security.istio.io";

/// The objects of a `kubectl get -o json` answer (a `List`) or of several YAML/JSON
/// documents.
pub fn objects(documents: Vec<Value>) -> Vec<Value> {
    let mut all = Vec::new();
    for doc in documents {
        match doc.get("items").and_then(Value::as_array) {
            Some(items)
                if doc
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                all.extend(items.iter().cloned());
            }
            _ if doc.is_object() => all.push(doc),
            _ => {}
        }
    }
    all
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
    let kind = kind.to_owned();
    objects
        .iter()
        .filter(move |o| o.get("kind").and_then(Value::as_str) == Some(kind.as_str()))
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn name(value: &Value) -> String {
    format!(
        "{}/{}",
        text(value, "/metadata/namespace"),
        text(value, "/metadata/name")
    )
}

fn strings(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Every check that needs only the objects, in the order an operator would look.
pub fn run(objects: &[Value], host: &str) -> Vec<Finding> {
    vec![
        pods(objects),
        virtual_services(objects, host),
        gateway(objects, host),
        destination_rules(objects),
        wasm_plugins(objects),
        safe_retries(objects),
        plugin_grants(objects),
        stats_inclusion(objects),
        mtls(objects),
        load_balancer(objects).0,
    ]
}

/// The label Istio puts on the pods of the proxy it deploys for a Gateway API `Gateway`.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// A pod of the proxy Istio deploys for a Gateway API `Gateway` (the proxy is the pod:
/// no sidecar).
fn is_gateway_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/labels")
        .and_then(|l| l.get(GATEWAY_NAME_LABEL))
        .is_some()
}

/// Pods in the namespace are Running with every container ready, the sidecar included
/// (the Gateway API gateway's pods aside).
pub fn pods(objects: &[Value]) -> Finding {
    let pods: Vec<&Value> = kind(objects, "Pod")
        .filter(|p| text(p, "/metadata/namespace") == NAMESPACE && !is_gateway_pod(p))
        .collect();
    let bad: Vec<String> = pods
        .iter()
        .filter_map(|p| {
            let phase = text(p, "/status/phase");
            let statuses = p
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let total = statuses.map_or(0, Vec::len);
            let ready = statuses.map_or(0, |s| {
                s.iter()
                    .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                    .count()
            });
            let sidecar = statuses.is_some_and(|s| {
                s.iter()
                    .any(|c| c.get("name").and_then(Value::as_str) == Some("istio-proxy"))
            });
            (phase != "Running" || ready != total || total < 2 || !sidecar)
                .then(|| format!("{} {phase} {ready}/{total}", text(p, "/metadata/name")))
        })
        .collect();
    Finding {
        check: "pods running with their sidecar (2/2)",
        pass: !pods.is_empty() && bad.is_empty(),
        detail: if pods.is_empty() {
            format!("no pods in namespace {NAMESPACE}")
        } else if bad.is_empty() {
            format!(
                "{} pods, all Running with every container ready",
                pods.len()
            )
        } else {
            format!("not ready: {}", bad.join(", "))
        },
        fix: "label the namespace (kubectl label ns ecommerce istio-injection=enabled) and \
              restart the deployments; if injection times out, allow TCP 15017 from the EKS \
              control plane security group to the nodes (or inject by hand with istioctl \
              kube-inject)"
            .into(),
    }
}

/// VirtualServices bind `ecommerce-gateway` and serve the API host.
pub fn virtual_services(objects: &[Value], host: &str) -> Finding {
    let services: Vec<&Value> = kind(objects, "VirtualService")
        .filter(|v| text(v, "/metadata/namespace") == NAMESPACE)
        .collect();
    let bad: Vec<String> = services
        .iter()
        .filter_map(|v| {
            let gateways = strings(v, "/spec/gateways");
            let hosts = strings(v, "/spec/hosts");
            let bound = gateways
                .iter()
                .any(|g| g.rsplit('/').next() == Some(GATEWAY));
            let serves = hosts.iter().any(|h| h == host || h == "*");
            (!bound || !serves)
                .then(|| format!("{} (gateways {gateways:?}, hosts {hosts:?})", name(v)))
        })
        .collect();
    Finding {
        check: "VirtualServices bound to ecommerce-gateway with the API host",
        pass: !services.is_empty() && bad.is_empty(),
        detail: if services.is_empty() {
            format!("no VirtualServices in namespace {NAMESPACE}")
        } else if bad.is_empty() {
            format!("{} VirtualServices", services.len())
        } else {
            format!("unbound or wrong host: {}", bad.join("; "))
        },
        fix: "set spec.gateways to [ecommerce-gateway] and spec.hosts to the API host \
              (apply manifests/services/)"
            .into(),
    }
}

/// The Gateway selects the ingress gateway pods and serves the host.
pub fn gateway(objects: &[Value], host: &str) -> Finding {
    let found = kind(objects, "Gateway")
        .find(|g| text(g, "/metadata/name") == GATEWAY && g.pointer("/spec/servers").is_some());
    let (pass, detail) = match found {
        None => (false, format!("no Gateway named {GATEWAY}")),
        Some(g) => {
            let selector = text(g, "/spec/selector/istio");
            let hosts: Vec<String> = g
                .pointer("/spec/servers")
                .and_then(Value::as_array)
                .map(|servers| servers.iter().flat_map(|s| strings(s, "/hosts")).collect())
                .unwrap_or_default();
            let serves = hosts
                .iter()
                .any(|h| h == host || h == "*" || h.ends_with(&format!("/{host}")));
            (
                selector == "ingressgateway" && serves,
                format!("{} selector istio={selector:?}, hosts {hosts:?}", name(g)),
            )
        }
    };
    Finding {
        check: "Gateway selects istio: ingressgateway and serves the host",
        pass,
        detail,
        fix: "apply manifests/gateway.yaml (selector istio: ingressgateway, hosts api.c4ang.com and *)".into(),
    }
}

/// Every service has a DestinationRule whose outlier detection can eject one of two
/// replicas.
pub fn destination_rules(objects: &[Value]) -> Finding {
    let rules: Vec<&Value> = kind(objects, "DestinationRule")
        .filter(|d| text(d, "/metadata/namespace") == NAMESPACE)
        .collect();
    let bad: Vec<String> = rules
        .iter()
        .filter_map(|d| {
            let outlier = d.pointer("/spec/trafficPolicy/outlierDetection");
            let percent = outlier
                .and_then(|o| o.get("maxEjectionPercent"))
                .and_then(Value::as_u64)
                .unwrap_or(10);
            let consecutive = outlier
                .and_then(|o| o.get("consecutive5xxErrors"))
                .and_then(Value::as_u64);
            (outlier.is_none() || percent < 50 || consecutive == Some(0))
                .then(|| format!("{} (maxEjectionPercent {percent})", name(d)))
        })
        .collect();
    Finding {
        check: "DestinationRules eject one host of two",
        pass: !rules.is_empty() && bad.is_empty(),
        detail: if rules.is_empty() {
            format!("no DestinationRules in namespace {NAMESPACE}")
        } else if bad.is_empty() {
            format!(
                "{} DestinationRules with outlier detection at maxEjectionPercent >= 50",
                rules.len()
            )
        } else {
            format!("cannot eject: {}", bad.join(", "))
        },
        fix: "set outlierDetection.maxEjectionPercent to 50 or more: with 2 replicas the \
              default 10% never ejects a host (apply manifests/services/)"
            .into(),
    }
}

const FIX_APPLY: &str = "apply manifests/wasm-plugins.yaml (regenerate it with `c4mesh \
                         manifests` after building the filter, so the sha256 matches)";
const FIX_CONFIG: &str = "correct the field of the pluginConfig the filter names (Envoy \
                          refuses the plugin: its proxies keep their previous configuration \
                          or run without the filter), or apply the generated manifests";
const FIX_GATEWAY_MODE: &str = "set pluginConfig.mode to \"gateway\" (or leave it out) in the \
                                gateway plugins: a gateway routes by the API host and path";
const FIX_SIDECAR_MODE: &str = "set pluginConfig.mode to \"sidecar\" in the ecommerce plugin: \
                                a sidecar routes by the service it calls, not the API host";
const FIX_CLIENT_ONLY: &str = "set spec.match to [{mode: CLIENT}] in the ecommerce plugin: the \
                               filter belongs on the outbound side of each sidecar, where \
                               Istio retries; on the inbound side too every call is counted \
                               twice";
const FIX_GATEWAY_PODS: &str = "give the ecommerce plugin a selector that the service pods \
                                match and the gateway's do not (manifests/wasm-plugins.yaml \
                                selects app.kubernetes.io/part-of: ecommerce, which every \
                                generated Deployment carries): the Gateway API gateway gets \
                                the filter in gateway mode from \
                                manifests/gateway-api/wasm-plugin.yaml";

/// Whether the plugin attaches to Gateway API gateways by reference.
fn targets_gateways(plugin: &Value) -> bool {
    plugin.pointer("/spec/targetRef").is_some()
        || plugin
            .pointer("/spec/targetRefs")
            .and_then(Value::as_array)
            .is_some_and(|refs| !refs.is_empty())
}

fn selects_ingress(plugin: &Value) -> bool {
    text(plugin, "/spec/selector/matchLabels/istio") == "ingressgateway"
}

/// Whether a plugin without target references loads into the pod.
fn selects_pod(plugin: &Value, pod: &Value) -> bool {
    text(plugin, "/metadata/namespace") == text(pod, "/metadata/namespace")
        && plugin
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .is_none_or(|labels| {
                labels.iter().all(|(key, value)| {
                    pod.pointer("/metadata/labels").and_then(|l| l.get(key)) == Some(value)
                })
            })
}

/// Why a plugin's configuration is not one the filter runs with; its message is the
/// finding's.
#[derive(Debug, thiserror::Error)]
enum PluginConfigError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Config(#[from] c4mesh_filter_core::ConfigError),
}

/// The configuration the filter runs with, as the filter's own parser reads it.
fn plugin_config(plugin: &Value) -> Result<Config, PluginConfigError> {
    let bytes = match plugin.pointer("/spec/pluginConfig") {
        Some(config) => serde_json::to_vec(config)?,
        None => Vec::new(),
    };
    Ok(Config::parse(&bytes)?)
}

/// What is wrong with one plugin of the mesh, each with its fix.
type Problems = Vec<(String, &'static str)>;

fn gateway_problems(plugin: &Value, problems: &mut Problems) {
    match plugin_config(plugin) {
        Err(e) => problems.push((format!("{}: {e}", name(plugin)), FIX_CONFIG)),
        Ok(config) if config.mode != Mode::Gateway => problems.push((
            format!("{} runs in {} mode", name(plugin), config.mode.as_str()),
            FIX_GATEWAY_MODE,
        )),
        Ok(_) => {}
    }
}

fn sidecar_problems(plugin: &Value, gateway_pods: &[&Value], problems: &mut Problems) {
    let plugin_name = name(plugin);
    match plugin_config(plugin) {
        Err(e) => problems.push((format!("{plugin_name}: {e}"), FIX_CONFIG)),
        Ok(config) => {
            if config.mode != Mode::Sidecar {
                problems.push((
                    format!("{plugin_name} runs in {} mode", config.mode.as_str()),
                    FIX_SIDECAR_MODE,
                ));
            }
        }
    }
    let modes: Vec<&str> = plugin
        .pointer("/spec/match")
        .and_then(Value::as_array)
        .map(|selectors| selectors.iter().map(|s| text(s, "/mode")).collect())
        .unwrap_or_default();
    if modes.is_empty() {
        problems.push((
            format!("{plugin_name} has no match, so it runs on the inbound side too"),
            FIX_CLIENT_ONLY,
        ));
    } else if modes.iter().any(|m| *m != "CLIENT") {
        problems.push((
            format!("{plugin_name} is not outbound only (match modes {modes:?})"),
            FIX_CLIENT_ONLY,
        ));
    }
    let gateways: Vec<&str> = gateway_pods
        .iter()
        .filter(|pod| selects_pod(plugin, pod))
        .map(|pod| text(pod, "/metadata/name"))
        .collect();
    if !gateways.is_empty() {
        problems.push((
            format!("{plugin_name} also loads into gateway pods {gateways:?}"),
            FIX_GATEWAY_PODS,
        ));
    }
}

/// The filter is loaded into the gateway and the sidecars, pinned by digest, each in the
/// mode of where it runs: the gateway's (`istio: ingressgateway`, and the Gateway API
/// alternative's, attached by `targetRefs`) in gateway mode; the sidecars' (the
/// services' namespace) in sidecar mode, on the outbound side only (`match` CLIENT). How
/// many retries each grants against its routes is [`plugin_grants`]'s check.
pub fn wasm_plugins(objects: &[Value]) -> Finding {
    let plugins: Vec<&Value> = kind(objects, "WasmPlugin").collect();
    let ingress: Vec<&Value> = plugins
        .iter()
        .copied()
        .filter(|p| text(p, "/metadata/namespace") == "istio-system" && selects_ingress(p))
        .collect();
    let gateway_api: Vec<&Value> = plugins
        .iter()
        .copied()
        .filter(|p| targets_gateways(p))
        .collect();
    let sidecars: Vec<&Value> = plugins
        .iter()
        .copied()
        .filter(|p| {
            text(p, "/metadata/namespace") == NAMESPACE
                && !targets_gateways(p)
                && !selects_ingress(p)
        })
        .collect();
    let gateway_pods: Vec<&Value> = kind(objects, "Pod").filter(|p| is_gateway_pod(p)).collect();

    let mut problems = Problems::new();
    if ingress.is_empty() {
        problems.push((
            "no gateway plugin (istio-system, selector istio: ingressgateway)".into(),
            FIX_APPLY,
        ));
    }
    if sidecars.is_empty() {
        problems.push((format!("no sidecar plugin in {NAMESPACE}"), FIX_APPLY));
    }
    for plugin in ingress.iter().chain(&gateway_api) {
        gateway_problems(plugin, &mut problems);
    }
    for plugin in &sidecars {
        sidecar_problems(plugin, &gateway_pods, &mut problems);
    }
    let unpinned: Vec<String> = plugins
        .iter()
        .filter(|p| text(p, "/spec/url").is_empty() || text(p, "/spec/sha256").len() != 64)
        .map(|p| name(p))
        .collect();
    if !unpinned.is_empty() {
        problems.push((
            format!("without url or sha256: {}", unpinned.join(", ")),
            FIX_APPLY,
        ));
    }

    let names = |plugins: &[&Value]| {
        plugins
            .iter()
            .map(|p| name(p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let detail = if problems.is_empty() {
        let mut seen = format!(
            "gateway mode on {}; sidecar mode, outbound only on {}",
            names(&ingress),
            names(&sidecars)
        );
        if !gateway_api.is_empty() {
            seen.push_str(&format!(
                "; gateway mode on Gateway API gateways by {}",
                names(&gateway_api)
            ));
        }
        seen + "; all pinned by sha256"
    } else {
        problems
            .iter()
            .map(|(what, _)| what.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut fixes: Vec<&str> = Vec::new();
    for (_, fix) in &problems {
        if !fixes.contains(fix) {
            fixes.push(fix);
        }
    }
    Finding {
        check: "WasmPlugins on the gateway and the sidecars, each in its mode, pinned by sha256",
        pass: problems.is_empty(),
        detail,
        fix: fixes.join("\n"),
    }
}

/// A pod of the ingress gateway (`istio: ingressgateway` in istio-system).
fn is_ingress_pod(pod: &Value) -> bool {
    text(pod, "/metadata/namespace") == "istio-system"
        && text(pod, "/metadata/labels/istio") == "ingressgateway"
}

/// Every proxy the filter runs in keeps its stats for Prometheus: the services' pods, the
/// ingress gateway's and the Gateway API gateway's (in the services' namespace, from the
/// Gateway's `infrastructure.annotations`) carry a `proxy.istio.io/config` annotation whose
/// `proxyStatsMatcher` includes `wasmcustom.c4mesh`. Istio reads that annotation when
/// the pod starts, so a pod older than its annotation does not count.
pub fn stats_inclusion(objects: &[Value]) -> Finding {
    use c4mesh_manifests::observability::{
        includes_filter_stats, PROXY_CONFIG_ANNOTATION, STATS_PREFIX,
    };
    let pods: Vec<&Value> = kind(objects, "Pod")
        .filter(|p| text(p, "/metadata/namespace") == NAMESPACE || is_ingress_pod(p))
        .collect();
    let ingress = pods.iter().filter(|p| is_ingress_pod(p)).count();
    let mut problems: Vec<String> = pods
        .iter()
        .filter_map(|pod| {
            let annotation = pod
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(PROXY_CONFIG_ANNOTATION))
                .and_then(Value::as_str);
            let problem = match annotation.map(includes_filter_stats) {
                None => format!("no {PROXY_CONFIG_ANNOTATION}"),
                Some(Ok(true)) => return None,
                Some(Ok(false)) => {
                    format!("{STATS_PREFIX} not in proxyStatsMatcher.inclusionPrefixes")
                }
                Some(Err(e)) => format!("{PROXY_CONFIG_ANNOTATION}: {e}"),
            };
            Some(format!("{} ({problem})", name(pod)))
        })
        .collect();
    if ingress == 0 {
        problems.push("no ingress gateway pods (istio-system, istio: ingressgateway)".into());
    }
    Finding {
        check: "proxies keep the filter's stats for Prometheus (wasmcustom.c4mesh)",
        pass: problems.is_empty(),
        detail: if problems.is_empty() {
            format!(
                "{} pods, {ingress} of them the ingress gateway's, include {STATS_PREFIX}",
                pods.len()
            )
        } else {
            format!("without the inclusion: {}", problems.join(", "))
        },
        fix: "apply manifests/services/ (each Deployment's pod template carries the \
              proxy.istio.io/config annotation) and restart the deployments; for the ingress \
              gateway: kubectl -n istio-system patch deployment istio-ingressgateway \
              --patch-file manifests/istio-system/ingress-gateway-stats.patch.yaml; for the \
              Gateway API gateway: apply manifests/gateway-api/gateway.yaml \
              (infrastructure.annotations)"
            .into(),
    }
}

/// Mutual TLS is STRICT for the services (in their namespace or mesh-wide).
pub fn mtls(objects: &[Value]) -> Finding {
    let strict = kind(objects, "PeerAuthentication").find(|p| {
        let ns = text(p, "/metadata/namespace");
        (ns == NAMESPACE || ns == "istio-system")
            && p.pointer("/spec/selector").is_none()
            && text(p, "/spec/mtls/mode") == "STRICT"
    });
    Finding {
        check: "mTLS STRICT",
        pass: strict.is_some(),
        detail: strict.map_or_else(
            || "no STRICT PeerAuthentication".into(),
            |p| format!("{} STRICT", name(p)),
        ),
        fix: "apply manifests/peer-authentication.yaml".into(),
    }
}

/// The ingress gateway's Service has its NLB; returns the finding and the hostname.
pub fn load_balancer(objects: &[Value]) -> (Finding, Option<String>) {
    let service = kind(objects, "Service").find(|s| {
        text(s, "/metadata/namespace") == "istio-system"
            && text(s, "/metadata/name") == "istio-ingressgateway"
    });
    let hostname = service
        .and_then(|s| s.pointer("/status/loadBalancer/ingress/0"))
        .and_then(|i| i.get("hostname").or_else(|| i.get("ip")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let detail = match (service, &hostname) {
        (None, _) => "no Service istio-system/istio-ingressgateway".to_owned(),
        (Some(s), None) => format!(
            "type {} without a load balancer address yet",
            text(s, "/spec/type")
        ),
        (Some(_), Some(h)) => format!("NLB {h}"),
    };
    (
        Finding {
            check: "ingress gateway has its NLB",
            pass: hostname.is_some(),
            detail,
            fix:
                "apply manifests/istio-system/ingress-gateway-service.yaml (type LoadBalancer with \
                  the aws-load-balancer annotations) and check the AWS Load Balancer Controller's \
                  logs; then point the Route53 CNAME for the API host at the NLB"
                    .into(),
        },
        hostname,
    )
}

/// The request through the gateway: a route of the API answers, not the filter's
/// `unknown_host`/`no_route` and not a 5xx.
pub fn request(status: Option<u16>, reason: Option<&str>, detail: String) -> Finding {
    let pass = matches!(status, Some(s) if s < 500)
        && !matches!(reason, Some("unknown_host" | "no_route"));
    Finding {
        check: "a request through the gateway reaches a service",
        pass,
        detail,
        fix: "check the Route53 CNAME and the NLB security groups (TCP 80/443), then \
              `kubectl logs -n istio-system deploy/istio-ingressgateway` for the filter's \
              configuration and the route"
            .into(),
    }
}

mod retries;
pub use retries::{plugin_grants, safe_retries};

#[cfg(test)]
mod tests;
