//! Built suites in a real slapd, as the builder's account stores them:
//! builds larger than one request may carry (slapd refuses requests over
//! 4 MiB) are stored in parts and read back exactly, replacing a build
//! removes the parts of the old one, leftovers of an interrupted write are
//! invisible and the next write finishes or removes them, a part changed outside Roleout
//! is reported with its entry, and a reader racing with writers only ever
//! sees a whole build.

use std::collections::BTreeMap;

use base64::Engine;

use roleout_directory::Directory;
use roleout_directory::catalog::{
    BuildWrite, INLINE_CANONICAL_BYTES, NewBuild, PART_BYTES, StoredBuild,
};
use roleout_model::ids::{Sha256, SuiteId};
use roleout_model::protocol::Timestamp;

use crate::{Server, ldapadd, ldapsearch, on_both_servers};

const BUILDS: &str = "ou=builds,ou=roleout,dc=example,dc=org";

async fn open(local: &dyn Server) -> Directory {
    Directory::connect(&local.builder_settings()).await.unwrap()
}

fn suite() -> SuiteId {
    SuiteId::new("huge").unwrap()
}

/// JSON-like text of about `bytes` bytes, different for each `seed`, with
/// two- and three-byte characters so that parts must split between
/// characters.
fn canonical(bytes: usize, seed: u32) -> Vec<u8> {
    let mut text = String::from("{\"products\":[");
    let mut index = 0u32;
    while text.len() < bytes {
        text.push_str(&format!(
            "{{\"id\":\"product-{seed}-{index}\",\"name\":\"Größe {index} — überall\"}},"
        ));
        index += 1;
    }
    text.push_str("{}]}");
    text.into_bytes()
}

fn new_build(role_set: &str, canonical: Vec<u8>) -> NewBuild {
    let mut built_from = BTreeMap::new();
    built_from.insert("suite/huge".to_owned(), Sha256::of(b"suite"));
    NewBuild {
        suite: suite(),
        role_set: role_set.to_owned(),
        digest: Sha256::of(&canonical),
        canonical,
        built_from,
        built_at: Timestamp::from_unix_millis(1_714_564_800_250).unwrap(),
    }
}

/// The `cn`s of the entries under the build entry of `role_set`.
fn part_names(local: &dyn Server, role_set: &str) -> Vec<String> {
    let base = format!("cn=huge@{role_set},{BUILDS}");
    let mut names: Vec<String> = ldapsearch(local, &base, &["-s", "one", "cn"])
        .lines()
        .filter_map(|line| line.strip_prefix("cn: "))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

fn assert_same(stored: &StoredBuild, build: &NewBuild) {
    assert_eq!(stored.digest, build.digest);
    assert!(stored.canonical == build.canonical, "the bytes differ");
    assert_eq!(stored.built_from, build.built_from);
}

async fn a_build_over_four_mebibytes_is_stored_in_parts_and_read_back_whole(local: &dyn Server) {
    let directory = open(local).await;
    // Over slapd's 4 MiB request limit and the 3 MiB the entry once held.
    let build = new_build("default", canonical(9 * 1024 * 1024 + 17, 1));
    let (stored, write) = directory.store_build(&build).await.unwrap();
    assert_eq!(write, BuildWrite::Created);
    assert_eq!(stored.serial, 1);
    let parts = part_names(local, "default");
    assert_eq!(parts.len(), build.canonical.len().div_ceil(PART_BYTES));
    assert!(
        parts
            .iter()
            .all(|name| name.starts_with(&format!("part-1-{}-", build.digest))),
        "{parts:?}"
    );
    // The entry itself holds no bytes; every part stays under the limit.
    let entry = ldapsearch(
        local,
        &format!("cn=huge@default,{BUILDS}"),
        &["-s", "base", "roleoutCanonical", "roleoutSerial"],
    );
    assert!(!entry.contains("roleoutCanonical"), "{entry}");
    assert!(entry.contains("roleoutSerial: 1"), "{entry}");

    let (loaded, searches) = load_counting(&directory).await;
    // The entry, then its parts: two searches.
    assert_eq!(searches, 2);
    assert_same(&loaded, &build);
    assert_eq!(loaded.serial, 1);
    let listed = directory.builds(Some(&suite())).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_same(&listed[0], &build);

    // Storing it again writes nothing and reads no bytes.
    let before = directory.search_count();
    let (again, write) = directory.store_build(&build).await.unwrap();
    assert_eq!(write, BuildWrite::Unchanged);
    assert_eq!(directory.search_count() - before, 1);
    assert_same(&again, &build);
    assert_eq!(part_names(local, "default"), parts);
}

async fn replacing_a_build_removes_the_parts_of_the_old_one(local: &dyn Server) {
    let directory = open(local).await;
    let first = new_build("default", canonical(3 * PART_BYTES, 1));
    directory.store_build(&first).await.unwrap();
    let second = new_build("default", canonical(2 * PART_BYTES + 5, 2));
    let (stored, write) = directory.store_build(&second).await.unwrap();
    assert_eq!(
        write,
        BuildWrite::Replaced {
            previous_digest: first.digest.clone(),
            previous_serial: 1
        }
    );
    assert_eq!(stored.serial, 2);
    let parts = part_names(local, "default");
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert!(
        parts
            .iter()
            .all(|name| name.starts_with(&format!("part-2-{}-", second.digest))),
        "{parts:?}"
    );
    assert_same(
        &directory
            .load_build(&suite(), "default")
            .await
            .unwrap()
            .unwrap(),
        &second,
    );

    // A small build goes back into the entry, and the parts go.
    let small = new_build("default", canonical(1000, 3));
    assert!(small.canonical.len() <= INLINE_CANONICAL_BYTES);
    let (stored, _) = directory.store_build(&small).await.unwrap();
    assert_eq!(stored.serial, 3);
    assert!(part_names(local, "default").is_empty());
    let (loaded, searches) = load_counting(&directory).await;
    assert_eq!(searches, 1);
    assert_same(&loaded, &small);

    // And deleting a build in parts deletes its parts.
    directory.store_build(&first).await.unwrap();
    assert!(directory.delete_build(&suite(), "default").await.unwrap());
    assert!(
        ldapsearch(
            local,
            BUILDS,
            &["-s", "sub", "(objectClass=roleoutBuild)", "1.1"]
        )
        .trim()
        .is_empty()
    );
    assert!(
        directory
            .load_build(&suite(), "default")
            .await
            .unwrap()
            .is_none()
    );
}

/// An LDIF part entry as an interrupted write leaves it.
fn part_ldif(role_set: &str, serial: u64, digest: &Sha256, index: usize, text: &str) -> String {
    format!(
        "dn: cn=part-{serial}-{digest}-{index},cn=huge@{role_set},{BUILDS}\n\
         objectClass: roleoutBuild\n\
         cn: part-{serial}-{digest}-{index}\n\
         roleoutSuiteName: huge\n\
         roleoutRoleSet: {role_set}\n\
         roleoutDigest: {digest}\n\
         roleoutSerial: {serial}\n\
         roleoutCanonical:: {}\n",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

async fn an_interrupted_write_is_invisible_and_cleared_by_the_next(local: &dyn Server) {
    let directory = open(local).await;
    let current = new_build("default", canonical(2 * PART_BYTES + 1, 1));
    directory.store_build(&current).await.unwrap();
    // A writer stopped after adding the first part of serial 2.
    let other = Sha256::of(b"the build that was never switched to");
    ldapadd(local, &part_ldif("default", 2, &other, 0, "{\"half\":"));
    assert_same(
        &directory
            .load_build(&suite(), "default")
            .await
            .unwrap()
            .unwrap(),
        &current,
    );

    // A new build whose first create stopped before the switch (serial 0,
    // its first part written) is not a build yet; the next store finishes
    // it, taking the part already there.
    let fresh = new_build("fresh", canonical(2 * PART_BYTES, 2));
    let text = std::str::from_utf8(&fresh.canonical).unwrap();
    let mut end = PART_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    ldapadd(
        local,
        &format!(
            "dn: cn=huge@fresh,{BUILDS}\nobjectClass: roleoutBuild\ncn: huge@fresh\n\
             roleoutSuiteName: huge\nroleoutRoleSet: fresh\nroleoutDigest: {}\n\
             roleoutSerial: 0\nroleoutBuiltAt: 20240501120000Z\n\n{}",
            fresh.digest,
            part_ldif("fresh", 1, &fresh.digest, 0, &text[..end])
        ),
    );
    assert!(
        directory
            .load_build(&suite(), "fresh")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(directory.builds(Some(&suite())).await.unwrap().len(), 1);
    let (stored, write) = directory.store_build(&fresh).await.unwrap();
    assert_eq!(write, BuildWrite::Created);
    assert_eq!(stored.serial, 1);
    assert_same(
        &directory
            .load_build(&suite(), "fresh")
            .await
            .unwrap()
            .unwrap(),
        &fresh,
    );
    assert_eq!(directory.builds(Some(&suite())).await.unwrap().len(), 2);

    // The next write of the first build clears the leftover of serial 2.
    let next = new_build("default", canonical(2 * PART_BYTES + 1, 4));
    directory.store_build(&next).await.unwrap();
    let parts = part_names(local, "default");
    assert!(
        parts
            .iter()
            .all(|name| name.starts_with(&format!("part-2-{}-", next.digest))),
        "{parts:?}"
    );
    assert_eq!(parts.len(), 3);
}

async fn a_part_changed_outside_roleout_is_reported_with_its_build(local: &dyn Server) {
    let directory = open(local).await;
    let build = new_build("default", canonical(2 * PART_BYTES + 1, 1));
    directory.store_build(&build).await.unwrap();
    let part = format!("cn=part-1-{}-1,cn=huge@default,{BUILDS}", build.digest);
    let output = crate::ldap_tool_as(
        local,
        "ldapmodify",
        "admin",
        &[],
        &format!(
            "dn: {part}\nchangetype: modify\nreplace: roleoutCanonical\nroleoutCanonical: x\n"
        ),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let error = directory.load_build(&suite(), "default").await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("cn=huge@default"), "{text}");
    assert!(text.contains("changed outside Roleout"), "{text}");
}

async fn a_reader_racing_with_writers_sees_only_whole_builds(local: &dyn Server) {
    let directory = open(local).await;
    let builds: Vec<NewBuild> = (0..4)
        .map(|seed| new_build("default", canonical(2 * PART_BYTES + 3, seed)))
        .collect();
    directory.store_build(&builds[0]).await.unwrap();
    let digests: Vec<Sha256> = builds.iter().map(|build| build.digest.clone()).collect();
    let mut writers = Vec::new();
    for writer in 0..2 {
        let settings = local.builder_settings();
        let builds = builds.clone();
        writers.push(tokio::spawn(async move {
            let directory = Directory::connect(&settings).await.unwrap();
            for round in 0..4 {
                let build = &builds[(writer + round) % builds.len()];
                directory.store_build(build).await.unwrap();
            }
        }));
    }
    let mut reads = 0;
    while writers.iter().any(|writer| !writer.is_finished()) || reads == 0 {
        // Either the build as it was or one that replaced it, whole:
        // load_build checks the bytes against the digest.
        let loaded = directory
            .load_build(&suite(), "default")
            .await
            .unwrap()
            .unwrap();
        assert!(digests.contains(&loaded.digest));
        reads += 1;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    // Whatever won last, only its parts remain.
    let last = directory
        .load_build(&suite(), "default")
        .await
        .unwrap()
        .unwrap();
    let parts = part_names(local, "default");
    assert!(
        parts
            .iter()
            .all(|name| name.starts_with(&format!("part-{}-{}-", last.serial, last.digest))),
        "{parts:?}"
    );
}

/// The stored default build of the test suite, and the searches reading it
/// took.
async fn load_counting(directory: &Directory) -> (StoredBuild, u64) {
    let before = directory.search_count();
    let loaded = directory
        .load_build(&suite(), "default")
        .await
        .unwrap()
        .unwrap();
    (loaded, directory.search_count() - before)
}

on_both_servers!(
    a_build_over_four_mebibytes_is_stored_in_parts_and_read_back_whole,
    replacing_a_build_removes_the_parts_of_the_old_one,
    an_interrupted_write_is_invisible_and_cleared_by_the_next,
    a_part_changed_outside_roleout_is_reported_with_its_build,
    a_reader_racing_with_writers_sees_only_whole_builds,
);
