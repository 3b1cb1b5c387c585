//! A registry that authenticates: the credentials `docker login` leaves in a docker
//! config file push and pull; a wrong password and no password are refused as such.

use crate::support::{self, Registry, PASSWORD, TRANSPORT, USER};
use base64::Engine;
use c4mesh_manifests::oci;
use c4mesh_registry::{pull_wasm, push_layout, Credentials, Error};

#[tokio::test]
async fn credentials_from_a_docker_config_push_and_pull() {
    let registry = Registry::with_password();
    let config_dir = registry.scratch("docker");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let config = config_dir.join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let credentials = Credentials::from_docker_config_file(&config, &registry.host()).unwrap();
    assert_eq!(credentials, Credentials::basic(USER, PASSWORD));

    let module = support::wasm_module();
    let layout = registry.scratch("filter");
    let package = oci::package(&module, "v1", &layout).unwrap();
    let reference = registry.reference("c4mesh/filter:v1");
    let pushed = push_layout(&layout, &reference, &credentials, TRANSPORT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", registry.log()));
    assert_eq!(pushed.digest, package.digest);

    let creds = format!("--creds={USER}:{PASSWORD}");
    let docker = registry.docker("c4mesh/filter:v1");
    let (_, digest) = support::skopeo_raw_manifest(
        &["--tls-verify=false", &creds, &docker],
        &registry.scratch("skopeo"),
    );
    assert_eq!(digest, package.digest);

    let pulled = pull_wasm(&reference, &credentials, TRANSPORT)
        .await
        .unwrap();
    assert_eq!(pulled.module, module);
}

#[tokio::test]
async fn a_wrong_password_or_none_is_refused() {
    let registry = Registry::with_password();
    let layout = registry.scratch("filter");
    oci::package(&support::wasm_module(), "v1", &layout).unwrap();
    let reference = registry.reference("c4mesh/filter:v1");

    for credentials in [
        Credentials::basic(USER, "not-the-password"),
        Credentials::Anonymous,
    ] {
        let err = push_layout(&layout, &reference, &credentials, TRANSPORT)
            .await
            .unwrap_err();
        match &err {
            Error::Unauthorized { registry: host, .. } => {
                assert_eq!(*host, registry.host());
                let message = err.to_string();
                assert!(message.contains("refused the credentials"), "{message}");
            }
            other => panic!("{credentials:?}: expected a refusal, got {other:?}"),
        }
        let err = pull_wasm(&reference, &credentials, TRANSPORT)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Unauthorized { .. }),
            "{credentials:?}: {err:?}"
        );
    }
}
