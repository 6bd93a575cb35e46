//! Disk spooling (issue 15 item 1): content past `[smtp] spool_threshold` goes to a sealed,
//! unlinked file under `<data_dir>/spool` while it arrives, and the app gets it byte for
//! byte. The spool files are found the way an operator would: through `/proc/<pid>/fd`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use crate::support::{Receiver, TestApp, config_with_format, free_port};

const THRESHOLD: usize = 64 * 1024;
const MARKER: &str = "SPOOL-PLAINTEXT-MARKER";

/// A message of about `size` octets: header, then lines of varied text, some starting with a
/// dot (so dot-stuffing crosses the points where content is moved to the spool file).
fn message(size: usize) -> String {
    let mut text = String::from(
        "From: a@sender.test\r\nTo: rcpt@example.com\r\nSubject: big\r\nMessage-ID: <big@sender.test>\r\n\r\n",
    );
    let mut n: u64 = 0x9e37_79b9_7f4a_7c15;
    while text.len() < size {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let line = match n % 7 {
            0 => format!(".{MARKER} {n:x}"),
            1 => "..".to_string(),
            2 => String::new(),
            _ => format!("{MARKER} {} {n:016x}", "w".repeat((n % 60) as usize)),
        };
        text.push_str(&line);
        text.push_str("\r\n");
    }
    text
}

/// The message as DATA carries it: dot-stuffed, without the terminator.
fn stuffed(message: &str) -> String {
    message
        .split_inclusive("\r\n")
        .map(|line| match line.starts_with('.') {
            true => format!(".{line}"),
            false => line.to_string(),
        })
        .collect()
}

/// `Smtp::send_mail` ends the data with CRLF itself.
fn without_crlf(text: &str) -> &str {
    text.strip_suffix("\r\n").unwrap()
}

/// Waits until something listens on `addr`.
async fn wait_for_port(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} did not open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The spool files `pid` holds open under `data_dir`: their `/proc` paths.
fn spool_files(pid: &str, data_dir: &Path) -> Vec<PathBuf> {
    let spool = data_dir.join("spool");
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let target = std::fs::read_link(&path).ok()?;
            target.starts_with(&spool).then_some(path)
        })
        .collect()
}

/// Waits until `pid` holds a spool file under `data_dir` of at least `min` octets.
fn wait_for_spool_file(pid: &str, data_dir: &Path, min: u64) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(path) = spool_files(pid, data_dir)
            .into_iter()
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= min))
        {
            return path;
        }
        assert!(
            Instant::now() < deadline,
            "no spool file of {min} octets appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spooling(receiver: &Receiver, smtp: &str) -> String {
    config_with_format(
        &[("rcpt@example.com", receiver.url("/status/200"))],
        "raw",
        &format!("[smtp]\n{smtp}\n"),
    )
}

/// Whether the app's one raw payload (multipart/form-data) has `message` as a field value
/// exactly (between the end of a part's header and the next delimiter), and `md5` as
/// `envelope[md5]`.
fn posted_exactly(receiver: &Receiver, message: &str) -> bool {
    let body = receiver.single().body;
    let md5 = format!("{:x}", Md5::digest(message.as_bytes()));
    let field = format!("\r\n\r\n{message}\r\n--");
    let md5_field = format!("name=\"envelope[md5]\"\r\n\r\n{md5}\r\n");
    memchr::memmem::find(&body, field.as_bytes()).is_some()
        && memchr::memmem::find(&body, md5_field.as_bytes()).is_some()
}

async fn start_data(app: &TestApp) -> crate::support::smtp::Smtp {
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<a@sender.test>", "250").await;
    smtp.cmd("RCPT TO:<rcpt@example.com>", "250").await;
    smtp.cmd("DATA", "354").await;
    smtp
}

#[tokio::test]
async fn content_past_the_threshold_is_sealed_on_disk_and_reaches_the_app_as_sent() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&spooling(&receiver, "spool_threshold = 65536")).await;
    let data_dir = app.data_dir.path().to_path_buf();
    let original = message(700 * 1024);
    let wire = stuffed(&original);
    let mut smtp = start_data(&app).await;

    // Below the threshold the content stays in memory.
    smtp.send(&wire.as_bytes()[..THRESHOLD / 2]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(spool_files("self", &data_dir).is_empty());

    // Past it, a spool file holds it: sealed, and with no name in the directory.
    smtp.send(&wire.as_bytes()[THRESHOLD / 2..400 * 1024]).await;
    let file = tokio::task::spawn_blocking({
        let data_dir = data_dir.clone();
        move || wait_for_spool_file("self", &data_dir, 2 * THRESHOLD as u64)
    })
    .await
    .unwrap();
    let on_disk = std::fs::read(&file).expect("the spool file reads through /proc");
    assert!(on_disk.len() >= 2 * THRESHOLD);
    assert!(
        !on_disk
            .windows(MARKER.len())
            .any(|w| w == MARKER.as_bytes()),
        "the spool file holds plaintext"
    );
    let names: Vec<_> = std::fs::read_dir(data_dir.join("spool")).unwrap().collect();
    assert!(names.is_empty(), "spool files are unlinked: {names:?}");

    smtp.send(&wire.as_bytes()[400 * 1024..]).await;
    smtp.send(b".\r\n").await;
    assert!(smtp.reply().await.starts_with("250"));
    assert!(
        posted_exactly(&receiver, &original),
        "the app got other bytes than were sent"
    );
    assert!(
        spool_files("self", &data_dir).is_empty(),
        "closed once handled"
    );
}

#[tokio::test]
async fn bdat_chunks_are_spooled_and_joined_in_order() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&spooling(&receiver, "spool_threshold = 65536")).await;
    let data_dir = app.data_dir.path().to_path_buf();
    let original = message(300 * 1024);
    let chunks: Vec<&[u8]> = original.as_bytes().chunks(100 * 1024).collect();
    let mut smtp = app.smtp().await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<a@sender.test>", "250").await;
    smtp.cmd("RCPT TO:<rcpt@example.com>", "250").await;
    for chunk in &chunks[..chunks.len() - 1] {
        smtp.send(format!("BDAT {}\r\n", chunk.len()).as_bytes())
            .await;
        smtp.send(chunk).await;
        assert!(smtp.reply().await.starts_with("250"));
    }
    // Between chunks, what came so far is on disk.
    assert!(!spool_files("self", &data_dir).is_empty());
    let last = chunks[chunks.len() - 1];
    smtp.send(format!("BDAT {} LAST\r\n", last.len()).as_bytes())
        .await;
    smtp.send(last).await;
    assert!(smtp.reply().await.starts_with("250"));
    assert!(
        posted_exactly(&receiver, &original),
        "the app got other bytes than were sent"
    );
}

#[tokio::test]
async fn a_refused_spooled_message_leaves_nothing_to_the_next_transaction() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&spooling(
        &receiver,
        "spool_threshold = 65536\nmax_message_size = 200000",
    ))
    .await;
    let data_dir = app.data_dir.path().to_path_buf();
    let mut smtp = start_data(&app).await;
    smtp.send(stuffed(&message(300 * 1024)).as_bytes()).await;
    smtp.send(b".\r\n").await;
    assert!(smtp.reply().await.starts_with("552"));

    // The next message on the session is spooled from its own first octet.
    let second = message(150 * 1024).replace("Subject: big", "Subject: second");
    let reply = smtp
        .send_mail(
            "a@sender.test",
            &["rcpt@example.com"],
            without_crlf(&stuffed(&second)),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert!(
        posted_exactly(&receiver, &second),
        "the app got other bytes than were sent"
    );
    receiver.clear();

    // And a small one stays in memory and is intact.
    let small = "Subject: small\r\n\r\nhello\r\n";
    let reply = smtp
        .send_mail("a@sender.test", &["rcpt@example.com"], without_crlf(small))
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert!(posted_exactly(&receiver, small));
    assert!(spool_files("self", &data_dir).is_empty());
}

#[tokio::test]
async fn a_spooled_message_over_half_the_budget_is_still_handled() {
    // Handling counts twice the message, but never more than the whole budget: a message
    // the size limit lets in is not refused for want of room it could never have.
    let receiver = Receiver::start().await;
    let limits =
        "spool_threshold = 65536\nmax_message_size = 2097152\nmessage_memory_budget = 2097152";
    let app = TestApp::start(&spooling(&receiver, limits)).await;
    // 1.2 MB: counted as 2.4 MB, over the 2 MiB budget (the app takes up to 2 MB).
    let original = message(1200 * 1024);
    let mut smtp = start_data(&app).await;
    smtp.send(stuffed(&original).as_bytes()).await;
    smtp.send(b".\r\n").await;
    let reply = smtp.reply().await;
    assert!(reply.starts_with("250"), "{reply}");
    assert!(posted_exactly(&receiver, &original));
}

#[tokio::test]
async fn a_threshold_of_zero_keeps_content_in_memory() {
    let receiver = Receiver::start().await;
    let app = TestApp::start(&spooling(&receiver, "spool_threshold = 0")).await;
    let data_dir = app.data_dir.path().to_path_buf();
    let original = message(300 * 1024);
    let mut smtp = start_data(&app).await;
    smtp.send(stuffed(&original).as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(spool_files("self", &data_dir).is_empty());
    assert!(!data_dir.join("spool").exists());
    smtp.send(b".\r\n").await;
    assert!(smtp.reply().await.starts_with("250"));
    assert!(posted_exactly(&receiver, &original));
}

#[tokio::test]
async fn a_threshold_below_64_kib_is_refused_at_start() {
    let toml = "[server]\nhostname = \"mx.postern.test\"\n[smtp]\nspool_threshold = 1000\n";
    let error = postern::config::Config::from_toml(toml, [])
        .unwrap_err()
        .to_string();
    assert!(error.contains("smtp.spool_threshold"), "{error}");
    assert!(error.contains("65536"), "{error}");
}

#[tokio::test]
async fn what_an_earlier_process_left_in_the_spool_is_deleted_at_start() {
    let receiver = Receiver::start().await;
    let data_dir = tempfile::tempdir().unwrap();
    crate::support::private(data_dir.path());
    let spool = data_dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::write(spool.join("left-over"), b"sealed with a key that is gone").unwrap();
    let app = TestApp::start_in(&spooling(&receiver, ""), data_dir).await;
    let left: Vec<_> = std::fs::read_dir(app.data_dir.path().join("spool"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The real binary, killed with SIGKILL while a message is being spooled: nothing of it
/// is left on disk, and the restarted server takes the message whole.
#[tokio::test]
async fn a_killed_server_leaves_no_spool_file_behind() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (web_port, smtp_port) = (free_port(), free_port());
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"spool.test\"\ndata_dir = \"{}\"\n\
             [smtp]\nlisten = \"127.0.0.1:{smtp_port}\"\nspool_threshold = 65536\n\
             [web]\nlisten = \"127.0.0.1:{web_port}\"\n[auth]\nspf = false\n\
             [[address]]\naddress = \"rcpt@example.com\"\ntarget = \"{}\"\nformat = \"raw\"\n",
            data_dir.display(),
            receiver.url("/status/200"),
        ),
    )
    .unwrap();
    let serve = || {
        let mut command = crate::support::binary::postern();
        command
            .env("POSTERN_CONFIG", &config)
            .env("POSTERN_LOG", "warn")
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::support::binary::Server(command.spawn().expect("postern serve starts"))
    };
    let smtp_addr: std::net::SocketAddr = format!("127.0.0.1:{smtp_port}").parse().unwrap();
    let original = message(500 * 1024);
    let wire = stuffed(&original);

    let mut server = serve();
    wait_for_port(smtp_addr).await;
    let pid = server.0.id().to_string();
    let mut smtp = crate::support::smtp::Smtp::connect(smtp_addr).await;
    smtp.ehlo().await;
    smtp.cmd("MAIL FROM:<a@sender.test>", "250").await;
    smtp.cmd("RCPT TO:<rcpt@example.com>", "250").await;
    smtp.cmd("DATA", "354").await;
    smtp.send(&wire.as_bytes()[..300 * 1024]).await;
    let file = tokio::task::spawn_blocking({
        let (pid, data_dir) = (pid.clone(), data_dir.clone());
        move || wait_for_spool_file(&pid, &data_dir, 2 * THRESHOLD as u64)
    })
    .await
    .unwrap();
    let on_disk = std::fs::read(&file).unwrap();
    assert!(
        !on_disk
            .windows(MARKER.len())
            .any(|w| w == MARKER.as_bytes())
    );
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let left: Vec<_> = std::fs::read_dir(data_dir.join("spool")).unwrap().collect();
    assert!(left.is_empty(), "a killed server left {left:?}");
    assert!(
        receiver.requests().is_empty(),
        "nothing was answered, nothing posted"
    );

    // The sender tries again: the whole message arrives.
    let _server = serve();
    wait_for_port(smtp_addr).await;
    let mut smtp = crate::support::smtp::Smtp::connect(smtp_addr).await;
    smtp.ehlo().await;
    let reply = smtp
        .send_mail("a@sender.test", &["rcpt@example.com"], without_crlf(&wire))
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    assert!(posted_exactly(&receiver, &original));
}
