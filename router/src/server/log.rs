//! Connection-level events as JSON lines on stderr (the gateway's format),
//! never on the per-message path. At most [`LINES_PER_SECOND`] lines a
//! second; the rest are counted and reported in the next line that passes.

use std::cell::Cell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines written per second at most, so a storm of bad peers cannot flood.
pub(super) const LINES_PER_SECOND: u32 = 50;

thread_local! {
    static BUDGET: Cell<(u64, u32, u64)> = const { Cell::new((0, 0, 0)) };
}

fn write(level: &str, event: &str, message: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let second = now.as_secs();
    let suppressed = BUDGET.with(|budget| {
        let (window, used, suppressed) = budget.get();
        let (used, suppressed) = if window == second {
            (used, suppressed)
        } else {
            (0, suppressed)
        };
        if used >= LINES_PER_SECOND {
            budget.set((second, used, suppressed + 1));
            return None;
        }
        budget.set((second, used + 1, 0));
        Some(suppressed)
    });
    let Some(suppressed) = suppressed else {
        return;
    };
    let mut line = format!(
        "{{\"ts\":{:.3},\"level\":\"{level}\",\"component\":\"router\",\"event\":\"{event}\",\"msg\":{}",
        now.as_secs_f64(),
        json_string(message)
    );
    if suppressed > 0 {
        line.push_str(&format!(",\"suppressed_before\":{suppressed}"));
    }
    line.push_str("}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub(super) fn info(event: &str, message: &str) {
    write("info", event, message);
}

pub(super) fn warn(event: &str, message: &str) {
    write("warn", event, message);
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
