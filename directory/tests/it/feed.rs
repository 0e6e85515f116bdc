//! The change feed over a real slapd with syncprov: it goes live, reports
//! each add, modify and delete with the entry's DN (and classes, except
//! for a deletion), reports a lost feed when slapd stops and goes live
//! again after it restarts, a slapd that stops answering (paused, its
//! connection still open) is caught by the feed's probe, and a server
//! without content synchronization is reported as unsupported.

use std::time::Duration;

use roleout_directory::feed::{FeedEvent, PROBE_INTERVAL};
use roleout_directory::{Directory, LocalDirectory, ds389};
use tokio::sync::mpsc;

use crate::{Server, machine, role, role_name, wait_until_stopped};

/// The next event, within `limit`; panics (the failure report) otherwise.
async fn next(events: &mut mpsc::UnboundedReceiver<FeedEvent>, limit: Duration) -> FeedEvent {
    tokio::time::timeout(limit, events.recv())
        .await
        .expect("the feed said nothing in time")
        .expect("the feed stopped")
}

/// The next event that is not a change (changes made by earlier steps may
/// still be in flight).
async fn next_state(events: &mut mpsc::UnboundedReceiver<FeedEvent>, limit: Duration) -> FeedEvent {
    loop {
        match next(events, limit).await {
            FeedEvent::Changed(_) => continue,
            other => return other,
        }
    }
}

fn feed_of(
    directory: &Directory,
) -> (
    roleout_directory::feed::ChangeFeed,
    mpsc::UnboundedReceiver<FeedEvent>,
) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let feed = directory.spawn_change_feed(move |event| {
        let _ = sender.send(event);
    });
    (feed, receiver)
}

#[tokio::test]
async fn the_feed_reports_every_change_as_it_is_committed() {
    let mut local = LocalDirectory::temporary().unwrap();
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    // Changes made before the feed starts are not replayed.
    admin.create_role(&role("before", 1, None)).await.unwrap();
    let builder = Directory::connect(&local.builder_settings()).await.unwrap();
    let (_feed, mut events) = feed_of(&builder);
    assert_eq!(
        next(&mut events, Duration::from_secs(10)).await,
        FeedEvent::Live
    );

    // An add, as the builder account sees it.
    let dn = admin
        .create_role(&role("developer", 20, None))
        .await
        .unwrap();
    let FeedEvent::Changed(change) = next(&mut events, Duration::from_secs(10)).await else {
        panic!("expected a change");
    };
    assert!(change.dn.eq_ignore_ascii_case(&dn), "{change:?} for {dn}");
    assert!(change.has_class("roleoutRole"), "{change:?}");
    assert_eq!(change.common_names, ["developer"]);
    assert!(!change.is_deletion());

    // A modify of a machine entry names the machine.
    let machine_dn = admin.create_machine(&machine("pc-1")).await.unwrap();
    let _ = next(&mut events, Duration::from_secs(10)).await;
    admin
        .record_machine_seen(&machine_dn, std::time::SystemTime::now())
        .await
        .unwrap();
    let FeedEvent::Changed(change) = next(&mut events, Duration::from_secs(10)).await else {
        panic!("expected a change");
    };
    assert!(change.dn.eq_ignore_ascii_case(&machine_dn));
    assert!(change.has_class("roleoutMachine"), "{change:?}");

    // A deletion carries the DN only.
    admin.delete_role(&role_name("developer")).await.unwrap();
    let FeedEvent::Changed(change) = next(&mut events, Duration::from_secs(10)).await else {
        panic!("expected a change");
    };
    assert!(change.dn.eq_ignore_ascii_case(&dn));
    assert!(change.is_deletion(), "{change:?}");

    // slapd going away is a lost feed; back, the feed is live again and
    // reports what changed after that.
    local.stop().unwrap();
    let lost = next_state(&mut events, PROBE_INTERVAL * 2).await;
    assert!(matches!(lost, FeedEvent::Lost { .. }), "{lost:?}");
    local.start().unwrap();
    let live = next_state(&mut events, Duration::from_secs(40)).await;
    assert_eq!(live, FeedEvent::Live);
    let dn = admin.create_role(&role("after", 2, None)).await.unwrap();
    let FeedEvent::Changed(change) = next(&mut events, Duration::from_secs(10)).await else {
        panic!("expected a change");
    };
    assert!(change.dn.eq_ignore_ascii_case(&dn));
}

#[tokio::test]
async fn a_slapd_that_stops_answering_is_caught_by_the_probe() {
    let local = LocalDirectory::temporary().unwrap();
    let mut settings = local.settings();
    settings.operation_timeout = Duration::from_secs(1);
    let directory = Directory::connect(&settings).await.unwrap();
    let (_feed, mut events) = feed_of(&directory);
    assert_eq!(
        next_state(&mut events, Duration::from_secs(20)).await,
        FeedEvent::Live
    );

    // Paused, slapd keeps the connection open but answers nothing: no
    // error reaches the persistent search, only the probe notices.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(local.pid().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    wait_until_stopped(pid.as_raw());
    let limit = PROBE_INTERVAL + Duration::from_secs(10);
    let lost = next_state(&mut events, limit).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let FeedEvent::Lost { reason } = lost else {
        panic!("expected a lost feed, got {lost:?}");
    };
    assert!(reason.contains("does not answer"), "{reason}");

    // Running again, the feed reconnects and goes live.
    assert_eq!(
        next_state(&mut events, Duration::from_secs(40)).await,
        FeedEvent::Live
    );
}

/// A slapd of its own with a slapd.conf and no syncprov overlay, on a free
/// loopback port; killed when dropped.
struct PlainSlapd {
    child: std::process::Child,
    _directory: tempfile::TempDir,
    url: String,
}

impl Drop for PlainSlapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn plain_slapd() -> PlainSlapd {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let conf = directory.path().join("slapd.conf");
    std::fs::write(
        &conf,
        format!(
            "include /etc/ldap/schema/core.schema\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\n\
             database mdb\nsuffix \"dc=plain\"\nrootdn \"cn=admin,dc=plain\"\n\
             rootpw secret\ndirectory {}\n",
            data.display()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ldap://127.0.0.1:{port}/");
    let child = std::process::Command::new("/usr/sbin/slapd")
        .arg("-f")
        .arg(&conf)
        .args(["-h", &url, "-d", "none"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    PlainSlapd {
        child,
        _directory: directory,
        url,
    }
}

#[tokio::test]
async fn a_server_without_content_synchronization_is_reported_unsupported() {
    let slapd = plain_slapd();
    let settings = roleout_directory::Settings::new([slapd.url.clone()])
        .with_base("dc=plain")
        .with_bind(roleout_directory::Bind::Simple {
            dn: "cn=admin,dc=plain".to_owned(),
            password: roleout_directory::Secret::new("secret"),
        });
    // slapd needs a moment to listen.
    let mut directory = None;
    for _ in 0..100 {
        if let Ok(connected) = Directory::connect(&settings).await {
            directory = Some(connected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let directory = directory.expect("the plain slapd accepts a bind");
    let (_feed, mut events) = feed_of(&directory);
    let event = next(&mut events, Duration::from_secs(10)).await;
    let FeedEvent::Unsupported { reason } = event else {
        panic!("expected unsupported, got {event:?}");
    };
    assert!(reason.contains("syncprov"), "{reason}");
}

#[tokio::test]
async fn a_state_made_before_the_overlay_gains_it_when_reopened() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("directory");
    drop(LocalDirectory::persistent(&path).unwrap());
    // Make it look like a state from before the change feed: no overlay
    // entry, no module line (the files' CRC lines go too, as an edit by
    // hand would leave them wrong).
    let config = path.join("slapd.d").join("cn=config");
    std::fs::remove_file(
        config
            .join("olcDatabase={1}mdb")
            .join("olcOverlay={0}syncprov.ldif"),
    )
    .unwrap();
    let module = config.join("cn=module{0}.ldif");
    let text = std::fs::read_to_string(&module).unwrap();
    let kept: String = text
        .lines()
        .filter(|line| !line.contains("syncprov") && !line.starts_with("# CRC32"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&module, kept).unwrap();

    let reopened = LocalDirectory::persistent(&path).unwrap();
    let builder = Directory::connect(&reopened.builder_settings())
        .await
        .unwrap();
    let (_feed, mut events) = feed_of(&builder);
    assert_eq!(
        next(&mut events, Duration::from_secs(10)).await,
        FeedEvent::Live
    );
}

/// 389 Directory Server offers content synchronization through two
/// plugins it ships disabled: without them the feed says what to enable;
/// with them (and a restart) it goes live and reports each change.
#[tokio::test]
async fn on_389_ds_the_feed_needs_the_content_synchronization_plugin() {
    let mut server = crate::ds389::Ds389::temporary();
    let builder = Directory::connect(&server.builder_settings())
        .await
        .unwrap();
    let (feed, mut events) = feed_of(&builder);
    let event = next(&mut events, Duration::from_secs(10)).await;
    let FeedEvent::Unsupported { reason } = event else {
        panic!("expected unsupported, got {event:?}");
    };
    assert!(reason.contains("Content Synchronization"), "{reason}");
    drop(feed);
    builder.close().await;

    // README's change is the one the instance applies.
    assert_eq!(
        crate::readme_block("389 content synchronization"),
        ds389::CONTENT_SYNC_LDIF
    );
    crate::ldapmodify(&server, &crate::readme_block("389 content synchronization"));
    server.restart();
    let admin = Directory::connect(&server.admin_settings()).await.unwrap();
    let builder = Directory::connect(&server.builder_settings())
        .await
        .unwrap();
    let (_feed, mut events) = feed_of(&builder);
    assert_eq!(
        next_state(&mut events, Duration::from_secs(10)).await,
        FeedEvent::Live
    );
    let dn = admin
        .create_role(&role("developer", 20, None))
        .await
        .unwrap();
    let FeedEvent::Changed(change) = next(&mut events, Duration::from_secs(10)).await else {
        panic!("expected a change");
    };
    assert!(change.dn.eq_ignore_ascii_case(&dn), "{change:?} for {dn}");
    assert!(change.has_class("roleoutRole"), "{change:?}");
    admin.delete_role(&role_name("developer")).await.unwrap();
    let FeedEvent::Changed(change) = next(&mut events, Duration::from_secs(10)).await else {
        panic!("expected a change");
    };
    assert!(change.dn.eq_ignore_ascii_case(&dn), "{change:?}");
    assert!(change.is_deletion(), "{change:?}");
}
