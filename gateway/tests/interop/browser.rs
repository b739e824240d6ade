//! Headless Chromium for the interop test: started in its own process group
//! with a fresh profile directory, stopped by that group's id.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Headless Chromium in its own process group, so stopping it (by that
/// group's id) also stops its renderer and utility processes.
pub struct Browser {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    stopped: bool,
}

/// Chromium's stderr is chatty (D-Bus, GPU); keep only its end for reports.
const BROWSER_STDERR_KEPT_BYTES: usize = 16 << 10;

impl Browser {
    pub fn launch(url: &str, profile: &Path) -> Browser {
        Browser::launch_with_home(url, profile, None)
    }

    /// As `launch`, with HOME pointing at `home` (whose `.pki/nssdb` holds
    /// the certificates Chromium trusts, for wss with a test CA).
    pub fn launch_with_home(url: &str, profile: &Path, home: Option<&Path>) -> Browser {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("chromium");
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--no-proxy-server",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        for variable in super::PROXY_VARIABLES {
            command.env_remove(variable);
        }
        if let Some(home) = home {
            command.env("HOME", home);
        }
        let mut child = command.spawn().unwrap_or_else(|error| {
            panic!("cannot start chromium: {error} (install it with `apt-get install -y chromium`)")
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                let mut kept = sink.lock().unwrap();
                kept.extend_from_slice(&buffer[..n]);
                let excess = kept.len().saturating_sub(BROWSER_STDERR_KEPT_BYTES);
                kept.drain(..excess);
            }
        });
        Browser {
            child,
            stderr,
            stopped: false,
        }
    }

    /// Kills the whole process group and waits (bounded) until it is gone,
    /// so the profile directory can be removed.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let alive = Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if !alive {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A directory under the system temp dir, removed (with its contents) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn create(label: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ringgate-interop-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
