//! The cold-start floor of the benchmarks (bench/README.md): a minimal Rust
//! program that only starts, fetches its event from the Lambda Runtime API,
//! makes the same first AWS request a function makes, and posts the answer
//! as its result. No SDK, no async runtime, no TLS, no signature (the local
//! AWS does not check signatures, but it routes a request to a service by
//! the credential scope of its `Authorization` header, so the floor sends
//! one with a dummy signature): three plain HTTP/1.1 exchanges over
//! loopback, which every function must make too. A function's cold start
//! divided by this is what its SDK, configuration and handler cost.
//!
//! Environment: `AWS_LAMBDA_RUNTIME_API` (host:port, set by the harness),
//! `AWS_ENDPOINT_URL` (`http://host:port`), `AWS_REGION`, `FLOOR_REQUEST`
//! (the first request: `SERVICE METHOD /path` then, after a blank line, a
//! form body, e.g. `ec2 POST /` and `Action=DescribeSnapshots&Version=2016-11-15`).
//! An answer other than 2xx fails the run: the floor must make a request
//! the service accepts.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

/// An HTTP answer: status, headers (lower-cased names), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// One HTTP/1.1 exchange on a fresh connection.
fn exchange(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Answer> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_nodelay(true)?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut message = request.into_bytes();
    message.extend_from_slice(body);
    stream.write_all(&message)?;

    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
            if name == "content-length" {
                length = value.parse::<usize>().ok();
            }
            headers.push((name, value));
        }
    }
    let mut body = Vec::new();
    match length {
        Some(length) => {
            body.resize(length, 0);
            reader.read_exact(&mut body)?;
        }
        None => {
            reader.read_to_end(&mut body)?;
        }
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn env(name: &str) -> io::Result<String> {
    std::env::var(name).map_err(|_| io::Error::new(io::ErrorKind::NotFound, format!("{name} is not set")))
}

fn run() -> io::Result<()> {
    let runtime = env("AWS_LAMBDA_RUNTIME_API")?;
    let endpoint = env("AWS_ENDPOINT_URL")?;
    let endpoint = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let region = env("AWS_REGION")?;
    let first = env("FLOOR_REQUEST")?;
    let (request_line, form) = first.split_once("\n\n").unwrap_or((first.as_str(), ""));
    let mut words = request_line.split(' ');
    let (Some(service), Some(method), Some(path)) = (words.next(), words.next(), words.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("FLOOR_REQUEST must start with `SERVICE METHOD /path`, not {request_line:?}"),
        ));
    };
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );

    let next = exchange(&runtime, "GET", "/2018-06-01/runtime/invocation/next", &[], b"")?;
    let request_id = next
        .headers
        .iter()
        .find(|(name, _)| name == "lambda-runtime-aws-request-id")
        .map(|(_, value)| value.clone())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no request id"))?;

    let answer = exchange(
        &endpoint,
        method,
        path,
        &[
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
            ("Authorization", &authorization),
        ],
        form.as_bytes(),
    )?;
    if !(200..300).contains(&answer.status) {
        return Err(io::Error::other(format!(
            "{service} answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )));
    }
    let result = format!("{{\"status\":{},\"bytes\":{}}}", answer.status, answer.body.len());
    exchange(
        &runtime,
        "POST",
        &format!("/2018-06-01/runtime/invocation/{request_id}/response"),
        &[("Content-Type", "application/json")],
        result.as_bytes(),
    )?;
    // Like a runtime loop, wait for the next event; the harness reads the
    // peak memory and ends the process here.
    exchange(&runtime, "GET", "/2018-06-01/runtime/invocation/next", &[], b"")?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-floor: {err}");
            ExitCode::FAILURE
        }
    }
}
