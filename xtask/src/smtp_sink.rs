//! A mail sink on loopback for the local stack's demo and the executor benchmark: it speaks
//! just enough SMTP (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no AUTH, no TLS)
//! to take every message it is sent, over as many messages per connection as the client sends
//! (so connection reuse shows), and hands each one on. It stands for the remote mail server,
//! as the demo's HTTP receiver stands for a webhook's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A message the sink took.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, as sent (dot-stuffing undone), lines ending CRLF.
    pub data: String,
}

impl Mail {
    /// A header's value (first line only: enough for the demo's subject and addresses).
    pub fn header(&self, name: &str) -> &str {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        head.split("\r\n")
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name).then(|| value.trim())
            })
            .unwrap_or_default()
    }
}

/// A running sink: its port, and how many connections it has accepted.
pub struct SmtpSink {
    pub port: u16,
    pub connections: Arc<AtomicU64>,
}

impl SmtpSink {
    /// Listens on 127.0.0.1 (port 0 chooses one); every message taken goes to `mail`.
    pub async fn start(port: u16, mail: mpsc::UnboundedSender<Mail>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let port = listener.local_addr()?.port();
        let connections = Arc::new(AtomicU64::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                let mail = mail.clone();
                tokio::spawn(async move {
                    let _ = session(stream, mail).await;
                });
            }
        });
        Ok(Self { port, connections })
    }
}

async fn session(stream: TcpStream, mail: mpsc::UnboundedSender<Mail>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 herald-sink ESMTP\r\n").await?;
    let mut envelope = Mail {
        from: String::new(),
        to: Vec::new(),
        data: String::new(),
    };
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end();
        let verb = command.get(..4).unwrap_or(command).to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-herald-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" | "NOOP" => b"250 OK\r\n",
            "MAIL" => {
                envelope.from = address(command);
                envelope.to.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                envelope.to.push(address(command));
                b"250 OK\r\n"
            }
            "RSET" => {
                envelope.to.clear();
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                envelope.data = data(&mut lines).await?;
                let _ = mail.send(envelope.clone());
                b"250 OK queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The address between `<` and `>` of a MAIL or RCPT command.
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command.rfind('>').unwrap_or(command.len());
    command.get(start..end).unwrap_or_default().to_owned()
}

/// The message after DATA, up to the line holding a single dot.
async fn data(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<String> {
    let mut message = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text == "." {
            return Ok(message);
        }
        message.push_str(text.strip_prefix('.').unwrap_or(text));
        message.push_str("\r\n");
    }
}
