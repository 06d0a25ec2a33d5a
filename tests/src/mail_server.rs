//! A real SMTP server on loopback (aiosmtpd, `tests/python/smtp_sink.py`) standing for the
//! remote mail server, as [`crate::Receiver`] stands for an HTTP one. `cargo xtask test`
//! installs aiosmtpd; without it the server does not start and the test fails, naming it.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A message the server took.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The message as sent (headers and body), line breaks as CRLF.
    pub data: String,
    /// The user it logged in as, if it did.
    pub login: Option<String>,
}

impl Mail {
    /// A header's value, unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// A running SMTP server; stopped when dropped.
pub struct MailServer {
    pub port: u16,
    child: Child,
    /// Held open: the server runs until it closes.
    _stdin: ChildStdin,
    mail: Arc<Mutex<Vec<Mail>>>,
}

impl MailServer {
    /// A server taking any message; with `auth` (`user:password`) it offers AUTH and takes
    /// only that login.
    pub fn start(auth: Option<&str>) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/smtp_sink.py");
        let mut command = Command::new("python3");
        command.arg(script);
        if let Some(auth) = auth {
            command.args(["--auth", auth]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the test SMTP server");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_else(|| {
            panic!("the test SMTP server did not start (is aiosmtpd installed?)")
        });
        let port = first
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the test SMTP server said {first:?}"));
        let mail = Arc::new(Mutex::new(Vec::new()));
        let taken = mail.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(message) = serde_json::from_str::<Mail>(&line) {
                    taken.lock().unwrap().push(message);
                }
            }
        });
        Self {
            port,
            child,
            _stdin: stdin,
            mail,
        }
    }

    /// Every message taken so far.
    pub fn mail(&self) -> Vec<Mail> {
        self.mail.lock().unwrap().clone()
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
