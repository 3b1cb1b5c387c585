use super::*;

fn error(text: &str) -> String {
    match parse(text, Path::new("s.yaml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_minimal_scenario_gets_the_defaults() {
    let s = parse(
        "name: x\nrules: [R3]\nsteps:\n  - request: {path: /api/v1/orders}\n",
        Path::new("s.yaml"),
    )
    .expect("valid");
    assert_eq!(s.targets, [TargetKind::Wasm, TargetKind::Envoy]);
    assert_eq!((s.mesh.workers, s.mesh.hosts), (2, 2));
    assert_eq!(s.steps[0].request.method, "GET");
    assert_eq!(s.steps[0].request.host.as_deref(), Some("api.c4ang.com"));
    assert!(config_bytes(&s).is_empty());
    assert_eq!(services_of(&s).len(), 6);
}

#[test]
fn structural_errors_name_the_line_and_field() {
    let text = "name: x\nrules: [R3]\nsteps:\n  - request: {path: /a}\n    expect: {status: ok}\n";
    let message = error(text);
    assert!(
        message.starts_with("s.yaml:5: steps[0].expect.status"),
        "{message}"
    );
    let message = error("name: x\nrules: [R3]\nsteps:\n  - request: {path: /a}\n    at: soon\n");
    assert!(message.starts_with("s.yaml:5: steps[0].at"), "{message}");
    assert!(message.contains("duration"), "{message}");
    let message = error("name: x\nrules: [R3]\nsteps:\n  - request: {path: /a}\n    expect: {attempts: {min: 1, mx: 3}}\n");
    assert!(message.contains("steps[0].expect.attempts"), "{message}");
    assert!(
        message.contains("a number, or {min: N, max: N}"),
        "{message}"
    );
}

#[test]
fn unknown_services_and_hosts_are_named_with_their_line() {
    let text = "name: x\nrules: [O1]\nupstreams:\n  - {service: nope, status: 503}\nsteps:\n  - request: {path: /a}\n";
    let message = error(text);
    assert!(
        message.starts_with("s.yaml:4: upstreams[0].service: unknown service \"nope\""),
        "{message}"
    );
    let text = "name: x\nrules: [O1]\nupstreams:\n  - {service: order-service, host: 2, status: 503}\nsteps:\n  - request: {path: /a}\n";
    assert!(error(text).contains("upstreams[0].host: must be below mesh.hosts (2), got 2"));
    let text = "name: x\nrules: [O1]\nsteps:\n  - request: {path: /a}\n    aggregate:\n      hosts: {order-service/7: 1}\n";
    assert!(error(text).contains("steps[0].aggregate.hosts.order-service/7"));
}

#[test]
fn inconsistent_scenarios_are_refused() {
    let steps = "steps:\n  - request: {path: /a}\n";
    assert!(error(&format!("name: x\nrules: []\n{steps}"))
        .contains("rules: must name at least one rule id"));
    assert!(error(&format!(
        "name: x\nrules: [R1]\ntargets: [url]\nupstreams:\n  - {{service: order-service, status: 503}}\n{steps}"
    ))
    .contains("the url target cannot control upstreams"));
    assert!(error(&format!(
        "name: x\nrules: [R1]\nupstreams:\n  - {{service: order-service, status: 503, reset: true}}\n{steps}"
    ))
    .contains("give one of status, statuses, error_rate, reset, hang"));
    assert!(error(&format!(
        "name: x\nrules: [R1]\nupstreams:\n  - {{service: order-service, error_rate: 1.5}}\n{steps}"
    ))
    .contains("upstreams[0].error_rate: must be within [0, 1], got 1.5"));
    assert!(error(
        "name: x\nrules: [R1]\nsteps:\n  - request: {path: /a}\n    repeat: {duration: 2s}\n"
    )
    .contains("steps[0].repeat.rate: a duration needs a rate"));
    assert!(error(&format!(
        "name: x\nrules: [2.1]\nconfig: {{bogus: 1}}\nrejected: {{log: x}}\n{steps}"
    ))
    .contains("sends no traffic"));
}

#[test]
fn an_aborted_request_needs_a_client_that_gives_up_and_has_no_response_to_check() {
    let text = "name: x\nrules: [O3]\nsteps:\n  - request: {path: /a, abort_after: 1.5s}\n    expect: {aborted: true, attempts: 1}\n";
    let s = parse(text, Path::new("s.yaml")).expect("valid");
    assert_eq!(
        s.steps[0].request.abort_after,
        Some(Duration::from_millis(1500))
    );
    assert!(s.steps[0].expect.as_ref().is_some_and(|e| e.aborted));
    let message = error(
        "name: x\nrules: [O3]\nsteps:\n  - request: {path: /a}\n    expect: {aborted: true}\n",
    );
    assert!(
        message.starts_with("s.yaml:5: steps[0].expect.aborted: needs request.abort_after"),
        "{message}"
    );
    let message = error(
        "name: x\nrules: [O3]\nsteps:\n  - request: {path: /a, abort_after: 1s}\n    expect:\n      aborted: true\n      headers: {x-c4-circuit: open}\n",
    );
    assert!(
        message
            .starts_with("s.yaml:7: steps[0].expect.headers: an aborted request has no response"),
        "{message}"
    );
    let message =
        error("name: x\nrules: [O3]\nsteps:\n  - request: {path: /a, abort_after: soon}\n");
    assert!(
        message.starts_with("s.yaml:4: steps[0].request.abort_after"),
        "{message}"
    );
    let message = error("name: x\nrules: [O3]\nsteps:\n  - request: {path: /a, abort_after: 0s}\n");
    assert!(
        message.contains("steps[0].request.abort_after: must be longer than 0s"),
        "{message}"
    );
}

#[test]
fn routes_of_the_configuration_define_the_services() {
    let s = parse(
        "name: x\nrules: [R3]\nconfig:\n  routes: [{name: a, prefix: /a, service: alpha}]\nupstreams:\n  - {service: alpha, status: 500}\nsteps:\n  - request: {path: /a}\n",
        Path::new("s.yaml"),
    )
    .expect("valid");
    assert_eq!(services_of(&s), ["alpha"]);
    assert_eq!(
        String::from_utf8_lossy(&config_bytes(&s)),
        r#"{"routes":[{"name":"a","prefix":"/a","service":"alpha"}]}"#
    );
}

#[test]
fn topologies_are_checked_and_add_the_pass_through_destination() {
    let steps = "steps:\n  - request: {path: /a}\n";
    let s = parse(
        &format!("name: x\nrules: [S4]\ntopology:\n  calls: {{order-service: [payment-service]}}\n  filter_at: gateway\n{steps}"),
        Path::new("s.yaml"),
    )
    .expect("valid");
    assert_eq!(services_of(&s).len(), 7);
    assert_eq!(services_of(&s).last().map(String::as_str), Some("external"));
    let topology = s.topology.as_ref().expect("topology");
    assert!(topology.filter_at.gateway() && !topology.filter_at.sidecars());
    assert!(String::from_utf8_lossy(&sidecar_config_bytes(topology)).contains("sidecar"));

    let message = error(&format!(
        "name: x\nrules: [S4]\ntopology:\n  calls: {{order-service: [nope]}}\n{steps}"
    ));
    assert!(
        message.starts_with("s.yaml:4: topology.calls: unknown service \"nope\""),
        "{message}"
    );
    assert!(error(&format!(
        "name: x\nrules: [S4]\ntopology:\n  calls: {{order-service: [payment-service], payment-service: [order-service]}}\n{steps}"
    ))
    .contains("cycle"));
    assert!(error(&format!(
        "name: x\nrules: [S4]\ntopology:\n  calls: {{order-service: [payment-service]}}\n  filter_at: somewhere\n{steps}"
    ))
    .contains("topology.filter_at"));
    assert!(error(&format!(
        "name: x\nrules: [S4]\ntopology:\n  calls: {{order-service: [payment-service]}}\n  sidecar_config: {{mode: gateway}}\n{steps}"
    ))
    .contains("topology.sidecar_config.mode: must be \"sidecar\""));
    assert!(error(&format!(
        "name: x\nrules: [S4]\nconfig: {{mode: sidecar}}\ntopology:\n  calls: {{order-service: [payment-service]}}\n{steps}"
    ))
    .contains("must be in gateway mode"));
    assert!(error(&format!(
        "name: x\nrules: [S4]\ntopology:\n  calls: {{order-service: [payment-service]}}\n{steps}finally:\n  proxies: {{saga-tracker: {{logs: [x]}}}}\n"
    ))
    .contains("finally.proxies.saga-tracker: must be gateway, or a calling service"));
    assert!(error(&format!(
        "name: x\nrules: [S4]\n{steps}finally:\n  proxies: {{gateway: {{logs: [x]}}}}\n"
    ))
    .contains("proxies need a topology"));
}
