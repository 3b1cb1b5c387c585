//! Running the `c4mesh` binary from the repository root, as an operator would.

use std::path::Path;
use std::process::Command;

/// Exit code, stdout and stderr of `c4mesh ARGS`.
pub fn c4mesh(args: &[&str]) -> (i32, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(env!("CARGO_BIN_EXE_c4mesh"))
        .current_dir(root)
        .args(args)
        .output()
        .expect("running c4mesh");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
