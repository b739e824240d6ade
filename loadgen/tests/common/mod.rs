//! The gateway harness of loadgen's integration tests: the workspace's
//! `ringgate` binary (beside loadgen's, built with `cargo build -p ringgate`
//! if missing) started on a free loopback port with a given config.

// Each test file compiles this module and uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The gateway process; killed (by its own handle) when the test ends.
pub struct Gateway {
    child: Child,
    pub url: String,
    pub started: Instant,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn loadgen() -> &'static str {
    env!("CARGO_BIN_EXE_ringgate-loadgen")
}

/// `ringgate` beside the loadgen binary, built if missing.
pub fn gateway_binary() -> PathBuf {
    let profile_dir = Path::new(loadgen())
        .parent()
        .expect("binary has a directory");
    let binary = profile_dir.join("ringgate");
    if binary.exists() {
        return binary;
    }
    let target_dir = profile_dir.parent().expect("profile dir has a parent");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", "ringgate"])
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    }
    let mut child = build.spawn().expect("cargo runs");
    let deadline = Instant::now() + BUILD_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("cargo is waitable") {
            assert!(status.success(), "cargo build -p ringgate failed: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cargo build -p ringgate took longer than {BUILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(binary.exists(), "no {} after the build", binary.display());
    binary
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringgate-loadgen-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `ringgate --shards 1` (plus `flags`) on a free loopback port with
/// `config_text` as its config, and reads the port from its first stdout line.
pub fn start_gateway(flags: &[&str], config_text: &str) -> Gateway {
    let config = temp_dir().join(format!("gateway-{}.toml", config_text.len()));
    std::fs::write(&config, config_text).unwrap();
    let mut child = Command::new(gateway_binary())
        .args(["--listen", "127.0.0.1:0", "--shards", "1", "--admin", "off"])
        .args(flags)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway starts");
    let started = Instant::now();
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("gateway prints its address");
    let address = line
        .trim()
        .strip_prefix("ringgate listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Gateway {
        child,
        url: format!("ws://{address}/"),
        started,
    }
}

pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

/// Runs loadgen with `args` plus `--quiet --json FILE`; returns the JSON.
pub fn run_loadgen(name: &str, args: &[&str]) -> Value {
    let json = temp_dir().join(format!("{name}.json"));
    let output = Command::new(loadgen())
        .args(args)
        .args(["--quiet", "--json"])
        .arg(&json)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "loadgen failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{stdout}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}
