//! Start-up, shutdown and failure logs as JSON lines on stderr.
//!
//! Deliberately tiny until the observability work replaces it with
//! `tracing`: one line per event, never on the per-message path.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

fn write(level: &str, event: &str, message: &str) {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let line = format!(
        "{{\"ts\":{timestamp:.3},\"level\":\"{level}\",\"event\":\"{event}\",\"msg\":{}}}\n",
        json_string(message)
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub fn info(event: &str, message: &str) {
    write("info", event, message);
}

pub fn warn(event: &str, message: &str) {
    write("warn", event, message);
}

pub fn error(event: &str, message: &str) {
    write("error", event, message);
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_are_escaped() {
        assert_eq!(
            super::json_string("a\"b\\c\nd\u{1}"),
            "\"a\\\"b\\\\c\\nd\\u0001\""
        );
    }
}
