//! Where the docker config is looked for, as docker does: `$DOCKER_CONFIG/config.json`,
//! else `~/.docker/config.json`, else anonymous.
//!
//! A test binary of its own with a single test: it changes the process environment,
//! which must not happen while other threads read it.

use base64::Engine;
use c4mesh_registry::{docker_config_path, Credentials};

#[test]
fn the_docker_config_is_found_as_docker_finds_it() {
    let base = tempfile::tempdir().unwrap();
    let custom = base.path().join("custom");
    let home = base.path().join("home");
    std::fs::create_dir_all(&custom).unwrap();
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    let entry = |user: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
        format!(r#"{{"auths": {{"registry.example.com": {{"auth": "{auth}"}}}}}}"#)
    };
    std::fs::write(custom.join("config.json"), entry("from-docker-config")).unwrap();
    std::fs::write(home.join(".docker/config.json"), entry("from-home")).unwrap();

    std::env::set_var("HOME", &home);
    std::env::set_var("DOCKER_CONFIG", &custom);
    assert_eq!(docker_config_path(), Some(custom.join("config.json")));
    assert_eq!(
        Credentials::from_docker_config("registry.example.com").unwrap(),
        Credentials::basic("from-docker-config", "pw")
    );
    assert_eq!(
        Credentials::from_docker_config("ghcr.io").unwrap(),
        Credentials::Anonymous
    );

    std::env::remove_var("DOCKER_CONFIG");
    assert_eq!(docker_config_path(), Some(home.join(".docker/config.json")));
    assert_eq!(
        Credentials::from_docker_config("registry.example.com").unwrap(),
        Credentials::basic("from-home", "pw")
    );

    std::env::set_var("HOME", base.path().join("nobody"));
    assert_eq!(
        Credentials::from_docker_config("registry.example.com").unwrap(),
        Credentials::Anonymous,
        "no file, anonymous"
    );
}
