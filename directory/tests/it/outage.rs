//! The directory going away: stopping slapd while operations run gives a
//! clear error (not a hang, not a panic), a paused slapd gives a timeout,
//! and the next operation after a restart reconnects by itself; a stopped
//! 389 Directory Server likewise.

use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use roleout_directory::{Directory, DirectoryError, LocalDirectory};

use crate::{machine, role, role_name, wait_until_stopped};

#[tokio::test]
async fn stopping_slapd_mid_operation_fails_cleanly_and_restart_reconnects() {
    let mut local = LocalDirectory::temporary().unwrap();
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    admin
        .create_role(&role("developer", 20, None))
        .await
        .unwrap();
    let base = admin.layout().base().to_owned();

    // Stop slapd from another thread while this task keeps searching.
    let (stop_now, stop_requested) = mpsc::channel::<()>();
    let stopper = std::thread::spawn(move || {
        stop_requested.recv().unwrap();
        local.stop().unwrap();
        local
    });
    let mut signalled = false;
    let error = loop {
        match admin.subtree_dns(&base).await {
            Ok(dns) => {
                assert!(dns.len() > 5);
                if !signalled {
                    stop_now.send(()).unwrap();
                    signalled = true;
                }
            }
            Err(error) => break error,
        }
    };
    let mut local = stopper.join().unwrap();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(!error.to_string().is_empty());

    // While it is down, every operation fails the same way.
    let error = admin.roles().await.unwrap_err();
    assert!(matches!(error, DirectoryError::Connect { .. }), "{error}");
    assert!(error.to_string().contains(&local.ldap_url()), "{error}");

    // After a restart the same Directory reconnects on its own.
    local.start().unwrap();
    let roles = admin.roles().await.unwrap();
    assert!(roles.get(&role_name("developer")).is_some());
    admin
        .create_machine(&machine("after-restart"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_paused_slapd_gives_a_timeout_not_a_hang() {
    let local = LocalDirectory::temporary().unwrap();
    let mut settings = local.admin_settings();
    settings.operation_timeout = Duration::from_millis(500);
    let admin = Directory::connect(&settings).await.unwrap();
    admin.roles().await.unwrap();
    let pid = Pid::from_raw(i32::try_from(local.pid().unwrap()).unwrap());
    kill(pid, Signal::SIGSTOP).unwrap();
    // kill returns before every thread has stopped: one still running
    // could answer the search below.
    wait_until_stopped(pid.as_raw());
    let outcome = admin.roles().await;
    kill(pid, Signal::SIGCONT).unwrap();
    let error = outcome.unwrap_err();
    assert!(
        matches!(
            error,
            DirectoryError::Timeout {
                operation: "search",
                ..
            }
        ),
        "{error}"
    );
    // Once slapd runs again, the next operation works.
    admin.roles().await.unwrap();
}

/// The same on 389 Directory Server: while it is down every operation
/// fails naming the URL, and the same `Directory` reconnects once it runs
/// again.
#[tokio::test]
async fn a_stopped_389_server_fails_cleanly_and_its_restart_reconnects() {
    use crate::Server;
    let mut server = crate::ds389::Ds389::temporary();
    let admin = Directory::connect(&server.admin_settings()).await.unwrap();
    admin
        .create_role(&role("developer", 20, None))
        .await
        .unwrap();
    server.stop();
    let error = admin.roles().await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    let error = admin.roles().await.unwrap_err();
    assert!(matches!(error, DirectoryError::Connect { .. }), "{error}");
    assert!(error.to_string().contains(&server.ldap_url()), "{error}");
    server.start_again();
    let roles = admin.roles().await.unwrap();
    assert!(roles.get(&role_name("developer")).is_some());
}
