//! The outbound queue's promise under `kill -9` (design §4.2): the real binary
//! (`postern serve`) takes messages through the send API while it is killed with SIGKILL at
//! random moments and restarted; at the end every message that got a 202 has reached the
//! downstream server (Postfix's `smtp-sink`, relayed to by IP) at least once. Duplicates are
//! allowed, loss is not.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::free_port;

const KILLS: usize = 5;

fn postern(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_postern"));
    command
        .env(
            "CREDENTIALS_DIRECTORY",
            crate::support::binary::credentials_directory(),
        )
        .env("POSTERN_CONFIG", config)
        .env("POSTERN_LOG", "warn");
    command
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} did not open");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn smtp_sink() -> Option<PathBuf> {
    ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Every message UUID that appears in a Message-ID in the sink's dump files.
fn delivered_ids(dump: &Path) -> HashSet<String> {
    let re = regex::Regex::new(r"(?i)message-id:\s*<([0-9a-f-]{36})@").unwrap();
    let mut ids = HashSet::new();
    for entry in std::fs::read_dir(dump).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        ids.extend(re.captures_iter(&text).map(|c| c[1].to_string()));
    }
    ids
}

/// A deterministic pseudo-random sequence (the seed is printed, so a failure replays).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_accepted_message_is_lost_when_the_process_is_killed() {
    let Some(sink_binary) = smtp_sink() else {
        assert!(
            std::env::var("TEST_OUTBOUND").as_deref() != Ok("required"),
            "smtp-sink (Debian package postfix) is required"
        );
        eprintln!("skipped: smtp-sink not installed (apt-get install postfix)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sink");
    std::fs::create_dir(&dump).unwrap();
    // smtp-sink drops privileges to nobody, who must be able to reach and write the dumps
    // (the test process may run with postern's umask 077: see `support::private`). The
    // data directory below is the binary's own, created 0700 inside.
    Command::new("chmod")
        .args(["755", dir.path().to_str().unwrap()])
        .status()
        .unwrap();
    Command::new("chmod")
        .args(["777", dump.to_str().unwrap()])
        .status()
        .unwrap();
    let sink_port = free_port();
    let mut sink = Command::new(sink_binary)
        .args(["-u", "nobody", "-d"])
        .arg(format!("{}/%H%M%S.", dump.display()))
        .arg(format!("127.0.0.1:{sink_port}"))
        .arg("64")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("smtp-sink starts");
    wait_for_port(sink_port);

    let (web_port, smtp_port) = (free_port(), free_port());
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"crash.test\"\ndata_dir = \"{}\"\n\
             [smtp]\nlisten = \"127.0.0.1:{smtp_port}\"\n[web]\nlisten = \"127.0.0.1:{web_port}\"\n\
             [auth]\nspf = false\n[outbound]\nrelay = \"smtp://127.0.0.1:{sink_port}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let ok = postern(&config)
        .args(["sending-domain", "add", "example.com"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let made = postern(&config)
        .args(["credential", "add", "app"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let token = String::from_utf8(made.stdout)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut random = Lcg(seed);
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{web_port}/api/v0.1/app/messages");

    let start = |config: &Path| -> Child {
        let child = postern(config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postern serve starts");
        wait_for_port(web_port);
        child
    };

    for round in 0..=KILLS {
        let mut server = start(&config);
        let accepted_before = accepted.lock().unwrap().len();
        // Senders run until the kill (or, in the last round, for a fixed count).
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders = Vec::new();
        for sender in 0..6 {
            let (client, url, token, accepted, stop) = (
                client.clone(),
                url.clone(),
                token.clone(),
                accepted.clone(),
                stop.clone(),
            );
            // The last round has a live server throughout: there, any failure is a failure.
            let last = round == KILLS;
            senders.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 40 {
                    n += 1;
                    let message = serde_json::json!({
                        "from": "app@example.com",
                        "to": format!("r{round}-{sender}-{n}@sink.test"),
                        "subject": "crash test",
                        "plain": "hello",
                    });
                    let sent = client.post(&url).bearer_auth(&token).json(&message).send();
                    let body = match sent.await {
                        Ok(response) if response.status().as_u16() == 202 => {
                            response.json::<serde_json::Value>().await.ok()
                        }
                        Ok(response) => {
                            assert!(!last, "the restarted server answered {}", response.status());
                            None
                        }
                        Err(error) => {
                            assert!(!last, "the restarted server failed a send: {error}");
                            None
                        }
                    };
                    // Killed mid-answer: this message may or may not be queued; not counted.
                    let Some(body) = body else { break };
                    accepted
                        .lock()
                        .unwrap()
                        .push(body["id"].as_str().unwrap().to_string());
                }
            }));
        }
        if round < KILLS {
            let delay = 50 + random.next(600);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            server.kill().unwrap(); // SIGKILL
            server.wait().unwrap();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for sender in senders {
                sender.await.unwrap();
            }
        } else {
            for sender in senders {
                sender.await.unwrap();
            }
            assert_eq!(
                accepted.lock().unwrap().len() - accepted_before,
                6 * 40,
                "after the last restart every send is accepted"
            );
            // The last instance lives until everything accepted has arrived.
            let wanted: HashSet<String> = accepted.lock().unwrap().iter().cloned().collect();
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let missing: Vec<String> =
                    wanted.difference(&delivered_ids(&dump)).cloned().collect();
                if missing.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    server.kill().unwrap();
                    sink.kill().unwrap();
                    panic!(
                        "{} of {} accepted messages never arrived (seed {seed}), e.g. {:?}",
                        missing.len(),
                        wanted.len(),
                        &missing[..missing.len().min(5)]
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            eprintln!(
                "crash test: {} accepted across {KILLS} kills, all delivered",
                wanted.len()
            );
            terminate(&server);
            server.wait().unwrap();
        }
    }
    sink.kill().unwrap();
    let _ = sink.wait();
    assert!(
        accepted.lock().unwrap().len() > KILLS * 5,
        "too few messages were accepted for the test to mean anything"
    );
}

fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

/// One message over SMTP to the MX listener, tolerating a server that dies mid-way: true
/// only when the end of data got a 250 (the promise), false on anything else.
async fn try_mail(port: u16, subject: &str) -> bool {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        // Each reply: lines until one whose 4th character is a space; its code.
        async fn reply(
            lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
        ) -> Option<String> {
            loop {
                let line = lines.next_line().await.ok()??;
                if line.len() < 4 || line.as_bytes()[3] == b' ' {
                    return Some(line);
                }
            }
        }
        let expect = |line: Option<String>, code: &str| line.filter(|l| l.starts_with(code));
        expect(reply(&mut lines).await, "220")?;
        for (command, code) in [
            ("EHLO crash.test\r\n".to_string(), "250"),
            ("MAIL FROM:<sender@example.net>\r\n".to_string(), "250"),
            ("RCPT TO:<app@example.com>\r\n".to_string(), "250"),
            ("DATA\r\n".to_string(), "354"),
            (
                format!("Subject: {subject}\r\nFrom: sender@example.net\r\n\r\nhello\r\n.\r\n"),
                "250",
            ),
        ] {
            write.write_all(command.as_bytes()).await.ok()?;
            expect(reply(&mut lines).await, code)?;
        }
        let _ = write.write_all(b"QUIT\r\n").await;
        Some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), attempt).await,
        Ok(Some(()))
    )
}

/// The inbound queue's promise under `kill -9` (`delivery = "queued"`): the real binary is
/// killed with SIGKILL at random moments while SMTP clients send to a queued address whose
/// app is slow (so a backlog is queued, and POSTs are in flight at the kill); at the end
/// every message that got a 250 has been POSTed to the app at least once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_queued_message_is_lost_when_the_process_is_killed() {
    const ROUNDS: usize = 3;
    let receiver = crate::support::Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (web_port, smtp_port) = (free_port(), free_port());
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"crash.test\"\ndata_dir = \"{}\"\n\
             [smtp]\nlisten = \"127.0.0.1:{smtp_port}\"\n[web]\nlisten = \"127.0.0.1:{web_port}\"\n\
             [auth]\nspf = false\n\
             [[address]]\naddress = \"*@example.com\"\ntarget = \"{}\"\ndelivery = \"queued\"\n",
            dir.path().join("data").display(),
            receiver.url("/slow/100"),
        ),
    )
    .unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("inbound crash test seed {seed}");
    let mut random = Lcg(seed);
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let posted = || -> HashSet<String> {
        receiver
            .requests()
            .iter()
            .filter_map(|r| r.json()["headers"]["subject"].as_str().map(str::to_string))
            .collect()
    };
    for round in 0..=ROUNDS {
        let mut server = postern(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postern serve starts");
        wait_for_port(smtp_port);
        let last = round == ROUNDS;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders = Vec::new();
        for sender in 0..4 {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            senders.push(tokio::spawn(async move {
                // Until the kill (the last round: a fixed count, with a live server throughout).
                let count = if last { 30 } else { 1_000 };
                for n in 0..count {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let subject = format!("m{round}-{sender}-{n}");
                    if try_mail(smtp_port, &subject).await {
                        accepted.lock().unwrap().push(subject);
                    } else {
                        assert!(!last, "the restarted server refused {subject}");
                        break;
                    }
                }
            }));
        }
        if !last {
            tokio::time::sleep(Duration::from_millis(100 + random.next(500))).await;
            server.kill().unwrap(); // SIGKILL
            server.wait().unwrap();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for sender in senders {
                sender.await.unwrap();
            }
            continue;
        }
        for sender in senders {
            sender.await.unwrap();
        }
        let wanted: HashSet<String> = accepted.lock().unwrap().iter().cloned().collect();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let missing: Vec<String> = wanted.difference(&posted()).cloned().collect();
            if missing.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                server.kill().unwrap();
                panic!(
                    "{} of {} accepted messages were never POSTed (seed {seed}), e.g. {:?}",
                    missing.len(),
                    wanted.len(),
                    &missing[..missing.len().min(5)]
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let before_last = wanted
            .iter()
            .filter(|s| !s.starts_with(&format!("m{ROUNDS}-")))
            .count();
        eprintln!(
            "inbound crash test: {} accepted ({before_last} before the last kill), all POSTed; {} POSTs in all",
            wanted.len(),
            receiver.requests().len()
        );
        assert!(
            before_last > ROUNDS * 3,
            "too few messages were accepted before the kills to mean anything"
        );
        terminate(&server);
        server.wait().unwrap();
    }
}
