//! Running `python3` from the interop tests (standard library only; CI installs nothing more
//! for these).

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `python3 -c script` with `input` on stdin; returns stdout, failing the test with
/// stderr when Python fails.
pub fn python(script: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be on the PATH for the interop tests");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}
