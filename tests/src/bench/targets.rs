//! B9: judging every machine as a target of an image (`roleout-admin
//! targets IMAGE`: the image's rule, the disk, the drivers, leases), at
//! 1,000 and 10,000 machines, against one raw ldap3 subtree search reading
//! the same machine entries with the same attributes.
//!
//! The machines are synthetic, each with a hardware inventory (a third
//! with another processor, a tenth with a small disk, one in seven busy
//! with a lease) and loaded offline with `slapadd`.

use anyhow::Context;
use ldap3::{LdapConnAsync, Scope, SearchEntry};
use std::fmt::Write as _;

use roleout_builder::admin::Output;
use roleout_directory::{Directory, LocalDirectory};
use roleout_model::image::{
    Compatibility, FORMAT, ImageDescription, ImageName, OsConfiguration, Partition,
};
use roleout_model::inventory::{Cpu, Disk, Firmware, Inventory, Nic, PciDevice};

use crate::bench::{Row, median, millis, time};

/// A fleet machine's hardware: a third with another processor, a tenth
/// with a small disk (by `index`).
pub(crate) fn inventory(index: usize) -> Inventory {
    Inventory {
        arch: "x86_64".to_owned(),
        firmware: Firmware::Bios,
        hypervisor: None,
        cpu: Cpu {
            model: if index % 3 == 0 {
                "Other CPU @ 3.00GHz".to_owned()
            } else {
                "Fleet CPU @ 2.00GHz".to_owned()
            },
            vendor: "GenuineIntel".to_owned(),
            logical: 4,
            sockets: 1,
        },
        memory_bytes: 8 << 30,
        disks: vec![Disk {
            name: "vda".to_owned(),
            size_bytes: if index % 10 == 0 { 64 << 20 } else { 40 << 30 },
            model: None,
            rotational: false,
            removable: false,
            controller: Some("0000:00:04.0".to_owned()),
        }],
        nics: vec![Nic {
            name: "eth0".to_owned(),
            mac: format!(
                "52:54:00:{:02x}:{:02x}:{:02x}",
                index >> 16 & 255,
                index >> 8 & 255,
                index & 255
            ),
            driver: Some("virtio-pci".to_owned()),
        }],
        pci: vec![
            PciDevice {
                slot: "0000:00:04.0".to_owned(),
                vendor: "1af4".to_owned(),
                device: "1001".to_owned(),
                class: "010000".to_owned(),
                modalias: "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00".to_owned(),
                driver: Some("virtio-pci".to_owned()),
            },
            PciDevice {
                slot: "0000:00:03.0".to_owned(),
                vendor: "1af4".to_owned(),
                device: "1000".to_owned(),
                class: "020000".to_owned(),
                modalias: "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00".to_owned(),
                driver: Some("virtio-pci".to_owned()),
            },
        ],
        dmi: None,
    }
}

/// A private slapd holding `machines` machine entries with hardware.
fn load(machines: usize) -> anyhow::Result<LocalDirectory> {
    let mut local = LocalDirectory::temporary().context("starting slapd")?;
    let layout = roleout_directory::Layout::new(&local.settings());
    let mut ldif = String::new();
    for index in 0..machines {
        let hardware = inventory(index);
        let json = serde_json::to_string(&hardware)?;
        let _ = write!(
            ldif,
            "dn: cn=t{index:05},{}\nobjectClass: device\nobjectClass: pkiUser\nobjectClass: roleoutMachine\n\
             cn: t{index:05}\nroleoutEnabled: TRUE\nroleoutEnrolment: approved\nroleoutHardware: {json}\n\
             roleoutHardwareKey: {}\n",
            layout.machines(),
            hardware.key()
        );
        if index % 7 == 0 {
            let _ = writeln!(
                ldif,
                "roleoutLease: v1;1;4102444800;site-a;image-20261205-000000-0000"
            );
        }
        ldif.push('\n');
    }
    crate::bench::slapadd(&mut local, &ldif, "machines")?;
    Ok(local)
}

fn image() -> ImageDescription {
    ImageDescription {
        format: FORMAT.to_owned(),
        name: ImageName::new("fleet").expect("a valid name"),
        captured_at: 0,
        manifest: roleout_model::ids::Sha256::of(b"a manifest"),
        entries: 50_000,
        data_bytes: 4 << 30,
        hardware: inventory(1),
        os: OsConfiguration::default(),
        partitions: vec![Partition {
            mount_point: "/".to_owned(),
            fs_type: "ext4".to_owned(),
            device: "/dev/vda1".to_owned(),
            size_bytes: 40 << 30,
            used_bytes: 5 << 30,
            growable: true,
            data_bytes: 4 << 30,
            table: None,
        }],
        compatibility: Compatibility::Facts {
            facts: vec![
                "arch".to_owned(),
                "firmware".to_owned(),
                "cpu.model".to_owned(),
            ],
        },
    }
}

/// The storage and network aliases of a kernel of about a distribution's
/// size: 3,000 patterns over 60 vendors, a few without a vendor, and the
/// virtio drivers the fleet needs.
fn kernel_aliases() -> Vec<String> {
    let mut aliases: Vec<String> = (0..3000u32)
        .map(|index| {
            format!(
                "alias pci:v0000{:04X}d0000{:04X}sv*sd*bc*sc*i* driver{}",
                0x1000 + index % 60,
                index,
                index % 400
            )
        })
        .collect();
    aliases.extend([
        "alias pci:v*d*sv*sd*bc01sc08i02* nvme".to_owned(),
        "alias pci:v*d*sv*sd*bc01sc06i01* ahci".to_owned(),
        "alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk".to_owned(),
        "alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_net".to_owned(),
    ]);
    aliases
}

/// One subtree search of the machines, every user attribute.
async fn baseline(url: &str, base: &str) -> anyhow::Result<usize> {
    let (connection, mut ldap) = LdapConnAsync::new(url).await?;
    ldap3::drive!(connection);
    ldap.sasl_external_bind().await?.success()?;
    let (entries, _) = ldap
        .search(
            base,
            Scope::Subtree,
            "(objectClass=roleoutMachine)",
            // Every user attribute: what `targets` reads and a little more.
            vec!["*"],
        )
        .await?
        .success()?;
    let count = entries.into_iter().map(SearchEntry::construct).count();
    ldap.unbind().await?;
    Ok(count)
}

/// The B9 row for `machines` machines.
pub(crate) fn run(machines: usize, runs: usize) -> anyhow::Result<Row> {
    let local = load(machines)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let directory = runtime.block_on(Directory::connect(&local.settings()))?;
    runtime.block_on(directory.store_image(&image(), None, &kernel_aliases()))?;
    let machines_dn = directory.layout().machines().to_owned();
    let url = local.ldapi_url();
    let (mut a, mut b, mut searches) = (Vec::new(), Vec::new(), Vec::new());
    let mut listing = String::new();
    let mut entries = 0;
    for _ in 0..runs {
        let before = directory.search_count();
        let (elapsed, text) = time(|| {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut output = Output {
                out: &mut out,
                err: &mut err,
            };
            runtime
                .block_on(roleout_builder::admin::deploy::targets(
                    &directory,
                    "fleet",
                    None,
                    &mut output,
                ))
                .map_err(|error| anyhow::anyhow!("{error}"))?;
            Ok(String::from_utf8_lossy(&out).into_owned())
        })?;
        searches.push(directory.search_count() - before);
        listing = text;
        a.push(millis(elapsed));
        let (elapsed, count) = time(|| runtime.block_on(baseline(&url, &machines_dn)))?;
        entries = count;
        b.push(millis(elapsed));
    }
    let available = listing.lines().next().unwrap_or_default().to_owned();
    let (a, b) = (median(&a), median(&b));
    let figure = a / b;
    searches.sort_unstable();
    searches.dedup();
    Ok(Row {
        id: "B9".to_owned(),
        label: format!("judge {machines} machines as targets"),
        a,
        b: Some(b),
        unit: "ms",
        figure,
        target: "A/B <= 3".to_owned(),
        met: figure <= 3.0,
        notes: format!(
            "LDAP searches per query {searches:?}; {available}; baseline read {entries} entries"
        ),
    })
}
