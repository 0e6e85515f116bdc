//! The dashboard and `/metrics` of a real roleoutd over its managed slapd:
//! signed in with the directory's admin account through Debian's headless
//! Chromium, read as an admin does (a failed machine, its log with the
//! password redacted), an enrolment approved from the page and then used
//! by the machine; refusals (wrong password, a forged form, no session)
//! checked over plain HTTP; the metrics checked by `promtool`.
//!
//! Screenshots of the overview and of a machine page are kept in
//! `target/dashboard-screenshots/`.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use roleout_tests::{Machine, World, repository};

/// The vault token the failing product is given: it must never be shown.
const TOKEN: &str = "s3cr3t-vault-token-e2e";

/// A product whose install prints the token it was given, then an error
/// line, and exits 0: the failure pattern fails it.
const VAULT_AGENT: &str = r#"<product xmlns="urn:roleout:descriptor:1" id="vault-agent" version="1.0">
  <variables>
    <password name="vault_token" min-length="8" required="true">
      <label lang="en">Vault token</label>
    </password>
  </variables>
  <install kind="script" timeout="60">
    <arg>/bin/sh</arg>
    <arg>-c</arg>
    <arg>echo "logging in with token {{ vault_token }}"; echo "ERROR: the vault at 127.0.0.1:9 refused the login"; exit 0</arg>
    <outcome success-codes="0" failure-pattern="^ERROR"/>
  </install>
</product>
"#;

const VAULT_SUITE: &str = r#"<suite xmlns="urn:roleout:descriptor:1" id="vault" version="1"><products><product ref="vault-agent"/></products></suite>"#;

/// roleoutd's world with a machine whose vault-agent failed, and one
/// waiting for approval.
struct Fleet {
    world: World,
    /// The machine whose vault-agent failed (kept so its files stay).
    _failed: Machine,
    pending: Machine,
}

fn fleet() -> Fleet {
    let world = World::start();
    let descriptors = world.top().join("vault-descriptors");
    fs::create_dir_all(&descriptors).unwrap();
    fs::write(descriptors.join("vault-agent.xml"), VAULT_AGENT).unwrap();
    fs::write(descriptors.join("suite-vault.xml"), VAULT_SUITE).unwrap();
    world.import(&descriptors, None);
    world.admin("build vault");

    let mut failed = world.enroll("ws-vault", "end-user");
    let response = world.top().join("ws-vault.toml");
    fs::write(
        &response,
        format!("[vault-agent]\nvault_token = \"{TOKEN}\"\n"),
    )
    .unwrap();
    fs::set_permissions(
        &response,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    failed.response_file = Some(response);
    let run = world.install_suite(&failed, "vault");
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert_eq!(run.outcome("vault-agent"), Some("failed"));

    // A machine that enrols with no token waits for an admin.
    let pending = Machine {
        name: "ws-new".to_owned(),
        state: world.top().join("machines/ws-new/state"),
        root: world.top().join("machines/ws-new/root"),
        response_file: None,
        default_response_file: world.top().join("machines/ws-new/response.toml"),
    };
    fs::create_dir_all(&pending.state).unwrap();
    fs::create_dir_all(&pending.root).unwrap();
    let enrolled = world.roleout(
        &pending,
        &[
            "enroll",
            "--server",
            &world.url,
            "--server-cert",
            world.server_state.join("tls/cert.pem").to_str().unwrap(),
            "--name",
            "ws-new",
        ],
    );
    assert_eq!(enrolled.code, Some(0), "{}", enrolled.transcript());
    let refused = install(&world, &pending);
    assert_eq!(
        refused.code,
        Some(3),
        "a pending machine authenticates before approval\n{}",
        refused.transcript()
    );
    Fleet {
        world,
        _failed: failed,
        pending,
    }
}

/// `roleout install vault` on `machine`, in its sandbox, with no
/// response file.
fn install(world: &World, machine: &Machine) -> roleout_tests::Finished {
    world.roleout(
        machine,
        &[
            "install",
            "vault",
            "--root",
            machine.root.to_str().unwrap(),
            "--default-response-file",
            machine.default_response_file.to_str().unwrap(),
        ],
    )
}

fn admin_password(world: &World) -> String {
    fs::read_to_string(world.server_state.join("ldap/credentials/admin.password"))
        .unwrap()
        .trim()
        .to_owned()
}

fn screenshots() -> PathBuf {
    let folder = repository().join("target/dashboard-screenshots");
    fs::create_dir_all(&folder).unwrap();
    folder
}

/// Width and height of a PNG (its IHDR chunk).
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

/// Keeps a screenshot of what `tab` shows as `name`, and returns the text
/// the page showed when it was taken.
fn screenshot(tab: &Tab, name: &str) -> String {
    let text = tab
        .wait_for_element("body")
        .unwrap()
        .get_inner_text()
        .unwrap();
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    let (width, height) = png_size(&png);
    assert!(width >= 800 && height >= 600, "{name}: {width}x{height}");
    let path = screenshots().join(format!("{name}.png"));
    fs::write(&path, &png).unwrap();
    fs::write(screenshots().join(format!("{name}.txt")), &text).unwrap();
    text
}

/// Form controls without a label: inputs that are not hidden need a
/// `<label for>` or an `aria-label`; buttons need text or an `aria-label`.
fn unlabelled(tab: &Tab) -> Vec<String> {
    let script = r#"JSON.stringify(Array.from(document.querySelectorAll('input, select, textarea, button')).filter(function (control) {
        if (control.type === 'hidden') { return false; }
        if (control.getAttribute('aria-label')) { return false; }
        if (control.tagName === 'BUTTON') { return control.textContent.trim() === ''; }
        return !(control.id && document.querySelector('label[for="' + control.id + '"]'));
    }).map(function (control) { return control.outerHTML; }))"#;
    let value = tab.evaluate(script, false).unwrap().value.unwrap();
    serde_json::from_str(value.as_str().unwrap()).unwrap()
}

/// Clicks what `selector` finds and waits until the page it leads to (by
/// another address, after any redirect) has loaded: at most 60 s.
fn click(tab: &Tab, selector: &str) {
    let before = tab.get_url();
    tab.wait_for_element(selector).unwrap().click().unwrap();
    for _ in 0..600 {
        let loaded = tab
            .evaluate("document.readyState", false)
            .ok()
            .and_then(|object| object.value)
            .is_some_and(|state| state == "complete");
        if tab.get_url() != before && loaded {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("clicking {selector} on {before} led nowhere in 60 s");
}

fn browser(profile: &Path) -> Browser {
    let options = LaunchOptions::default_builder()
        .path(Some(PathBuf::from("/usr/bin/chromium")))
        .headless(true)
        // The test runs as root, where Chromium's sandbox cannot start.
        .sandbox(false)
        // roleoutd's certificate is self-signed and made by the test.
        .ignore_certificate_errors(true)
        .user_data_dir(Some(profile.to_owned()))
        .window_size(Some((1280, 1000)))
        .idle_browser_timeout(Duration::from_secs(180))
        .build()
        .unwrap();
    Browser::new(options).unwrap()
}

#[test]
fn an_admin_signs_in_finds_a_failed_machine_reads_its_redacted_log_and_approves_an_enrolment() {
    let Fleet { world, pending, .. } = fleet();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(profile.path());
    let tab = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(60));

    // Every page sends a visitor without a session to the sign-in page.
    tab.navigate_to(&format!("{}/ui/machines/ws-vault", world.url))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    assert!(tab.get_url().ends_with("/ui/sign-in"), "{}", tab.get_url());
    assert_eq!(unlabelled(&tab), Vec::<String>::new(), "sign-in page");
    tab.wait_for_element("#user")
        .unwrap_or_else(|error| panic!("{error:?}: {}", tab.get_content().unwrap_or_default()))
        .click()
        .unwrap();
    tab.type_str("admin").unwrap();
    tab.wait_for_element("#password").unwrap().click().unwrap();
    tab.type_str(&admin_password(&world)).unwrap();
    click(&tab, "button[type=submit]");
    assert!(tab.get_url().ends_with("/ui/"), "{}", tab.get_url());

    // The overview: the failure grouped by product, step and reason.
    let overview = screenshot(&tab, "overview");
    for expected in [
        "Overview",
        "Failures by product, step and reason",
        "vault-agent",
        "ERROR: the vault at 127.0.0.1:9 refused the login",
        "ws-vault",
        "Pending enrolments",
    ] {
        assert!(
            overview.contains(expected),
            "{expected:?} not in:\n{overview}"
        );
    }
    assert!(!overview.contains(TOKEN));
    assert_eq!(unlabelled(&tab), Vec::<String>::new(), "overview");
    let svg_count = tab
        .evaluate(
            "document.querySelectorAll('figure svg[role=img]').length",
            false,
        )
        .unwrap()
        .value
        .unwrap();
    assert_eq!(svg_count, serde_json::json!(3));

    // From the failure to the machine, its evidence, then its log.
    click(&tab, "a[href='/ui/machines/ws-vault']");
    let page = screenshot(&tab, "machine");
    for expected in [
        "Machine ws-vault",
        "end-user",
        "approved",
        "vault-agent",
        "failed",
        "exit code 0",
        "ERROR: the vault at 127.0.0.1:9 refused the login",
    ] {
        assert!(page.contains(expected), "{expected:?} not in:\n{page}");
    }
    click(&tab, "a[href*='/logs/']");
    let log = tab
        .wait_for_element("pre.log")
        .unwrap()
        .get_inner_text()
        .unwrap();
    assert!(log.contains("logging in with token ********"), "{log}");
    assert!(log.contains("ERROR: the vault"), "{log}");
    let whole = tab.get_content().unwrap();
    assert!(!whole.contains(TOKEN), "the token is on the log page");
    assert_eq!(
        tab.evaluate(
            "document.querySelectorAll('pre.log span.evidence').length",
            false
        )
        .unwrap()
        .value
        .unwrap(),
        serde_json::json!(1),
        "the line that decided the outcome is marked"
    );

    // The enrolment queue: approve the waiting machine.
    tab.navigate_to(&format!("{}/ui/enrolments", world.url))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let queue = tab
        .wait_for_element("main")
        .unwrap()
        .get_inner_text()
        .unwrap();
    assert!(queue.contains("ws-new"), "{queue}");
    assert!(!queue.contains("ws-vault"), "{queue}");
    assert_eq!(unlabelled(&tab), Vec::<String>::new(), "enrolments");
    click(&tab, "form[action='/ui/enrolments/ws-new/approve'] button");
    let after = tab
        .wait_for_element("main")
        .unwrap()
        .get_inner_text()
        .unwrap();
    assert!(after.contains("The machine is approved"), "{after}");
    assert!(
        after.contains("No machine is waiting for approval."),
        "{after}"
    );

    // The machine can authenticate now: its run gets the suite (and fails
    // only at the vault-agent's own missing token).
    let run = install(&world, &pending);
    assert_ne!(run.code, Some(3), "still refused\n{}", run.transcript());
    assert!(run.stdout.contains("vault_token"), "{}", run.transcript());

    // Signing out ends the session: the next page asks to sign in again.
    click(&tab, "form[action='/ui/sign-out'] button");
    tab.navigate_to(&format!("{}/ui/", world.url))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    assert!(tab.get_url().ends_with("/ui/sign-in"), "{}", tab.get_url());
}

/// The value of cookie `name` set by `response`.
fn set_cookie(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| {
            let pair = value.split(';').next()?;
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| value.trim().to_owned())
        })
}

fn hidden_csrf(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[start..start + 64].to_owned()
}

fn promtool_check(text: &str) -> (Option<i32>, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) is installed by scripts/setup.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn refusals_exports_and_metrics() {
    let Fleet { world, pending, .. } = fleet();
    let agent = roleout_tests::pinned_client(&world.server_state.join("tls/cert.pem"));
    let url = |path: &str| format!("{}{path}", world.url);

    // No page, table or export without a session.
    for path in [
        "/ui/",
        "/ui/suites",
        "/ui/machines",
        "/ui/machines/ws-vault",
        "/ui/enrolments",
        "/ui/machines/ws-vault/logs/0000000000000000000000000000000000000000000000000000000000000000",
        "/ui/machines?format=csv",
        "/ui/?format=json",
    ] {
        let response = agent.get(&url(path)).call().unwrap();
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(response.headers()["location"], "/ui/sign-in", "{path}");
    }

    // The sign-in form and its cookie.
    let mut form = agent.get(&url("/ui/sign-in")).call().unwrap();
    let sign_in_cookie = set_cookie(&form, "roleout_sign_in")
        .unwrap_or_else(|| panic!("no sign-in cookie: {:?}", form.headers()));
    let html = form.body_mut().read_to_string().unwrap();
    let csrf = hidden_csrf(&html);
    assert_eq!(csrf, sign_in_cookie);
    let cookie = format!("roleout_sign_in={sign_in_cookie}");

    // A wrong password, an unknown user, an empty password: refused alike.
    for (user, password) in [
        ("admin", "not-the-password"),
        ("mallory", "x"),
        ("admin", ""),
    ] {
        let mut response = agent
            .post(&url("/ui/sign-in"))
            .header("cookie", &cookie)
            .send_form([
                ("csrf", csrf.as_str()),
                ("user", user),
                ("password", password),
            ])
            .unwrap();
        assert_eq!(response.status(), 401, "{user}");
        assert!(set_cookie(&response, "roleout_session").is_none());
        let body = response.body_mut().read_to_string().unwrap();
        assert!(
            body.contains("The user name or password is wrong."),
            "{body}"
        );
    }
    // A directory account that is not in the admins group: its password is
    // right, and it is still refused.
    let mut ldapadd = Command::new("ldapadd")
        .args(["-Q", "-Y", "EXTERNAL", "-H", &world.root_ldap_url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    ldapadd
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"dn: cn=auditor,ou=roleout,dc=example,dc=org\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: auditor\nuserPassword: auditor-pass-1\n",
        )
        .unwrap();
    assert!(ldapadd.wait().unwrap().success());
    let mut response = agent
        .post(&url("/ui/sign-in"))
        .header("cookie", &cookie)
        .send_form([
            ("csrf", csrf.as_str()),
            ("user", "cn=auditor,ou=roleout,dc=example,dc=org"),
            ("password", "auditor-pass-1"),
        ])
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(set_cookie(&response, "roleout_session").is_none());
    let body = response.body_mut().read_to_string().unwrap();
    assert!(body.contains("not a member of the admins group"), "{body}");

    // The right password without the form's token: refused.
    let password = admin_password(&world);
    let response = agent
        .post(&url("/ui/sign-in"))
        .header("cookie", &cookie)
        .send_form([("user", "admin"), ("password", password.as_str())])
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(set_cookie(&response, "roleout_session").is_none());

    let response = agent
        .post(&url("/ui/sign-in"))
        .header("cookie", &cookie)
        .send_form([
            ("csrf", csrf.as_str()),
            ("user", "admin"),
            ("password", password.as_str()),
        ])
        .unwrap();
    assert_eq!(response.status(), 303);
    let session = set_cookie(&response, "roleout_session").unwrap();
    let session_cookie = format!("roleout_session={session}");
    let set = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|value| value.starts_with("roleout_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/ui"] {
        assert!(set.contains(attribute), "{set}");
    }

    // A forged approval (no token, then another session's token, then from
    // another site): refused, and the machine still waits.
    let mut page = agent
        .get(&url("/ui/enrolments"))
        .header("cookie", &session_cookie)
        .call()
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.body_mut().read_to_string().unwrap();
    let token = hidden_csrf(&html);
    for (fields, origin) in [
        (vec![], None),
        (vec![("csrf", "0".repeat(64))], None),
        (vec![("csrf", token.clone())], Some("https://evil.example")),
    ] {
        let mut request = agent
            .post(&url("/ui/enrolments/ws-new/approve"))
            .header("cookie", &session_cookie);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = request.send_form(fields).unwrap();
        assert_eq!(response.status(), 403);
    }
    let refused = install(&world, &pending);
    assert_eq!(refused.code, Some(3), "{}", refused.transcript());

    // Denied with the session's token: the machine is disabled, and stays
    // refused.
    let response = agent
        .post(&url("/ui/enrolments/ws-new/deny"))
        .header("cookie", &session_cookie)
        .send_form([("csrf", token.as_str())])
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/ui/enrolments?done=denied");
    let refused = install(&world, &pending);
    assert_eq!(refused.code, Some(3), "{}", refused.transcript());

    // Exports: a table as CSV, a page's tables as JSON.
    let mut csv = agent
        .get(&url("/ui/machines?format=csv&table=machines"))
        .header("cookie", &session_cookie)
        .call()
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.body_mut().read_to_string().unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("machine,roles,enrolment,enabled,last seen,last report,outcome")
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("ws-vault,end-user,approved,yes,")
                && line.ends_with(",failed")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("ws-new,,disabled,no,")),
        "{text}"
    );
    let mut json = agent
        .get(&url("/ui/?format=json"))
        .header("cookie", &session_cookie)
        .call()
        .unwrap();
    let overview: serde_json::Value =
        serde_json::from_str(&json.body_mut().read_to_string().unwrap()).unwrap();
    let failures = overview["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{overview}");
    assert_eq!(failures[0]["product"], "vault-agent");
    assert_eq!(failures[0]["step"], "install");
    assert_eq!(failures[0]["machines"], "1");
    let mut suites = agent
        .get(&url("/ui/suites?format=json"))
        .header("cookie", &session_cookie)
        .call()
        .unwrap();
    let suites: serde_json::Value =
        serde_json::from_str(&suites.body_mut().read_to_string().unwrap()).unwrap();
    assert!(
        suites["contents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["suite"] == "domino"
                && row["role set"] == "developer+end-user"
                && row["product"] == "notes-client"
                && row["objects (slot: role)"]
                    .as_str()
                    .unwrap()
                    .contains("developer")),
        "{suites}"
    );

    // The metrics: valid for promtool, and counting what happened.
    let mut response = agent.get(&url("/metrics")).call().unwrap();
    assert_eq!(response.status(), 200);
    let text = response.body_mut().read_to_string().unwrap();
    let (code, said) = promtool_check(&text);
    assert_eq!(code, Some(0), "promtool: {said}\n{text}");
    assert_eq!(
        metric(
            &text,
            "roleoutd_authentications_total{kind=\"dashboard\",outcome=\"refused-credentials\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "roleoutd_authentications_total{kind=\"dashboard\",outcome=\"accepted\"}"
        ),
        1.0
    );
    for refusal in ["refused-not-admin", "refused-csrf"] {
        assert_eq!(
            metric(
                &text,
                &format!(
                    "roleoutd_authentications_total{{kind=\"dashboard\",outcome=\"{refusal}\"}}"
                )
            ),
            1.0,
            "{refusal}"
        );
    }
    // The pending machine's refusals, each counted by why.
    assert!(
        metric(
            &text,
            "roleoutd_authentications_total{kind=\"machine\",outcome=\"not-approved\"}"
        ) >= 1.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "roleoutd_authentications_total{kind=\"machine\",outcome=\"accepted\"}"
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "roleoutd_reports_total{outcome=\"failed\"}"),
        1.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "roleoutd_http_requests_total{method=\"POST\",route=\"/v1/session\",status=\"200\"}"
        ) >= 1.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "roleoutd_http_requests_total{method=\"POST\",route=\"/ui/enrolments/{name}/approve\",status=\"403\"}"
        ) == 3.0,
        "{text}"
    );
    assert!(
        metric(&text, "roleoutd_directory_operations_total") > 0.0,
        "{text}"
    );
    assert!(
        text.contains("roleoutd_build_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("roleoutd_http_request_duration_seconds_bucket"),
        "{text}"
    );

    // Guessing passwords through the dashboard is slowed to ten sign-ins a
    // minute from one address.
    let mut limited = None;
    for attempt in 0..15 {
        let mut response = agent
            .post(&url("/ui/sign-in"))
            .header("cookie", &cookie)
            .send_form([
                ("csrf", csrf.as_str()),
                ("user", "admin"),
                ("password", "a-guess"),
            ])
            .unwrap();
        if response.status() == 429 {
            let body = response.body_mut().read_to_string().unwrap();
            assert!(
                body.contains("Too many sign-ins from this address"),
                "{body}"
            );
            limited = Some(attempt);
            break;
        }
        assert_eq!(response.status(), 401);
    }
    assert!(
        limited.is_some(),
        "15 wrong passwords in a row were all tried"
    );
}
