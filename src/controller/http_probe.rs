//! One plain-HTTP GET with a deadline, for asking a log whether it serves:
//! the status code and the start of the body. Only `http://host[:port]/path`
//! URLs, which is what a stack's in-cluster services are.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// How much of a body is kept for a message.
const BODY_LIMIT: usize = 300;

/// What a GET got: the status code and the start of the body, or why
/// there was no answer.
pub async fn get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let exchange = async {
        let mut stream = TcpStream::connect(&address)
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("cannot send to {address}: {e}"))?;
        let mut response = Vec::new();
        stream
            .take(64 * 1024)
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("cannot read from {address}: {e}"))?;
        parse(&response).ok_or_else(|| format!("{address} sent no HTTP response"))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer from {address} in {timeout:?}"))?
}

/// The status code and the start of the body of an HTTP/1.x response.
fn parse(response: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(response);
    let mut status = text.lines().next()?.split_whitespace();
    status.next().filter(|v| v.starts_with("HTTP/1."))?;
    let code = status.next()?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Some((code, body.trim().chars().take(BODY_LIMIT).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_gives_its_code_and_body() {
        let r = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\r\n{\"code\":500,\"message\":\"unexpected error communicating with transparency log\"}\n";
        let (code, body) = parse(r).unwrap();
        assert_eq!(code, 500);
        assert!(body.contains("transparency log"));
        assert_eq!(parse(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    #[tokio::test]
    async fn a_real_server_answers_and_a_closed_port_does_not() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /api/v1/log HTTP/1.1"));
            s.write_all(b"HTTP/1.1 200 OK\r\n\r\n{\"treeSize\":1}")
                .await
                .unwrap();
        });
        let url = format!("http://127.0.0.1:{port}/api/v1/log");
        let got = get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(got, (200, "{\"treeSize\":1}".to_owned()));
        // Nothing listens there now.
        assert!(get(&url, Duration::from_secs(5)).await.is_err());
        assert!(get("https://x/", Duration::from_secs(1)).await.is_err());
    }
}
