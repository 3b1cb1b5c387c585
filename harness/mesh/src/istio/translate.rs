//! Istio resources to each proxy's configuration, rule by rule as istiod 1.28.0 does
//! it. Every function names the source it follows (path and function at tag 1.28.0);
//! docs/harness.md lists what is not modelled and what that changes.

use super::plan::{
    CircuitBreakers, ClusterPolicy, ConnectionManager, FailurePolicy, LbPolicy, MethodMatch,
    OutlierPolicy, PathMatch, ProxyPlan, Role, Route, VirtualHost, WasmFilter,
};
use super::resources::{
    DestinationRule, HttpMatch, HttpRoute, Named, Resources, StringMatch, VirtualService,
};
use super::retry::{convert_policy, default_policy};
use super::{duration, TranslateError};
use std::collections::BTreeMap;
use std::time::Duration;

/// The pass-through cluster of a sidecar: anything that is not a mesh service.
pub const PASSTHROUGH: &str = "external";

/// The workloads the resources apply to: the services of one namespace, each behind
/// one Kubernetes Service port, and the ingress gateway's pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workloads {
    pub namespace: String,
    pub services: Vec<String>,
    pub port: u16,
    /// The labels of every service pod besides `app: <service>`.
    pub pod_labels: BTreeMap<String, String>,
    /// The labels of the ingress gateway's pods.
    pub gateway_labels: BTreeMap<String, String>,
    /// The ingress gateway's namespace.
    pub gateway_namespace: String,
    /// `meshConfig.pathNormalization.normalization`.
    pub path_normalization: PathNormalization,
}

/// `meshConfig.pathNormalization.normalization` (DEFAULT means BASE).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PathNormalization {
    None,
    #[default]
    Base,
    MergeSlashes,
    DecodeAndMergeSlashes,
}

impl Workloads {
    /// The fully qualified name of a service.
    pub fn fqdn(&self, service: &str) -> String {
        format!("{service}.{}.svc.cluster.local", self.namespace)
    }

    /// The mesh service a VirtualService or DestinationRule `host` names, read in
    /// namespace `from`: the short name (in its own namespace), `name.ns`,
    /// `name.ns.svc` or the FQDN.
    pub fn service_of(&self, host: &str, from: &str) -> Option<&str> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.services
            .iter()
            .find(|s| {
                let ns = &self.namespace;
                (host == **s && from == ns)
                    || host == format!("{s}.{ns}")
                    || host == format!("{s}.{ns}.svc")
                    || host == self.fqdn(s)
            })
            .map(String::as_str)
    }

    fn labels_of(&self, service: &str) -> BTreeMap<String, String> {
        let mut labels = self.pod_labels.clone();
        labels.insert("app".into(), service.to_owned());
        labels
    }
}

/// The connection manager of every proxy, by `meshConfig.pathNormalization`
/// (`pilot/pkg/networking/core/listener_builder.go`, `buildHTTPConnectionManager`):
/// escaped slashes kept to start with; NONE leaves paths alone; BASE (the default)
/// sets `normalize_path`; MERGE_SLASHES adds `merge_slashes`;
/// DECODE_AND_MERGE_SLASHES also unescapes slashes (`UNESCAPE_AND_FORWARD`).
pub fn connection_manager(workloads: &Workloads) -> ConnectionManager {
    let mode = workloads.path_normalization;
    ConnectionManager {
        normalize_path: mode != PathNormalization::None,
        merge_slashes: matches!(
            mode,
            PathNormalization::MergeSlashes | PathNormalization::DecodeAndMergeSlashes
        ),
        escaped_slashes_unchanged: mode != PathNormalization::DecodeAndMergeSlashes,
    }
}

/// The ingress gateway's proxy: the HTTP server of every Gateway that selects its pods,
/// and the routes of the VirtualServices bound to those Gateways
/// (`pilot/pkg/networking/core/gateway.go`, `buildGatewayHTTPRouteConfig`).
pub fn gateway(resources: &Resources, workloads: &Workloads) -> Result<ProxyPlan, TranslateError> {
    let mut virtual_hosts: Vec<VirtualHost> = Vec::new();
    for gw in resources
        .gateways
        .iter()
        .filter(|g| selects(&g.spec.selector, &workloads.gateway_labels))
    {
        // The plain-text server; the HTTPS one serves the same routes on port 443.
        let Some(server) = gw
            .spec
            .servers
            .iter()
            .find(|s| {
                matches!(
                    s.port.protocol.to_ascii_uppercase().as_str(),
                    "HTTP" | "HTTP2"
                )
            })
            .or_else(|| gw.spec.servers.first())
        else {
            continue;
        };
        let server_hosts: Vec<String> = server
            .hosts
            .iter()
            .map(|h| strip_namespace(h).to_ascii_lowercase())
            .collect();
        for vs in sorted(&resources.virtual_services) {
            if !bound_to(vs, &gw.namespace, &gw.meta.name) {
                continue;
            }
            let routes = routes_of(vs, workloads, Some((&gw.namespace, &gw.meta.name)))?;
            for host in intersection(&vs.spec.hosts, &server_hosts) {
                add_routes(&mut virtual_hosts, &host, server.port.number, &routes);
            }
        }
    }
    for host in &mut virtual_hosts {
        catch_alls_last(&mut host.routes);
    }
    // Envoy prefers exact domains over wildcards whatever their order; keep `*` last
    // for people reading the bootstrap.
    virtual_hosts.sort_by_key(|v| v.domains[0] == "*");
    Ok(ProxyPlan {
        name: "gateway".into(),
        role: Role::Gateway,
        connection_manager: connection_manager(workloads),
        // `buildGatewayHTTPRouteConfig`: `ignore_port_in_host_matching` for all but
        // proxyless gRPC.
        ignore_port_in_host_matching: true,
        virtual_hosts,
        filters: wasm_filters(resources, workloads, None)?,
        clusters: clusters(resources, workloads)?,
    })
}

/// A pod's sidecar, outbound: one virtual host per mesh service under its Kubernetes
/// names, with the routes of the VirtualServices bound to `mesh` for it, else the
/// default route (`pilot/pkg/networking/core/httproute.go`,
/// `BuildSidecarOutboundVirtualHosts`; the default route
/// `pilot/pkg/networking/core/route/route.go`, `BuildDefaultHTTPOutboundRoute`), and
/// the pass-through virtual host for everything else (`allow_any`).
pub fn sidecar(
    resources: &Resources,
    workloads: &Workloads,
    service: &str,
    index: usize,
) -> Result<ProxyPlan, TranslateError> {
    let mut virtual_hosts = Vec::new();
    for callee in &workloads.services {
        let mut routes = Vec::new();
        for vs in sorted(&resources.virtual_services) {
            let for_callee = vs
                .spec
                .hosts
                .iter()
                .any(|h| workloads.service_of(h, &vs.namespace) == Some(callee.as_str()));
            if for_callee && bound_to_mesh(vs) {
                routes.extend(routes_of(vs, workloads, None)?);
            }
        }
        if routes.is_empty() {
            routes.push(default_outbound_route(callee));
        }
        virtual_hosts.push(VirtualHost {
            name: format!("{}:{}", workloads.fqdn(callee), workloads.port),
            domains: sidecar_domains(callee, workloads),
            include_request_attempt_count: true,
            routes,
        });
    }
    virtual_hosts.push(VirtualHost {
        name: "allow_any".into(),
        domains: vec!["*".into()],
        include_request_attempt_count: true,
        routes: vec![Route {
            name: "allow_any".into(),
            source: String::new(),
            path: PathMatch::Prefix("/".into()),
            method: None,
            cluster: PASSTHROUGH.into(),
            timeout: Duration::ZERO,
            retry: None,
        }],
    });
    let mut clusters = clusters(resources, workloads)?;
    clusters.push(ClusterPolicy {
        name: PASSTHROUGH.into(),
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        lb_policy: LbPolicy::LeastRequest,
        outlier: None,
        healthy_panic_threshold: None,
        circuit_breakers: CircuitBreakers::UNLIMITED,
    });
    Ok(ProxyPlan {
        name: format!("{service}/{index}"),
        role: Role::Sidecar {
            service: service.to_owned(),
        },
        connection_manager: connection_manager(workloads),
        // See `sidecar_domains`: the ported names are listed instead.
        ignore_port_in_host_matching: false,
        virtual_hosts,
        filters: wasm_filters(resources, workloads, Some(service))?,
        clusters,
    })
}

/// The proxy Istio deploys for a Gateway API `Gateway` named `name` in the services'
/// namespace: the HTTPRoutes whose `parentRefs` name it, and the WasmPlugins whose
/// `targetRefs` do (`pilot/pkg/config/kube/gateway/conversion.go`, `convertHTTPRoute`,
/// which builds a VirtualService with Gateway API semantics):
/// - `PathPrefix` loses a trailing `/` and becomes `path_separated_prefix` (`/` stays a
///   plain prefix); `method` an exact `:method` match;
/// - without `retry` the route keeps Istio's default policy (2 retries, no status
///   codes); with it, `attempts` (default 2) on the default conditions plus the codes;
///   `attempts: 0` removes the policy;
/// - `timeouts.request` is the route timeout; `timeouts.backendRequest` is the
///   per-try timeout with `retry`, and otherwise replaces the route timeout.
pub fn gateway_api(
    resources: &Resources,
    workloads: &Workloads,
    name: &str,
) -> Result<ProxyPlan, TranslateError> {
    let mut virtual_hosts: Vec<VirtualHost> = Vec::new();
    for route in &resources.http_routes {
        if route.namespace != workloads.namespace
            || !route.spec.parent_refs.iter().any(|p| p.name == name)
        {
            continue;
        }
        let mut routes = Vec::new();
        for (index, rule) in route.spec.rules.iter().enumerate() {
            let err = |field: &str, reason: String| {
                TranslateError::new(
                    &route.origin,
                    "HTTPRoute",
                    &format!("spec.rules[{index}].{field}"),
                    reason,
                )
            };
            let [backend] = rule.backend_refs.as_slice() else {
                return Err(err(
                    "backendRefs",
                    "expected one backend (weighted splits are not modelled)".into(),
                ));
            };
            let cluster = workloads
                .service_of(&backend.name, &route.namespace)
                .ok_or_else(|| {
                    err(
                        "backendRefs[0].name",
                        format!("{:?} is not a service of the mesh", backend.name),
                    )
                })?
                .to_owned();
            let mut retry = default_policy();
            let mut has_retry = true;
            let mut timeout = Duration::ZERO;
            if let Some(t) = rule.timeouts.as_ref().and_then(|t| t.request.as_ref()) {
                timeout = duration(t).map_err(|r| err("timeouts.request", r))?;
            }
            if let Some(r) = &rule.retry {
                let attempts = r.attempts.unwrap_or(2);
                if attempts <= 0 {
                    has_retry = false;
                }
                retry.num_retries = u32::try_from(attempts.max(0)).unwrap_or(0);
                if !r.codes.is_empty() {
                    retry.retriable_status_codes = r.codes.clone();
                }
                if let Some(b) = &r.backoff {
                    retry.backoff_base = Some(duration(b).map_err(|e| err("retry.backoff", e))?);
                }
            }
            if let Some(t) = rule
                .timeouts
                .as_ref()
                .and_then(|t| t.backend_request.as_ref())
            {
                let backend = duration(t).map_err(|r| err("timeouts.backendRequest", r))?;
                if !backend.is_zero() {
                    if rule.retry.is_some() {
                        retry.per_try_timeout = Some(backend);
                    } else {
                        timeout = backend;
                    }
                }
            }
            let matches: Vec<_> = if rule.matches.is_empty() {
                vec![None]
            } else {
                rule.matches.iter().map(Some).collect()
            };
            for matched in matches {
                let path = match matched.and_then(|m| m.path.as_ref()) {
                    None => PathMatch::Prefix("/".into()),
                    Some(p) => {
                        let value = p.value.clone().unwrap_or_else(|| "/".into());
                        match p.kind.as_deref().unwrap_or("PathPrefix") {
                            "Exact" => PathMatch::Exact(value),
                            "RegularExpression" => PathMatch::Regex(value),
                            _ if value == "/" => PathMatch::Prefix(value),
                            _ => PathMatch::SeparatedPrefix(value.trim_end_matches('/').to_owned()),
                        }
                    }
                };
                routes.push(Route {
                    name: format!("{}.{}.{index}", route.namespace, route.meta.name),
                    source: format!("{}/{} rules[{index}]", route.namespace, route.meta.name),
                    path,
                    method: matched
                        .and_then(|m| m.method.clone())
                        .map(MethodMatch::Exact),
                    cluster: cluster.clone(),
                    timeout,
                    retry: has_retry.then(|| retry.clone()),
                });
            }
        }
        let hostnames = if route.spec.hostnames.is_empty() {
            vec!["*".to_owned()]
        } else {
            route
                .spec
                .hostnames
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect()
        };
        for host in hostnames {
            add_routes(&mut virtual_hosts, &host, 80, &routes);
        }
    }
    let filters = targeted_filters(resources, workloads, name)?;
    Ok(ProxyPlan {
        name: format!("gateway-api/{name}"),
        role: Role::Gateway,
        connection_manager: connection_manager(workloads),
        // `buildGatewayHTTPRouteConfig`: `ignore_port_in_host_matching` for all but
        // proxyless gRPC.
        ignore_port_in_host_matching: true,
        virtual_hosts,
        filters,
        clusters: clusters(resources, workloads)?,
    })
}

/// Adds `routes` to the gateway virtual host of `host`, made with the host as its one
/// domain (no port) when it is the first (`buildGatewayHTTPRouteConfig`: the routes of
/// every VirtualService for a host go into one virtual host, in VirtualService order).
fn add_routes(virtual_hosts: &mut Vec<VirtualHost>, host: &str, port: u32, routes: &[Route]) {
    match virtual_hosts.iter_mut().find(|v| v.domains[0] == host) {
        Some(existing) => existing.routes.extend_from_slice(routes),
        None => virtual_hosts.push(VirtualHost {
            name: format!("{host}:{port}"),
            domains: vec![host.to_owned()],
            include_request_attempt_count: true,
            routes: routes.to_vec(),
        }),
    }
}

/// The route of a service without VirtualService: every path, no timeout, the default
/// retry policy (`pilot/pkg/networking/core/route/route.go`,
/// `BuildDefaultHTTPOutboundRoute`, with `retry.DefaultPolicy`).
pub fn default_outbound_route(service: &str) -> Route {
    Route {
        name: "default".into(),
        source: String::new(),
        path: PathMatch::Prefix("/".into()),
        method: None,
        cluster: service.to_owned(),
        timeout: Duration::ZERO,
        retry: Some(default_policy()),
    }
}

/// The domains of a service's virtual host seen from a pod of its own namespace: the
/// FQDN (also with a trailing dot), the short name, `name.ns.svc` and `name.ns`
/// (`pilot/pkg/networking/core/httproute.go`, `generateVirtualHostDomains` and
/// `generateAltVirtualHostsForKubernetesService`). Istio lists them without the port
/// and sets `ignore_port_in_host_matching` on route configuration `8080`, which only
/// traffic to port 8080 reaches; the local sidecar has a single listener, so it lists
/// each name with and without `:8080` instead, which answers the same authorities.
pub fn sidecar_domains(service: &str, workloads: &Workloads) -> Vec<String> {
    let ns = &workloads.namespace;
    let fqdn = workloads.fqdn(service);
    let names = [
        fqdn.clone(),
        format!("{fqdn}."),
        service.to_owned(),
        format!("{service}.{ns}.svc"),
        format!("{service}.{ns}"),
    ];
    names
        .iter()
        .flat_map(|n| [n.clone(), format!("{n}:{}", workloads.port)])
        .collect()
}

/// VirtualServices in the order istiod merges their routes: oldest first, then by name
/// and namespace (`pilot/pkg/model/config.go`, `sortConfigByCreationTime`). Files carry
/// no creation time, so name and namespace decide.
fn sorted(list: &[Named<VirtualService>]) -> Vec<&Named<VirtualService>> {
    let mut out: Vec<_> = list.iter().collect();
    out.sort_by(|a, b| {
        (a.meta.name.as_str(), a.namespace.as_str())
            .cmp(&(b.meta.name.as_str(), b.namespace.as_str()))
    });
    out
}

/// Whether a VirtualService is bound to the Gateway `namespace/name`: its `gateways`
/// name it as `name` (in the VirtualService's namespace) or `namespace/name`
/// (`pilot/pkg/model/virtualservice.go`, `resolveGatewayName`).
fn bound_to(vs: &Named<VirtualService>, namespace: &str, name: &str) -> bool {
    names_gateway(vs, vs.spec.gateways.iter().flatten(), (namespace, name))
}

/// Whether one of `refs` (a VirtualService's or a match's `gateways`) names the Gateway
/// `(namespace, name)`, a bare name being in the VirtualService's namespace.
fn names_gateway<'a>(
    vs: &Named<VirtualService>,
    mut refs: impl Iterator<Item = &'a String>,
    (namespace, name): (&str, &str),
) -> bool {
    refs.any(|g| {
        let (ns, gw) = g
            .split_once('/')
            .unwrap_or((vs.namespace.as_str(), g.as_str()));
        ns == namespace && gw == name
    })
}

/// Without `gateways` a VirtualService applies to `mesh` only; with them, only if
/// `mesh` is among them (`pilot/pkg/model/virtualservice.go`, `UseGatewaySemantics` /
/// `resolveGatewayName`).
fn bound_to_mesh(vs: &Named<VirtualService>) -> bool {
    match &vs.spec.gateways {
        None => true,
        Some(list) => list.is_empty() || list.iter().any(|g| g == "mesh"),
    }
}

fn strip_namespace(host: &str) -> &str {
    host.split_once('/').map_or(host, |(_, h)| h)
}

/// The hosts a gateway server with `server_hosts` serves of a VirtualService's
/// `hosts`, lower-cased: of each pair where one covers the other, the more specific
/// (`pkg/config/host/names.go`, `Names.Intersection`, as
/// `pilot/pkg/networking/core/gateway.go`, `buildGatewayHTTPRouteConfig` applies it).
/// A `*` VirtualService thus serves every host of the server.
fn intersection(vs_hosts: &[String], server_hosts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for vs_host in vs_hosts.iter().map(|h| h.to_ascii_lowercase()) {
        for server in server_hosts {
            let host = if host_covers(server, &vs_host) {
                vs_host.clone()
            } else if host_covers(&vs_host, server) {
                server.clone()
            } else {
                continue;
            };
            if !out.contains(&host) {
                out.push(host);
            }
        }
    }
    out
}

/// Routes that match every request go after the others of their virtual host
/// (`pilot/pkg/networking/core/route/route.go`, `SortVHostRoutes`).
fn catch_alls_last(routes: &mut [Route]) {
    routes.sort_by_key(|r| r.path == PathMatch::Prefix("/".into()) && r.method.is_none());
}

/// Whether wildcard host `pattern` covers `host` (`*` all, `*.x` any subdomain of x).
fn host_covers(pattern: &str, host: &str) -> bool {
    pattern == "*"
        || pattern == host
        || pattern
            .strip_prefix('*')
            .is_some_and(|suffix| suffix.starts_with('.') && host.ends_with(suffix))
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The Envoy routes of a VirtualService: each HTTP route once per match (or once
/// without matches), in order (`pilot/pkg/networking/core/route/route.go`,
/// `BuildHTTPRoutesForVirtualService` and `TranslateRoute`). `gateway`: the Gateway
/// being built, for matches narrowed to gateways.
fn routes_of(
    vs: &Named<VirtualService>,
    workloads: &Workloads,
    gateway: Option<(&str, &str)>,
) -> Result<Vec<Route>, TranslateError> {
    let mut out = Vec::new();
    for (index, http) in vs.spec.http.iter().enumerate() {
        let field = |f: &str| format!("spec.http[{index}]{f}");
        let cluster = destination(vs, http, workloads).map_err(|reason| {
            TranslateError::new(&vs.origin, "VirtualService", &field(".route"), reason)
        })?;
        let timeout = match &http.timeout {
            Some(t) => duration(t).map_err(|r| {
                TranslateError::new(&vs.origin, "VirtualService", &field(".timeout"), r)
            })?,
            None => Duration::ZERO,
        };
        let retry = convert_policy(http.retries.as_ref()).map_err(|r| {
            TranslateError::new(&vs.origin, "VirtualService", &field(".retries"), r)
        })?;
        let name = http.name.clone().unwrap_or_default();
        let matches: Vec<Option<&HttpMatch>> = if http.matches.is_empty() {
            vec![None]
        } else {
            http.matches.iter().map(Some).collect()
        };
        for (m, matched) in matches.into_iter().enumerate() {
            if let (Some(matched), Some(gateway)) = (matched, gateway) {
                if let Some(gws) = &matched.gateways {
                    if !names_gateway(vs, gws.iter(), gateway) {
                        continue;
                    }
                }
            }
            let path = matched
                .and_then(|m| m.uri.as_ref())
                .map(path_match)
                .unwrap_or(Ok(PathMatch::Prefix("/".into())))
                .map_err(|r| {
                    TranslateError::new(
                        &vs.origin,
                        "VirtualService",
                        &field(&format!(".match[{m}].uri")),
                        r,
                    )
                })?;
            let method = matched
                .and_then(|m| m.method.as_ref())
                .map(method_match)
                .transpose()
                .map_err(|r| {
                    TranslateError::new(
                        &vs.origin,
                        "VirtualService",
                        &field(&format!(".match[{m}].method")),
                        r,
                    )
                })?;
            out.push(Route {
                name: name.clone(),
                source: format!("{}/{} http[{index}]", vs.namespace, vs.meta.name),
                path,
                method,
                cluster: cluster.clone(),
                timeout,
                retry: retry.clone(),
            });
        }
    }
    Ok(out)
}

/// The one destination of a route (weighted splits are not modelled).
fn destination(
    vs: &Named<VirtualService>,
    http: &HttpRoute,
    workloads: &Workloads,
) -> Result<String, String> {
    let [only] = http.route.as_slice() else {
        return Err(format!(
            "expected one destination, got {} (weighted splits are not modelled)",
            http.route.len()
        ));
    };
    workloads
        .service_of(&only.destination.host, &vs.namespace)
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "destination host {:?} is not a service of namespace {}",
                only.destination.host, workloads.namespace
            )
        })
}

/// `uri` as an Envoy path match: `prefix` stays a plain prefix, `exact` a path,
/// `regex` a regular expression (`pilot/pkg/networking/core/route/route.go`,
/// `TranslateRouteMatch`).
fn path_match(uri: &StringMatch) -> Result<PathMatch, String> {
    match (&uri.exact, &uri.prefix, &uri.regex) {
        (Some(exact), None, None) => Ok(PathMatch::Exact(exact.clone())),
        (None, Some(prefix), None) => Ok(PathMatch::Prefix(prefix.clone())),
        (None, None, Some(regex)) => Ok(PathMatch::Regex(regex.clone())),
        _ => Err("expected exactly one of exact, prefix, regex".into()),
    }
}

/// `method` as a `:method` header matcher (`pilot/pkg/networking/core/route/route.go`,
/// `translateHeaderMatch`); prefixes are not modelled.
fn method_match(method: &StringMatch) -> Result<MethodMatch, String> {
    match (&method.exact, &method.prefix, &method.regex) {
        (Some(exact), None, None) => Ok(MethodMatch::Exact(exact.clone())),
        (None, None, Some(regex)) => Ok(MethodMatch::Regex(regex.clone())),
        (None, Some(_), None) => Err("a method prefix is not modelled".into()),
        _ => Err("expected exactly one of exact, prefix, regex".into()),
    }
}

/// Istio's cluster connect timeout without a DestinationRule
/// (`meshConfig.connectTimeout`, 10 s by default).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Every mesh service's cluster, with its DestinationRule's traffic policy.
fn clusters(
    resources: &Resources,
    workloads: &Workloads,
) -> Result<Vec<ClusterPolicy>, TranslateError> {
    workloads
        .services
        .iter()
        .map(|service| {
            let rule = resources.destination_rules.iter().find(|d| {
                workloads.service_of(&d.spec.host, &d.namespace) == Some(service.as_str())
            });
            cluster(service, rule)
        })
        .collect()
}

/// One cluster (`pilot/pkg/networking/core/cluster_traffic_policy.go`,
/// `applyTrafficPolicy`, `applyConnectionPool` and `applyOutlierDetection`):
/// - connection pools become the default-priority circuit breakers
///   (`maxConnections` -> `max_connections`, `http1MaxPendingRequests` ->
///   `max_pending_requests`, `http2MaxRequests` -> `max_requests`, `maxRetries` ->
///   `max_retries`), each unlimited (2^32-1) unless set
///   (`getDefaultCircuitBreakerThresholds`);
/// - `outlierDetection` becomes `outlier_detection` with `consecutive_5xx` enforced at
///   100%, `max_ejection_percent` only when set, and `healthy_panic_threshold` set to
///   `minHealthPercent` (0 unless set): with outlier detection, Envoy never routes to
///   ejected hosts to rescue a service.
fn cluster(
    service: &str,
    rule: Option<&Named<DestinationRule>>,
) -> Result<ClusterPolicy, TranslateError> {
    let mut out = ClusterPolicy {
        name: service.to_owned(),
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        // `defaultLBAlgorithm`.
        lb_policy: LbPolicy::LeastRequest,
        outlier: None,
        healthy_panic_threshold: None,
        circuit_breakers: CircuitBreakers::UNLIMITED,
    };
    let Some(rule) = rule else {
        return Ok(out);
    };
    let Some(policy) = &rule.spec.traffic_policy else {
        return Ok(out);
    };
    let err = |field: &str, reason: String| {
        TranslateError::new(
            &rule.origin,
            "DestinationRule",
            &format!("spec.trafficPolicy.{field}"),
            reason,
        )
    };
    // `applyLoadBalancer`: ROUND_ROBIN as asked, LEAST_CONN is LEAST_REQUEST, RANDOM.
    out.lb_policy = match policy
        .load_balancer
        .as_ref()
        .and_then(|l| l.simple.as_deref())
    {
        Some("ROUND_ROBIN") => LbPolicy::RoundRobin,
        Some("RANDOM") => LbPolicy::Random,
        _ => LbPolicy::LeastRequest,
    };
    // Limits apply only when above 0 (an explicit 0 is ignored).
    let positive = |v: Option<u32>| v.filter(|v| *v > 0);
    if let Some(pool) = &policy.connection_pool {
        if let Some(tcp) = &pool.tcp {
            if let Some(max) = positive(tcp.max_connections) {
                out.circuit_breakers.max_connections = max;
            }
            if let Some(t) = &tcp.connect_timeout {
                out.connect_timeout =
                    duration(t).map_err(|r| err("connectionPool.tcp.connectTimeout", r))?;
            }
        }
        if let Some(http) = &pool.http {
            if let Some(max) = positive(http.http1_max_pending_requests) {
                out.circuit_breakers.max_pending_requests = max;
            }
            if let Some(max) = positive(http.http2_max_requests) {
                out.circuit_breakers.max_requests = max;
            }
            if let Some(max) = positive(http.max_retries) {
                out.circuit_breakers.max_retries = max;
            }
        }
    }
    if let Some(outlier) = &policy.outlier_detection {
        // Fields Istio leaves out take Envoy's defaults: 5 consecutive 5xx, a 10 s
        // interval, 30 s base ejection, 10% at most ejected.
        let interval = match &outlier.interval {
            Some(t) => Some(duration(t).map_err(|r| err("outlierDetection.interval", r))?),
            None => None,
        };
        let base_ejection = match &outlier.base_ejection_time {
            Some(t) => Some(duration(t).map_err(|r| err("outlierDetection.baseEjectionTime", r))?),
            None => None,
        };
        out.outlier = Some(OutlierPolicy {
            consecutive_5xx: outlier.consecutive_5xx_errors,
            interval,
            base_ejection,
            max_ejection_percent: positive(outlier.max_ejection_percent),
        });
        out.healthy_panic_threshold = Some(f64::from(outlier.min_health_percent.unwrap_or(0)));
    }
    Ok(out)
}

/// The WasmPlugins that reach a proxy, in the order they run: by phase (AUTHN, AUTHZ,
/// STATS, then unspecified; Istio's own filters between and after them are not
/// modelled), then by priority (higher first), each one filter named
/// `<namespace>.<name>` with an empty `vm_id`, `root_id` from `pluginName`, its
/// `pluginConfig` as a JSON string (`pilot/pkg/model/extensions.go`,
/// `convertToWasmPluginWrapper` and `BuildHTTPWasmFilter`;
/// `pilot/pkg/networking/core/extension/wasmplugin.go`, `PopAppendHTTP`). A plugin
/// reaches the ingress gateway when it lives in the gateway's namespace (or the root
/// namespace) and selects its labels; a sidecar when it lives in the pod's namespace
/// (or the root namespace), selects its labels, and matches `CLIENT` traffic or all
/// traffic (`pilot/pkg/model/push_context.go`, `WasmPluginsByListenerInfo`;
/// `pilot/pkg/model/extensions.go`, `matchTrafficSelectors`). `service`: the pod's
/// service, `None` for the gateway.
fn wasm_filters(
    resources: &Resources,
    workloads: &Workloads,
    service: Option<&str>,
) -> Result<Vec<WasmFilter>, TranslateError> {
    const ROOT_NAMESPACE: &str = "istio-system";
    let (namespace, labels) = match service {
        Some(s) => (workloads.namespace.as_str(), workloads.labels_of(s)),
        None => (
            workloads.gateway_namespace.as_str(),
            workloads.gateway_labels.clone(),
        ),
    };
    let mut chosen: Vec<_> = resources
        .wasm_plugins
        .iter()
        .filter(|p| p.namespace == namespace || p.namespace == ROOT_NAMESPACE)
        .filter(|p| p.spec.target_refs.is_empty())
        .filter(|p| {
            p.spec
                .selector
                .as_ref()
                .is_none_or(|s| selects(&s.match_labels, &labels))
        })
        .filter(|p| {
            // A gateway's listeners count as CLIENT traffic.
            p.spec.matches.is_empty()
                || p.spec
                    .matches
                    .iter()
                    .any(|m| matches!(m.mode.as_deref(), None | Some("CLIENT") | Some("UNDEFINED")))
        })
        .collect();
    chosen.sort_by_key(|p| {
        (
            phase_rank(p.spec.phase.as_deref()),
            std::cmp::Reverse(p.spec.priority.unwrap_or(0)),
        )
    });
    chosen.into_iter().map(wasm_filter).collect()
}

/// The WasmPlugins of the services' namespace whose `targetRefs` name the Gateway API
/// `Gateway` `name`, in phase and priority order.
fn targeted_filters(
    resources: &Resources,
    workloads: &Workloads,
    name: &str,
) -> Result<Vec<WasmFilter>, TranslateError> {
    let mut chosen: Vec<_> = resources
        .wasm_plugins
        .iter()
        .filter(|p| p.namespace == workloads.namespace)
        .filter(|p| {
            p.spec
                .target_refs
                .iter()
                .any(|t| t.kind == "Gateway" && t.name == name)
        })
        .collect();
    chosen.sort_by_key(|p| {
        (
            phase_rank(p.spec.phase.as_deref()),
            std::cmp::Reverse(p.spec.priority.unwrap_or(0)),
        )
    });
    chosen.into_iter().map(wasm_filter).collect()
}

fn phase_rank(phase: Option<&str>) -> u8 {
    match phase {
        Some("AUTHN") => 0,
        Some("AUTHZ") => 1,
        Some("STATS") => 2,
        _ => 3,
    }
}

fn wasm_filter(p: &Named<super::resources::WasmPlugin>) -> Result<WasmFilter, TranslateError> {
    let configuration = match &p.spec.plugin_config {
        None => String::new(),
        Some(value) => serde_json::to_string(value).map_err(|e| {
            TranslateError::new(&p.origin, "WasmPlugin", "spec.pluginConfig", e.to_string())
        })?,
    };
    let failure_policy = match p.spec.fail_strategy.as_deref() {
        Some("FAIL_OPEN") => FailurePolicy::FailOpen,
        Some("FAIL_RELOAD") => FailurePolicy::FailReload,
        _ => FailurePolicy::FailClosed,
    };
    Ok(WasmFilter {
        name: format!("{}.{}", p.namespace, p.meta.name),
        url: p.spec.url.clone(),
        configuration,
        vm_id: String::new(),
        root_id: p.spec.plugin_name.clone().unwrap_or_default(),
        phase: p
            .spec
            .phase
            .clone()
            .unwrap_or_else(|| "UNSPECIFIED_PHASE".into()),
        failure_policy,
    })
}

#[cfg(test)]
mod tests;
