//! Leases on target machines against a real slapd: of racers for one
//! target exactly one wins, a set is taken all or nothing, and a lease
//! expires and is taken over with a higher serial, after which its old
//! holder can neither renew nor release it.

use roleout_directory::Directory;

use crate::{Server, machine, on_both_servers};

const NOW: u64 = 1_800_000_000;

async fn targets(admin: &Directory, names: &[&str]) -> Vec<String> {
    let mut dns = Vec::new();
    for name in names {
        dns.push(admin.create_machine(&machine(name)).await.unwrap());
    }
    dns
}

async fn of_two_admins_racing_for_one_target_exactly_one_wins(local: &dyn Server) {
    let alice = Directory::connect(&local.admin_settings()).await.unwrap();
    let bob = Directory::connect(&local.admin_settings()).await.unwrap();
    let dns = targets(&alice, &["race-1"]).await;
    // Bounded: twenty races, each on a free target.
    for round in 0..20 {
        let job = format!("job-{round}");
        let (a, b) = tokio::join!(
            alice.acquire_leases(&dns, "alice", &job, NOW + 60, NOW),
            bob.acquire_leases(&dns, "bob", &job, NOW + 60, NOW),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.is_ok() != b.is_ok(), "round {round}: {a:?} {b:?}");
        let (winner, leases) = match (a, b) {
            (Ok(leases), Err(refused)) | (Err(refused), Ok(leases)) => {
                assert_eq!(refused.dn, dns[0]);
                (leases[0].holder.clone(), leases)
            }
            _ => unreachable!(),
        };
        let held = alice.lease(&dns[0]).await.unwrap().unwrap();
        assert_eq!(held.holder, winner);
        let given: Vec<(String, _)> = vec![(dns[0].clone(), leases[0].clone())];
        assert_eq!(alice.release_leases(&given).await.unwrap(), 1);
        assert_eq!(alice.lease(&dns[0]).await.unwrap(), None);
    }
}

async fn a_set_of_targets_is_taken_all_or_nothing(local: &dyn Server) {
    let alice = Directory::connect(&local.admin_settings()).await.unwrap();
    let bob = Directory::connect(&local.admin_settings()).await.unwrap();
    let dns = targets(&alice, &["set-1", "set-2", "set-3", "set-4"]).await;
    // Bob holds the third; Alice asks for the first three: she gets none.
    bob.acquire_leases(&dns[2..3], "bob", "web", NOW + 60, NOW)
        .await
        .unwrap()
        .unwrap();
    let refused = alice
        .acquire_leases(&dns[..3], "alice", "db", NOW + 60, NOW)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.dn, dns[2]);
    assert_eq!(refused.held.as_ref().unwrap().holder, "bob");
    assert!(
        refused.to_string().contains("held by bob for job web"),
        "{refused}"
    );
    for dn in &dns[..2] {
        assert_eq!(alice.lease(dn).await.unwrap(), None, "{dn} was kept");
    }
    // Racing for overlapping sets: never both, and a loser holds nothing.
    for round in 0..10 {
        let (wanted_a, wanted_b) = (
            [dns[0].clone(), dns[1].clone(), dns[3].clone()],
            [dns[3].clone(), dns[1].clone()],
        );
        let (job_a, job_b) = (format!("a{round}"), format!("b{round}"));
        let (a, b) = tokio::join!(
            alice.acquire_leases(&wanted_a, "alice", &job_a, NOW + 60, NOW),
            bob.acquire_leases(&wanted_b, "bob", &job_b, NOW + 60, NOW),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(!(a.is_ok() && b.is_ok()), "round {round}: both won");
        let mut given = Vec::new();
        for (result, holder, wanted) in [(&a, "alice", vec![0, 1, 3]), (&b, "bob", vec![3, 1])] {
            for index in wanted {
                let held = alice.lease(&dns[index]).await.unwrap();
                let holds = held.as_ref().is_some_and(|lease| lease.holder == holder);
                assert_eq!(
                    holds,
                    result.is_ok(),
                    "round {round}: {holder} on {}",
                    dns[index]
                );
                if holds {
                    given.push((dns[index].clone(), held.unwrap()));
                }
            }
        }
        alice.release_leases(&given).await.unwrap();
    }
}

async fn an_expired_lease_is_taken_over_and_its_old_holder_is_fenced_off(local: &dyn Server) {
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    let dns = targets(&admin, &["lapse-1"]).await;
    let first = admin
        .acquire_leases(&dns, "engine-a", "deploy-1", NOW + 10, NOW)
        .await
        .unwrap()
        .unwrap()
        .remove(0);
    assert_eq!(first.serial, 1);
    // Still held: refused; the same holder and job may take it again.
    assert!(
        admin
            .acquire_leases(&dns, "engine-b", "deploy-2", NOW + 70, NOW + 5)
            .await
            .unwrap()
            .is_err()
    );
    assert!(admin.renew_lease(&dns[0], &first, NOW + 20).await.unwrap());
    let renewed = admin.lease(&dns[0]).await.unwrap().unwrap();
    assert_eq!((renewed.expires_at, renewed.serial), (NOW + 20, 1));
    // Past its end, another holder takes it, with a higher serial.
    let second = admin
        .acquire_leases(&dns, "engine-b", "deploy-2", NOW + 90, NOW + 21)
        .await
        .unwrap()
        .unwrap()
        .remove(0);
    assert_eq!(second.serial, 2);
    // The old holder can neither renew nor give back what it lost.
    assert!(
        !admin
            .renew_lease(&dns[0], &renewed, NOW + 200)
            .await
            .unwrap()
    );
    assert_eq!(
        admin
            .release_leases(&[(dns[0].clone(), renewed)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(admin.lease(&dns[0]).await.unwrap(), Some(second));
}

on_both_servers!(
    of_two_admins_racing_for_one_target_exactly_one_wins,
    a_set_of_targets_is_taken_all_or_nothing,
    an_expired_lease_is_taken_over_and_its_old_holder_is_fenced_off,
);
