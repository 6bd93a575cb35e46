//! DKIM signatures made by Postern's sending-domain keys, verified by dkimpy (an
//! independent implementation), for RSA-2048 and Ed25519.

use std::path::PathBuf;
use std::process::Command;

use postern::outbound::dkim::{self, Algorithm};

use crate::support::TestApp;

/// dkimpy's verdict on `message` given the key record: "pass" or "fail: …".
pub(crate) fn verify(message: &[u8], record_name: &str, txt: &str) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), message).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/dkim_verify.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(file.path())
        .args([record_name, txt])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "dkim_verify.py (needs `pip install dkimpy pynacl`): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn dkimpy_verifies_what_postern_signs() {
    let app = TestApp::start(&crate::support::config_with(&[], "")).await;
    let message = b"From: App <app@example.com>\r\nTo: user@example.net\r\nSubject: signed\r\n\
Date: Sat, 28 Nov 2026 04:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\nthis body is signed.\r\n";
    for (domain, algorithm) in [
        ("example.com", Algorithm::Rsa2048),
        ("example.org", Algorithm::Ed25519),
    ] {
        let added = app
            .outbound
            .add_sending_domain(domain, algorithm, None, "mx.postern.test")
            .await
            .unwrap();
        let row = app
            .outbound
            .store()
            .sending_domain(domain)
            .await
            .unwrap()
            .unwrap();
        let message = message.replace_domain(domain);
        let signed = dkim::sign(&row, &message).unwrap();
        let record = &added.dns_records[0];
        assert_eq!(record.kind, "TXT");
        assert_eq!(
            verify(&signed, &record.name, &record.value),
            "pass",
            "{algorithm:?}"
        );

        // A changed body or a changed signed header fails.
        let mut tampered = signed.clone();
        let at = tampered.len() - 4;
        tampered[at] = b'X';
        assert!(verify(&tampered, &record.name, &record.value).starts_with("fail"));
        let text = String::from_utf8(signed)
            .unwrap()
            .replace("Subject: signed", "Subject: change");
        assert!(verify(text.as_bytes(), &record.name, &record.value).starts_with("fail"));
    }
}

trait ReplaceDomain {
    fn replace_domain(&self, domain: &str) -> Vec<u8>;
}

impl ReplaceDomain for [u8] {
    fn replace_domain(&self, domain: &str) -> Vec<u8> {
        String::from_utf8_lossy(self)
            .replace("example.com", domain)
            .into_bytes()
    }
}
