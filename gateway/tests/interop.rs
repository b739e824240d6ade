//! Real clients through an echo gateway: the Python `websockets` package and
//! headless Chromium exchange text and binary messages of 0 B to 1 MiB and
//! close with 1000; afterwards the gateway must still serve a fresh client.
//!
//! Neither test skips. CI installs both clients
//! (`python3 -m pip install 'websockets>=13'`, `apt-get install -y chromium`);
//! when one is missing the test fails and says how to install it.
//! Every wait is bounded (`CLIENT_TIMEOUT`); processes are stopped by PID.

// A test crate's root resolves modules from `tests/`; these live with the
// page and the script.
#[path = "interop/browser.rs"]
mod browser;
mod common;
#[path = "interop/page_server.rs"]
mod page_server;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use browser::{Browser, TempDir};
use common::{Event, Gateway};
use page_server::PageServer;
use ringgate_wscodec::OpCode;

/// Room for 1 MiB messages, plus a write queue that holds a pipelined batch
/// of every size both ways.
const LARGE_MESSAGE_LIMITS: &str = "[limits]
max_write_queue_bytes = 4194304
max_frame_bytes = 2097152
max_text_message_bytes = 2097152
max_binary_message_bytes = 2097152
";

/// How long one client run may take before it is killed and the test fails.
/// A passing run takes under a second (Python) or one to two (Chromium).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Proxy settings would send loopback traffic elsewhere (websockets >= 15
/// honours them); the tests are loopback only.
const PROXY_VARIABLES: [&str; 6] = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

const BROWSER_PAGE: &[u8] = include_bytes!("interop/browser.html");

#[test]
fn python_websockets_client_exchanges_messages_and_closes_cleanly() {
    let mut gateway = Gateway::start(LARGE_MESSAGE_LIMITS);
    let script = interop_dir().join("python_client.py");
    let url = format!("ws://{}/", gateway.address);

    let mut command = Command::new("python3");
    // Unbuffered, so the steps done so far show even if the run is killed.
    command.arg("-u").arg(&script).arg(&url);
    for variable in PROXY_VARIABLES {
        command.env_remove(variable);
    }
    let started = Instant::now();
    let output = run_bounded(command, CLIENT_TIMEOUT).unwrap_or_else(|error| {
        panic!(
            "cannot run python3 {}: {error} (CI installs python3 and websockets)",
            script.display()
        )
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python websockets client failed ({}) after {:?}\n--- stdout\n{stdout}--- stderr\n{stderr}\
         --- gateway stderr\n{}",
        output.status,
        started.elapsed(),
        gateway.stderr()
    );
    assert!(
        stdout.trim_end().ends_with("PASS"),
        "no PASS line:\n{stdout}"
    );
    println!("python client passed in {:?}\n{stdout}", started.elapsed());

    assert_still_serving(&mut gateway);
}

#[test]
fn headless_chromium_exchanges_messages_and_closes_cleanly() {
    let mut gateway = Gateway::start(LARGE_MESSAGE_LIMITS);
    let page_server = PageServer::start(BROWSER_PAGE, CLIENT_TIMEOUT);
    let url = format!(
        "http://{}/browser.html?gateway={}",
        page_server.address, gateway.address
    );
    let profile = TempDir::create("chromium-profile");

    let started = Instant::now();
    let mut browser = Browser::launch(&url, profile.path());
    let dom = page_server.wait_result(CLIENT_TIMEOUT);
    let elapsed = started.elapsed();
    browser.stop();
    let dom = dom.unwrap_or_else(|| {
        panic!(
            "chromium reported no result within {CLIENT_TIMEOUT:?} for {url}\n\
             --- chromium stderr (tail)\n{}--- gateway stderr\n{}",
            browser.stderr_tail(),
            gateway.stderr()
        )
    });
    let (title, log) = (
        between(&dom, "<title>", "</title>"),
        between(&dom, "<pre id=\"log\">", "</pre>"),
    );
    assert_eq!(
        title,
        Some("PASS"),
        "chromium page did not pass after {elapsed:?}\n--- page log\n{}\n\
         --- chromium stderr (tail)\n{}--- gateway stderr\n{}",
        unescape(log.unwrap_or(&dom)),
        browser.stderr_tail(),
        gateway.stderr()
    );
    println!(
        "chromium page passed in {elapsed:?}\n{}",
        unescape(log.unwrap_or_default())
    );

    assert_still_serving(&mut gateway);
}

/// The text between the first `start` and the next `end` (the page's DOM is
/// serialised by the browser, so a plain search is enough).
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let after = &text[text.find(start)? + start.len()..];
    Some(&after[..after.find(end)?])
}

/// Undoes the escaping the browser applies to text in serialised HTML.
fn unescape(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

/// The gateway process survived the client and a fresh connection echoes
/// and closes with 1000.
fn assert_still_serving(gateway: &mut Gateway) {
    let exited = gateway.child.try_wait().unwrap();
    assert!(
        exited.is_none(),
        "gateway exited ({exited:?}); stderr:\n{}",
        gateway.stderr()
    );
    let mut client = gateway.connect();
    client.send(OpCode::Text, b"still serving");
    assert_eq!(client.next(), Event::Text(b"still serving".to_vec()));
    client.send(OpCode::Close, &1000u16.to_be_bytes());
    assert_eq!(client.expect_close(), Some(1000));
    client.expect_eof();
}

/// Runs `command` to completion with captured output, killing it (by PID)
/// if it outlives `timeout`.
fn run_bounded(mut command: Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill()?;
            let status = child.wait()?;
            let mut text = stderr.join().unwrap();
            text.extend_from_slice(format!("\nkilled after {timeout:?}\n").as_bytes());
            return Ok(Output {
                status,
                stdout: stdout.join().unwrap(),
                stderr: text,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    })
}

fn collect(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// The same clients over wss, trusting the project's test CA
/// (gateway/tests/tls_certs, test-only keys).
mod over_tls {
    use super::*;

    fn certs() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls_certs")
    }

    fn tls_gateway() -> Gateway {
        let certs = certs();
        Gateway::start(&format!(
            "{LARGE_MESSAGE_LIMITS}[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            certs.join("server.pem").display(),
            certs.join("server.key").display()
        ))
    }

    /// Stops the gateway and checks it completed `handshakes` TLS handshakes.
    fn assert_handshakes(mut gateway: Gateway, at_least: u64) {
        gateway.signal("TERM");
        assert_eq!(gateway.wait_exit(Duration::from_secs(15)), Some(0));
        let stderr = gateway.stderr();
        let count: u64 = stderr
            .split("tls_handshakes: ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse().ok())
            .unwrap_or_else(|| panic!("no tls_handshakes counter in:\n{stderr}"));
        assert!(count >= at_least, "{count} TLS handshakes:\n{stderr}");
    }

    #[test]
    fn python_websockets_over_wss_with_the_test_ca() {
        let gateway = tls_gateway();
        let url = format!("wss://localhost:{}/", gateway.address.port());
        let mut command = Command::new("python3");
        command
            .arg("-u")
            .arg(interop_dir().join("python_client.py"))
            .arg(&url)
            .arg(certs().join("ca.pem"));
        for variable in PROXY_VARIABLES {
            command.env_remove(variable);
        }
        let output = run_bounded(command, CLIENT_TIMEOUT).expect("run python3");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.trim_end().ends_with("PASS"),
            "python over wss failed\n--- stdout\n{stdout}--- stderr\n{}--- gateway\n{}",
            String::from_utf8_lossy(&output.stderr),
            gateway.stderr()
        );
        assert_handshakes(gateway, 1);
    }

    #[test]
    fn headless_chromium_over_wss_with_the_test_ca() {
        // Chromium reads trusted CAs from $HOME/.pki/nssdb: a throwaway
        // home with only the test CA in it (certutil: Debian libnss3-tools).
        let home = TempDir::create("chromium-home");
        let nssdb = home.path().join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb).unwrap();
        let database = format!("sql:{}", nssdb.display());
        let run = |args: &[&str]| {
            let status = Command::new("certutil").args(args).status().unwrap_or_else(|error| {
                panic!("cannot run certutil: {error} (install it with `apt-get install -y libnss3-tools`)")
            });
            assert!(status.success(), "certutil {args:?}");
        };
        run(&["-d", &database, "-N", "--empty-password"]);
        let ca = certs().join("ca.pem");
        run(&[
            "-d",
            &database,
            "-A",
            "-t",
            "C,,",
            "-n",
            "ringgate-test-ca",
            "-i",
            ca.to_str().unwrap(),
        ]);

        let gateway = tls_gateway();
        let page_server = PageServer::start(BROWSER_PAGE, CLIENT_TIMEOUT);
        let url = format!(
            "http://{}/browser.html?scheme=wss&gateway=localhost:{}",
            page_server.address,
            gateway.address.port()
        );
        let profile = TempDir::create("chromium-profile");
        let mut browser = Browser::launch_with_home(&url, profile.path(), Some(home.path()));
        let dom = page_server.wait_result(CLIENT_TIMEOUT);
        browser.stop();
        let dom = dom.unwrap_or_else(|| {
            panic!(
                "chromium reported no result over wss\n--- chromium stderr (tail)\n{}--- gateway\n{}",
                browser.stderr_tail(),
                gateway.stderr()
            )
        });
        assert_eq!(
            between(&dom, "<title>", "</title>"),
            Some("PASS"),
            "chromium over wss did not pass\n--- page\n{}\n--- gateway\n{}",
            unescape(between(&dom, "<pre id=\"log\">", "</pre>").unwrap_or(&dom)),
            gateway.stderr()
        );
        assert_handshakes(gateway, 1);
    }
}
