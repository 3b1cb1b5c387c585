//! The conformance suite that ships with c4mesh: the scenarios of
//! `harness/conformance/suite/` and the JSON Schema of their format, embedded at build
//! time so that `c4mesh conformance` runs the suite from any directory
//! (`--scenarios DIR` runs files instead).
//!
//! Embedded scenarios are named `suite/<path>` in reports and errors, as the files
//! are named in the source tree relative to `harness/conformance`.

use crate::scenario::{self, Scenario};
use crate::Error;
use std::path::{Path, PathBuf};

/// Every file of the suite, by path relative to `suite/`, in path order.
const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/suite.rs"));

/// The JSON Schema of the scenario format (`suite/scenario.schema.json`).
pub fn schema() -> &'static str {
    FILES
        .iter()
        .find(|(path, _)| *path == "scenario.schema.json")
        .map(|(_, text)| *text)
        .unwrap_or("{}")
}

/// The suite's scenario files: their names (`suite/budget/...yaml`) and texts, in path
/// order, those under `under` (a folder of the suite such as `cost`, or empty for all).
pub fn files(under: &str) -> Vec<(PathBuf, &'static str)> {
    let under = Path::new(under);
    FILES
        .iter()
        .filter(|(path, _)| path.ends_with(".yaml") || path.ends_with(".yml"))
        .filter(|(path, _)| Path::new(path).starts_with(under))
        .map(|(path, text)| (Path::new("suite").join(path), *text))
        .collect()
}

/// The suite's scenarios under `under` (see [`files`]), parsed.
pub fn load(under: &str) -> Result<Vec<Scenario>, Error> {
    let files = files(under);
    if files.is_empty() {
        return Err(Error::Scenario {
            file: format!("suite/{under}"),
            line: None,
            field: String::new(),
            message: "no scenarios in the embedded suite under this folder".into(),
        });
    }
    files
        .iter()
        .map(|(path, text)| scenario::parse(text, path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_suite_holds_every_file_of_the_folder_and_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("suite");
        let on_disk = scenario::load_dir(&dir).expect("the suite loads from its folder");
        let embedded = load("").expect("the embedded suite parses");
        assert_eq!(on_disk.len(), embedded.len());
        assert!(embedded.len() > 90, "{} scenarios", embedded.len());
        assert!(schema().contains("\"$schema\""));
        let cost = load("cost").expect("a folder of the suite");
        assert!(!cost.is_empty() && cost.len() < embedded.len());
        assert!(load("nope").is_err());
    }
}
