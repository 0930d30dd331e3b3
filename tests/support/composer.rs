//! The real `composer`, run against a baler.

use std::path::Path;
use std::process::Command;

/// Runs the real `composer` in `dir` (Packagist off, plain HTTP allowed).
pub fn composer(dir: &Path, args: &[&str]) {
    let home = dir.join(".composer-home");
    let output = Command::new("composer")
        .args(args)
        .args(["--no-interaction", "--no-progress", "--no-plugins"])
        .current_dir(dir)
        .env("COMPOSER_HOME", &home)
        .env("COMPOSER_CACHE_DIR", home.join("cache"))
        .env("COMPOSER_ALLOW_SUPERUSER", "1")
        .output()
        .expect("`composer` runs (Debian's `composer` package; .ci/run installs it)");
    assert!(
        output.status.success(),
        "composer {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
