//! The documented multi-process layout (router/examples/cluster/run.sh:
//! 2 routers, 2 gateways, the chat_history backend) starts and carries a
//! message end to end, checked by the script's own smoke mode.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_cluster_script_runs_end_to_end() {
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_ringgate"))
        .parent()
        .unwrap()
        .to_path_buf();
    if !bin_dir.join("ringgate-router").exists() || !bin_dir.join("examples/chat_history").exists()
    {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "ringgate-router",
                "--bin",
                "ringgate-router",
                "--example",
                "chat_history",
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../router/examples/cluster/run.sh"
    );
    let output = Command::new("timeout")
        .args(["120", script, "--smoke"])
        .env("BIN_DIR", &bin_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("smoke: ok"),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
