//! `imppd ctl [--db FILE | --socket PATH] [--json] COMMAND ARGS...`: one request to a
//! running imppd over its control socket (see `control.rs`), its answer printed for people
//! (aligned columns) or, with `--json`, as the JSON the server sent.
//!
//! Exit status: 0 done; 1 no imppd answers, or the server failed; 2 the command or its
//! arguments were wrong (nothing changed).

use std::io::{Read, Write as _};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use super::control;

/// The longest answer read (a table of many subscriptions fits easily).
const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// Exit 2, for a command line wrong before anything was sent.
const LOCAL_USAGE: u8 = 3;

pub const USAGE: &str = "usage: imppd ctl [--db FILE | --socket PATH] [--json] COMMAND [ARGS...]";

/// Runs `imppd ctl` with the arguments after `ctl`.
pub fn main(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err((code, message)) => {
            eprintln!("imppd ctl: {message}");
            // A command line ctl could not read gets the usage; the server's refusals say
            // what was wrong themselves.
            if code == LOCAL_USAGE {
                eprintln!("{USAGE}\ncommands: {}", control::COMMANDS);
            }
            ExitCode::from(code.min(2))
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, (u8, String)> {
    let mut db = PathBuf::from("imppd.db");
    let mut socket: Option<PathBuf> = None;
    let mut as_json = false;
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        // Options come before the command; after it everything is the command's.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if rest.is_empty() => (n, Some(v.to_owned())),
            _ => (arg, None),
        };
        let mut value = || -> Result<String, (u8, String)> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            args.get(i)
                .cloned()
                .ok_or((LOCAL_USAGE, format!("{name} needs a value")))
        };
        match name {
            "--db" if rest.is_empty() => db = PathBuf::from(value()?),
            "--socket" if rest.is_empty() => socket = Some(PathBuf::from(value()?)),
            "--json" if rest.is_empty() => as_json = true,
            "--help" if rest.is_empty() => return Err((LOCAL_USAGE, "help".into())),
            other if rest.is_empty() && other.starts_with("--") => {
                return Err((LOCAL_USAGE, format!("unknown option {other}")))
            }
            _ => rest.push(args[i].clone()),
        }
        i += 1;
    }
    let Some((cmd, cmd_args)) = rest.split_first() else {
        return Err((LOCAL_USAGE, "no command".into()));
    };
    let path = socket.unwrap_or_else(|| control::default_path(&db));
    let mut conn = UnixStream::connect(&path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            std::io::ErrorKind::NotFound => "no such socket".to_string(),
            _ => e.to_string(),
        };
        (
            1,
            format!("no imppd is running on {} ({why})", path.display()),
        )
    })?;
    let timeout = Some(Duration::from_secs(30));
    let _ = conn.set_read_timeout(timeout);
    let _ = conn.set_write_timeout(timeout);
    let mut request = json!({"cmd": cmd, "args": cmd_args}).to_string();
    request.push('\n');
    let talk = |conn: &mut UnixStream| -> std::io::Result<String> {
        conn.write_all(request.as_bytes())?;
        let mut answer = String::new();
        conn.take(MAX_ANSWER).read_to_string(&mut answer)?;
        Ok(answer)
    };
    let text = talk(&mut conn).map_err(|e| (1, format!("imppd on {}: {e}", path.display())))?;
    let answer: Value = serde_json::from_str(text.trim_end()).map_err(|e| {
        (
            1,
            format!("imppd on {} answered what is not JSON: {e}", path.display()),
        )
    })?;
    if answer.get("ok") != Some(&Value::Bool(true)) {
        let message = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("failed without a reason")
            .to_owned();
        let usage = answer.get("usage") == Some(&Value::Bool(true));
        if as_json {
            println!("{answer}");
        }
        return Err((if usage { 2 } else { 1 }, message));
    }
    if as_json {
        println!("{}", answer.get("result").unwrap_or(&Value::Null));
    } else {
        print!("{}", readable(&answer));
    }
    Ok(ExitCode::SUCCESS)
}

/// A value as a person reads it in a column: strings bare, nothing as `-`.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The answer for people: a sentence for a change, `name  value` lines for one record,
/// aligned columns under a header for a table (`(none)` when it is empty).
fn readable(answer: &Value) -> String {
    if let Some(message) = answer.get("message").and_then(Value::as_str) {
        return format!("{message}\n");
    }
    let columns: Vec<&str> = answer
        .get("columns")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match answer.get("result") {
        Some(Value::Object(record)) => {
            let width = columns.iter().map(|c| c.len()).max().unwrap_or(0);
            columns
                .iter()
                .map(|c| format!("{c:width$}  {}\n", cell(record.get(*c))))
                .collect()
        }
        Some(Value::Array(rows)) if rows.is_empty() => "(none)\n".into(),
        Some(Value::Array(rows)) => {
            let table: Vec<Vec<String>> =
                std::iter::once(columns.iter().map(|c| c.to_uppercase()).collect())
                    .chain(
                        rows.iter()
                            .map(|r| columns.iter().map(|c| cell(r.get(*c))).collect()),
                    )
                    .collect();
            let widths: Vec<usize> = (0..columns.len())
                .map(|i| {
                    table
                        .iter()
                        .map(|r| r[i].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let mut out = String::new();
            for row in table {
                let line: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:w$}"))
                    .collect();
                out.push_str(line.join("  ").trim_end());
                out.push('\n');
            }
            out
        }
        Some(other) => format!("{other}\n"),
        None => String::new(),
    }
}
