//! Sign-in against a hostile network: failures from one address must not lock the account
//! for its user's own address, a distributed guess locks out only addresses the account never
//! signed in from, and a printed one-time password cannot be kept as the new password.

use std::net::IpAddr;

use postern::accounts::{Actor, NewPassword, Role};

use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, Browser, TestApp, config_with};

fn from(app: &TestApp, ip: &str) -> Browser {
    Browser::from_address(app.web, Some(ip.parse::<IpAddr>().unwrap()))
}

async fn fail_from(app: &TestApp, ip: &str, times: u32) {
    let mut attacker = from(app, ip);
    for i in 0..times {
        let answer = attacker
            .submit_sign_in(ADMIN_EMAIL, "not the password")
            .await;
        assert_eq!(answer.status, 401, "failure {i} from {ip}: {}", answer.body);
    }
}

#[tokio::test]
async fn failures_from_one_address_do_not_lock_the_admin_out_elsewhere() {
    let app = TestApp::start(&config_with(&[], "")).await;
    fail_from(&app, "127.0.0.2", postern::accounts::PAIR_FAILURES).await;
    let locked = from(&app, "127.0.0.2")
        .submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    // The same password from another address: signed in (today's main answered 429 here).
    let answer = from(&app, "127.0.0.3")
        .submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
}

#[tokio::test]
async fn a_distributed_guess_spares_the_address_the_admin_signs_in_from() {
    let app = TestApp::start(&config_with(&[], "")).await;
    from(&app, "127.0.0.1")
        .sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    // 50 failures from 13 addresses, each under the per-address limits.
    let (mut left, per_address) = (postern::accounts::ACCOUNT_FAILURES, 4);
    for n in 1.. {
        if left == 0 {
            break;
        }
        let times = left.min(per_address);
        fail_from(&app, &format!("127.0.1.{n}"), times).await;
        left -= times;
    }
    let stranger = from(&app, "127.0.2.1")
        .submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(stranger.status, 429, "{}", stranger.body);
    assert_eq!(stranger.header("retry-after"), Some("900"));
    let home = from(&app, "127.0.0.1")
        .submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(home.status, 303, "{}", home.body);
}

#[tokio::test]
async fn the_one_time_password_cannot_become_the_new_password() {
    let app = TestApp::start(&config_with(&[], "")).await;
    let (_, generated) = app
        .accounts
        .create_user(
            "new@postern.test",
            Role::Admin,
            NewPassword::Generate,
            &Actor::Cli,
        )
        .await
        .unwrap();
    let generated = generated.unwrap();
    let mut browser = app.browser();
    browser.sign_in("new@postern.test", &generated).await;
    let csrf = browser.get("/account/password").await.csrf_token();
    let kept = browser
        .post_form(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("password", &generated),
                ("repeat", &generated),
            ],
        )
        .await;
    assert_eq!(kept.status, 400, "{}", kept.body);
    assert!(
        kept.body.contains("must differ from the current one"),
        "{}",
        kept.body
    );
    assert_eq!(browser.get("/").await.location(), Some("/account/password"));
}

#[tokio::test]
async fn postern_user_unlock_lifts_the_throttle_at_once() {
    let app = TestApp::start(&config_with(&[], "")).await;
    fail_from(&app, "127.0.0.2", postern::accounts::PAIR_FAILURES).await;
    let locked = from(&app, "127.0.0.2")
        .submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(locked.status, 429, "{}", locked.body);

    // The real binary, on the running app's data directory (SQLite in WAL mode).
    let config = app.data_dir.path().join("unlock.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.postern.test\"\ndata_dir = \"{}\"\n",
            app.data_dir.path().display()
        ),
    )
    .unwrap();
    let output = crate::support::binary::postern()
        .args([
            "user",
            "unlock",
            "--email",
            "Admin@Postern.test",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("5 failed sign-ins forgotten for admin@postern.test"),
        "{stdout}"
    );

    let answer = from(&app, "127.0.0.2")
        .submit_sign_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let audit = app.get_json("/api/audit").await;
    let unlocked = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["action"] == "signin_unlocked");
    assert!(unlocked.is_some(), "no audit row: {audit}");
}
