//! The Helm chart in charts/baler: rendered, validated and its wiring checked by
//! `tests/chart/check.py`, which drives Helm's own Go library (PyPI helm-python-sdk) and
//! kubernetes-validate, so no cluster and no `helm` binary are needed. `.ci/run` installs
//! both; a machine without them fails here with the command that installs them.

use std::path::Path;
use std::process::Command;

#[test]
fn the_chart_renders_validates_and_wires_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("tests/chart/check.py"))
        .current_dir(root)
        .output()
        .expect("running python3 (the chart check needs Python 3.11 or newer)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3 tests/chart/check.py failed ({}).\n\
         If a module is missing: run .ci/run, or \
         pip install helm-python-sdk==0.2.2 kubernetes-validate==1.37.0\n\
         --- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    print!("{stdout}");
}
