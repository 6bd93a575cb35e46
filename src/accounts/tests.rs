//! The flows through [`Accounts`] with a manual clock: sign-in with and without TOTP, the
//! drift window and replay, recovery codes, throttling, expiry, sign-out everywhere.
//! (`tests/it/accounts.rs` repeats the rules over HTTP against the real server.)

use std::time::Duration;

use time::macros::datetime;

use super::*;

struct Setup {
    accounts: Accounts,
    _dir: tempfile::TempDir,
}

fn client() -> Client {
    Client::new("192.0.2.1".parse().unwrap())
}

async fn setup() -> Setup {
    let dir = crate::datadir::test_dir();
    let store = Store::open(dir.path()).unwrap();
    let policy = Policy {
        password: PasswordParams::insecure_for_tests(),
        ..Policy::default()
    };
    let clock = Clock::manual(datetime!(2026-11-28 09:00:10 UTC));
    Setup {
        accounts: Accounts::new(store, clock, policy),
        _dir: dir,
    }
}

const PASSWORD: &str = "a long enough password";

async fn user(accounts: &Accounts, email: &str) -> User {
    accounts
        .create_user(
            email,
            Role::Admin,
            NewPassword::Given(PASSWORD.into()),
            &Actor::Cli,
        )
        .await
        .unwrap()
        .0
}

fn complete(sign_in: SignIn) -> NewSession {
    match sign_in {
        SignIn::Complete(session) => session,
        SignIn::SecondFactor(_) => panic!("a second factor was asked for"),
    }
}

/// Enrols TOTP; returns a function giving the code for a step offset from now.
async fn enrol(accounts: &Accounts, user: &User) -> (totp_rs::Totp, Vec<String>) {
    let enrolment = accounts.totp_enrolment(user).await.unwrap();
    let totp = totp_rs::Totp::from_url(&enrolment.otpauth_url).unwrap();
    let code = totp.generate(accounts.clock().unix() as u64).to_string();
    let codes = accounts.confirm_totp(user, &code, &client()).await.unwrap();
    (totp, codes)
}

fn code(accounts: &Accounts, totp: &totp_rs::Totp, steps: i64) -> String {
    totp.generate((accounts.clock().unix() + steps * 30) as u64)
        .to_string()
}

#[tokio::test]
async fn password_sign_in_and_generated_passwords() {
    let Setup { accounts, .. } = setup().await;
    let alice = user(&accounts, "Alice@Example.com").await;
    assert_eq!(alice.email, "alice@example.com");
    let session = complete(
        accounts
            .sign_in("ALICE@example.com ", PASSWORD, &client())
            .await
            .unwrap(),
    );
    assert!(!session.session.second_factor_pending);
    let found = accounts.session(&session.token).await.unwrap().unwrap();
    assert_eq!(found.user.id, alice.id);
    assert_eq!(found.csrf_token(), session.session.csrf_token());
    assert!(matches!(
        accounts
            .sign_in("alice@example.com", "wrong password!", &client())
            .await,
        Err(SignInError::WrongPassword)
    ));
    assert!(matches!(
        accounts
            .sign_in("nobody@example.com", PASSWORD, &client())
            .await,
        Err(SignInError::WrongPassword)
    ));

    let (bob, generated) = accounts
        .create_user(
            "bob@example.com",
            Role::Viewer,
            NewPassword::Generate,
            &Actor::Cli,
        )
        .await
        .unwrap();
    assert!(bob.password_change_required);
    let generated = generated.unwrap();
    let session = complete(
        accounts
            .sign_in("bob@example.com", &generated, &client())
            .await
            .unwrap(),
    );
    assert!(session.session.user.password_change_required);
    accounts
        .change_password(&session.session, "my own new password", &client())
        .await
        .unwrap();
    let found = accounts.session(&session.token).await.unwrap().unwrap();
    assert!(!found.user.password_change_required);
    assert!(
        accounts
            .sign_in("bob@example.com", &generated, &client())
            .await
            .is_err()
    );
    assert!(matches!(
        accounts
            .create_user(
                "bob@example.com",
                Role::Viewer,
                NewPassword::Generate,
                &Actor::Cli
            )
            .await,
        Err(AccountError::EmailTaken(_))
    ));
    assert!(matches!(
        accounts
            .create_user(
                "carol@example.com",
                Role::Viewer,
                NewPassword::Given("short".into()),
                &Actor::Cli
            )
            .await,
        Err(AccountError::WeakPassword(_))
    ));
}

/// Alice's password sign-in, which asks for her second factor.
async fn pending_second_factor(accounts: &Accounts) -> NewSession {
    match accounts
        .sign_in("alice@example.com", PASSWORD, &client())
        .await
        .unwrap()
    {
        SignIn::SecondFactor(pending) => pending,
        SignIn::Complete(_) => panic!("TOTP was not asked for"),
    }
}

/// Alice, with TOTP enrolled: her authenticator and her recovery codes.
async fn alice_with_totp(accounts: &Accounts) -> (User, totp_rs::Totp, Vec<String>) {
    let alice = user(accounts, "alice@example.com").await;
    let (totp, recovery) = enrol(accounts, &alice).await;
    (alice, totp, recovery)
}

/// Whether `code` completes the pending sign-in.
async fn second_factor_accepted(accounts: &Accounts, pending: &NewSession, code: &str) -> bool {
    match accounts
        .second_factor(&pending.session, code, &client())
        .await
    {
        Ok(_) => true,
        Err(SignInError::WrongCode) => false,
        Err(other) => panic!("not a wrong code: {other:?}"),
    }
}

#[tokio::test]
async fn a_pending_second_factor_is_no_signed_in_session() {
    let Setup { accounts, .. } = setup().await;
    let (_, _, recovery) = alice_with_totp(&accounts).await;
    assert_eq!(recovery.len(), RECOVERY_CODES);
    let first = pending_second_factor(&accounts).await;
    assert!(
        accounts
            .session(&first.token)
            .await
            .unwrap()
            .unwrap()
            .second_factor_pending
    );
}

#[tokio::test]
async fn totp_codes_one_step_off_work_once_and_replace_the_session() {
    let Setup { accounts, .. } = setup().await;
    let (_, totp, _) = alice_with_totp(&accounts).await;
    let first = pending_second_factor(&accounts).await;
    // The code used at enrolment (this step) is spent; two steps off is refused; one step
    // later is fine, and then spent too.
    for steps in [0, 2, -2] {
        assert!(
            !second_factor_accepted(&accounts, &first, &code(&accounts, &totp, steps)).await,
            "{steps} steps"
        );
    }
    let signed_in = accounts
        .second_factor(&first.session, &code(&accounts, &totp, 1), &client())
        .await
        .unwrap();
    assert_ne!(
        signed_in.token, first.token,
        "a new session id after the second factor"
    );
    assert!(accounts.session(&first.token).await.unwrap().is_none());
    let second = pending_second_factor(&accounts).await;
    assert!(
        !second_factor_accepted(&accounts, &second, &code(&accounts, &totp, 1)).await,
        "replayed"
    );
}

#[tokio::test]
async fn a_spent_totp_step_stays_spent_as_the_clock_moves_on() {
    let Setup { accounts, .. } = setup().await;
    let (_, totp, _) = alice_with_totp(&accounts).await;
    let first = pending_second_factor(&accounts).await;
    let next_step = code(&accounts, &totp, 1);
    assert!(second_factor_accepted(&accounts, &first, &next_step).await);
    // A minute later the step that was +1 is now -1, and used: the next one works.
    accounts.clock().advance(Duration::from_secs(60));
    let second = pending_second_factor(&accounts).await;
    assert!(
        accounts
            .second_factor(&second.session, &code(&accounts, &totp, -1), &client())
            .await
            .is_err()
    );
    let third = pending_second_factor(&accounts).await;
    accounts
        .second_factor(&third.session, &code(&accounts, &totp, 0), &client())
        .await
        .unwrap();
}

#[tokio::test]
async fn recovery_codes_work_once_each_as_typed_by_a_person() {
    let Setup { accounts, .. } = setup().await;
    let (alice, _, recovery) = alice_with_totp(&accounts).await;
    let typed = recovery[3].to_uppercase().replace('-', " ");
    let fourth = pending_second_factor(&accounts).await;
    accounts
        .second_factor(&fourth.session, &typed, &client())
        .await
        .unwrap();
    let fifth = pending_second_factor(&accounts).await;
    assert!(
        accounts
            .second_factor(&fifth.session, &recovery[3], &client())
            .await
            .is_err()
    );
    assert_eq!(accounts.recovery_codes_left(&alice).await.unwrap(), 9);
}

#[tokio::test]
async fn throttling_per_account_and_address_and_per_address() {
    let Setup { accounts, .. } = setup().await;
    user(&accounts, "alice@example.com").await;
    for _ in 0..PAIR_FAILURES {
        assert!(matches!(
            accounts
                .sign_in("alice@example.com", "wrong password!", &client())
                .await,
            Err(SignInError::WrongPassword)
        ));
        accounts.clock().advance(Duration::from_secs(10));
    }
    let Err(SignInError::Throttled { retry_after }) = accounts
        .sign_in("alice@example.com", PASSWORD, &client())
        .await
    else {
        panic!("not throttled");
    };
    // The first failure was 50 s ago: it leaves the 15-minute window in 850 s.
    assert_eq!(retry_after, THROTTLE_WINDOW - Duration::from_secs(50));
    // The same account from another address is not affected, nor another account.
    let elsewhere = Client::new("198.51.100.1".parse().unwrap());
    complete(
        accounts
            .sign_in("alice@example.com", PASSWORD, &elsewhere)
            .await
            .unwrap(),
    );
    user(&accounts, "bob@example.com").await;
    complete(
        accounts
            .sign_in("bob@example.com", PASSWORD, &elsewhere)
            .await
            .unwrap(),
    );
    accounts.clock().advance(retry_after);
    complete(
        accounts
            .sign_in("alice@example.com", PASSWORD, &client())
            .await
            .unwrap(),
    );

    // Per address: 20 failures over any accounts.
    let attacker = Client::new("2001:db8::1".parse().unwrap());
    for i in 0..IP_FAILURES {
        let email = format!("guess{i}@example.com");
        assert!(
            accounts
                .sign_in(&email, "whatever it is", &attacker)
                .await
                .is_err()
        );
    }
    let same_64 = Client::new("2001:db8::2".parse().unwrap());
    assert!(matches!(
        accounts
            .sign_in("bob@example.com", PASSWORD, &same_64)
            .await,
        Err(SignInError::Throttled { .. })
    ));
}

#[tokio::test]
async fn sessions_expire_idle_and_absolute_and_end_everywhere() {
    let Setup { accounts, .. } = setup().await;
    let alice = user(&accounts, "alice@example.com").await;
    let sign_in = || async {
        complete(
            accounts
                .sign_in("alice@example.com", PASSWORD, &client())
                .await
                .unwrap(),
        )
    };
    let idle = sign_in().await;
    let busy = sign_in().await;
    // Used every 20 minutes, a session outlives the 30-minute idle limit...
    for _ in 0..3 {
        accounts.clock().advance(Duration::from_secs(20 * 60));
        assert!(accounts.session(&busy.token).await.unwrap().is_some());
    }
    assert!(accounts.session(&idle.token).await.unwrap().is_none());
    // ... but not 12 hours.
    while accounts.clock().unix() - busy.session.created_at.unix_timestamp() < 12 * 3600 - 20 * 60 {
        accounts.clock().advance(Duration::from_secs(20 * 60));
        assert!(accounts.session(&busy.token).await.unwrap().is_some());
    }
    accounts.clock().advance(Duration::from_secs(20 * 60));
    assert!(accounts.session(&busy.token).await.unwrap().is_none());

    let one = sign_in().await;
    let two = sign_in().await;
    assert_eq!(
        accounts
            .sign_out_everywhere(&alice, &Actor::user(&alice), Some(&client()))
            .await
            .unwrap(),
        2
    );
    assert!(accounts.session(&one.token).await.unwrap().is_none());
    assert!(accounts.session(&two.token).await.unwrap().is_none());
    let actions: Vec<String> = accounts
        .audit_log(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(actions[0], "signout_everywhere");
    assert!(actions.contains(&"signin".to_string()));
    assert_eq!(actions.last().unwrap(), "user_created");
}

#[tokio::test]
async fn api_keys_authenticate_until_revoked() {
    let Setup { accounts, .. } = setup().await;
    let (key, secret) = accounts
        .create_api_key("ci", Role::Viewer, &Actor::Cli)
        .await
        .unwrap();
    assert!(secret.starts_with("pst_") && secret.len() == 47);
    assert!(secret.starts_with(&key.prefix));
    assert_eq!(
        accounts.api_key(&secret).await.unwrap().unwrap().role,
        Role::Viewer
    );
    assert!(accounts.api_key("pst_nope").await.unwrap().is_none());
    assert!(accounts.revoke_api_key(key.id, &Actor::Cli).await.unwrap());
    assert!(accounts.api_key(&secret).await.unwrap().is_none());
    assert!(matches!(
        accounts.create_api_key(" ", Role::Admin, &Actor::Cli).await,
        Err(AccountError::InvalidKeyName)
    ));
}

const CHEAP_HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$";
const COSTLIER_HASH: &str = "$argon2id$v=19$m=16,t=2,p=1$";

/// The password hash stored for a user.
async fn stored_hash(accounts: &Accounts, user: &User) -> String {
    accounts
        .store()
        .user(user.id)
        .await
        .unwrap()
        .unwrap()
        .password_hash
}

/// The same store, run with a higher password cost.
fn with_costlier_passwords(accounts: &Accounts) -> Accounts {
    let costlier = PasswordParams {
        memory_kib: 16,
        iterations: 2,
        lanes: 1,
    };
    Accounts::new(
        accounts.store().clone(),
        accounts.clock().clone(),
        Policy {
            password: costlier,
            ..accounts.policy().clone()
        },
    )
}

/// Signs in with the right password, expecting no second factor.
async fn sign_in_alice(accounts: &Accounts) {
    complete(
        accounts
            .sign_in("alice@example.com", PASSWORD, &client())
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn a_wrong_password_leaves_a_hash_of_other_parameters_alone() {
    let Setup { accounts, _dir } = setup().await;
    let alice = user(&accounts, "alice@example.com").await;
    let cheap = stored_hash(&accounts, &alice).await;
    assert!(cheap.starts_with(CHEAP_HASH), "{cheap}");
    let upgraded = with_costlier_passwords(&accounts);
    assert!(matches!(
        upgraded
            .sign_in("alice@example.com", "not the password", &client())
            .await,
        Err(SignInError::WrongPassword)
    ));
    assert_eq!(stored_hash(&upgraded, &alice).await, cheap);
}

#[tokio::test]
async fn the_right_password_is_rehashed_with_the_current_parameters_once() {
    let Setup { accounts, _dir } = setup().await;
    let alice = user(&accounts, "alice@example.com").await;
    let upgraded = with_costlier_passwords(&accounts);
    // The right password is accepted with the old hash and replaces it with one of the
    // current parameters, which verifies the same password.
    sign_in_alice(&upgraded).await;
    let rehashed = stored_hash(&upgraded, &alice).await;
    assert!(rehashed.starts_with(COSTLIER_HASH), "{rehashed}");
    sign_in_alice(&upgraded).await;
    assert_eq!(
        stored_hash(&upgraded, &alice).await,
        rehashed,
        "up to date: kept"
    );
}

#[tokio::test]
async fn rehashing_leaves_the_one_time_password_flag_as_it_was() {
    let Setup { accounts, _dir } = setup().await;
    let upgraded = with_costlier_passwords(&accounts);
    let (bob, one_time) = accounts
        .create_user(
            "bob@example.com",
            Role::Viewer,
            NewPassword::Generate,
            &Actor::Cli,
        )
        .await
        .unwrap();
    let one_time = one_time.unwrap();
    complete(
        upgraded
            .sign_in("bob@example.com", &one_time, &client())
            .await
            .unwrap(),
    );
    let row = upgraded.store().user(bob.id).await.unwrap().unwrap();
    assert!(row.password_hash.starts_with(COSTLIER_HASH));
    assert!(row.password_change_required);
}

#[tokio::test]
async fn rehashing_goes_back_down_to_cheaper_parameters_too() {
    let Setup { accounts, _dir } = setup().await;
    let alice = user(&accounts, "alice@example.com").await;
    let upgraded = with_costlier_passwords(&accounts);
    sign_in_alice(&upgraded).await;
    assert!(
        stored_hash(&accounts, &alice)
            .await
            .starts_with(COSTLIER_HASH)
    );
    // Back on the cheap parameters: the way down is the same rule.
    sign_in_alice(&accounts).await;
    assert!(stored_hash(&accounts, &alice).await.starts_with(CHEAP_HASH));
}

#[tokio::test]
async fn a_distributed_guess_locks_out_new_addresses_but_not_the_users_own() {
    let Setup { accounts, .. } = setup().await;
    user(&accounts, "alice@example.com").await;
    let home = Client::new("192.0.2.10".parse().unwrap());
    complete(
        accounts
            .sign_in("alice@example.com", PASSWORD, &home)
            .await
            .unwrap(),
    );
    // Many addresses, each under its own limit, together over the account's.
    for i in 0..ACCOUNT_FAILURES {
        let attacker = Client::new(format!("198.51.100.{}", i / 4 + 1).parse().unwrap());
        let answer = accounts
            .sign_in("alice@example.com", "wrong password!", &attacker)
            .await;
        assert!(
            matches!(answer, Err(SignInError::WrongPassword)),
            "attempt {i}"
        );
    }
    let fresh = Client::new("203.0.113.7".parse().unwrap());
    assert!(matches!(
        accounts
            .sign_in("alice@example.com", PASSWORD, &fresh)
            .await,
        Err(SignInError::Throttled { .. })
    ));
    // An unknown account gets the same treatment as a known one (no enumeration).
    for i in 0..ACCOUNT_FAILURES {
        let attacker = Client::new(format!("198.51.100.{}", i / 4 + 100).parse().unwrap());
        let _ = accounts
            .sign_in("nobody@example.com", "wrong password!", &attacker)
            .await;
    }
    assert!(matches!(
        accounts
            .sign_in("nobody@example.com", PASSWORD, &fresh)
            .await,
        Err(SignInError::Throttled { .. })
    ));
    // The user's own address still signs in.
    complete(
        accounts
            .sign_in("alice@example.com", PASSWORD, &home)
            .await
            .unwrap(),
    );
    // An operator's unlock lets everyone in again, and is audited.
    let cleared = accounts
        .unlock(&Actor::Cli, "Alice@Example.com", None)
        .await
        .unwrap();
    assert_eq!(cleared, ACCOUNT_FAILURES as usize);
    complete(
        accounts
            .sign_in("alice@example.com", PASSWORD, &fresh)
            .await
            .unwrap(),
    );
}
